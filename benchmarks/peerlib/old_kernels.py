"""The density kernels as they were before the fast path (issue 9, commit f00d376), verbatim, for comparison.

``superpose`` below is a copy of ``bayestwin.dynamics.closed_form.superpose`` at that commit (with its helper
``_kept_after_resets``). ``old_kernels()`` swaps it into ``bayestwin.dynamics.closed_form`` for as long as a
density is traced, so that the old and the new log density can be compiled and timed in one process
(``benchmarks/density_cost.py``) and compared value by value (``tests/dynamics/test_fast_path.py``).
Delete this module with that test once the fast path has settled.

``autodiff_bolus()`` does the same for the bolus element of the fast path as it was before its derivatives were
written out (commit 2b2d228, brief PMAP): ``exp(-lam tau)`` and the shared-exponential divided difference
``_exp_dd_sharing``, verbatim, differentiated by JAX. It swaps ``closed_form.bolus_unit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.steady_state import absorbed_response, direct_response, exp_dd

__all__ = ["autodiff_bolus", "old_kernels", "superpose"]


@contextlib.contextmanager
def old_kernels() -> Iterator[None]:
    """Within the block, the closed-form models superpose doses with the old ``superpose``."""
    from bayestwin.dynamics import closed_form

    new = closed_form.superpose
    closed_form.superpose = superpose
    try:
        yield
    finally:
        closed_form.superpose = new


@contextlib.contextmanager
def autodiff_bolus() -> Iterator[None]:
    """Within the block, bolus-only histories use the pre-PMAP element, differentiated by JAX."""
    from bayestwin.dynamics import closed_form

    new = closed_form.bolus_unit
    closed_form.bolus_unit = _autodiff_bolus_unit
    try:
        yield
    finally:
        closed_form.bolus_unit = new


def _autodiff_bolus_unit(lam: Array, ka: Array, tau: Array, into_depot: Array, _exact: bool = True) -> Array:
    """The bolus element of ``superpose`` at commit 2b2d228: ``where(into_depot, ka exp_dd, exp(-lam tau))``."""
    unit = jnp.exp(-lam * tau)
    return jnp.where(into_depot, ka * _exp_dd_sharing(unit, lam, ka, tau), unit)


_EQUAL_RATES_BELOW = 1e-200


def _exp_dd_sharing(e_a: Array, a: Array, b: Array, t: Array) -> Array:
    """``exp_dd(a, b, t)`` given ``e_a = exp(-a t)``, as at commit 2b2d228 (verbatim)."""
    diff = b - a
    x = diff * t
    gap = jnp.abs(diff)
    equal = gap < _EQUAL_RATES_BELOW
    e_lo = jnp.where(diff < 0, jnp.exp(-b * t), e_a)
    far = -e_lo * jnp.expm1(-jnp.abs(x)) / jnp.where(equal, 1.0, gap)
    return jnp.where((x == 0) | equal, t * e_a * (1.0 - 0.5 * x), far)


def _kept_after_resets(t: Array, doses: Doses) -> Array:
    """``(time, dose)`` mask: the dose was recorded at or after the last reset at or before ``t``."""
    when = doses.time[None, :]
    order = jnp.arange(doses.time.shape[0])[None, :]
    resets = (doses.mask & (doses.reset | (doses.ss == 1)))[None, :] & (when <= t[:, None])
    last = jnp.max(jnp.where(resets, when, -jnp.inf), axis=1, keepdims=True)
    last_order = jnp.max(jnp.where(resets & (when == last), order, -1), axis=1, keepdims=True)
    return (when > last) | ((when == last) & (order >= last_order))


def superpose(
    t: ArrayLike,
    doses: Doses,
    coeffs: ArrayLike,
    lambdas: ArrayLike,
    *,
    ka: ArrayLike | None = None,
    depot: int = 0,
    f: ArrayLike = 1.0,
    tlag: ArrayLike = 0.0,
    features: frozenset[str] | None = None,
) -> Array:
    """Response at times `t` of a linear model to every dose in `doses`, by superposition.

    Parameters
    ----------
    t : array, shape (...)
        Evaluation times (model time unit); any shape.
    doses : Doses
        One patient's padded dose records.
    coeffs : array, shape (n_cmt, n_exp)
        ``coeffs[c, i]``: weight of ``exp(-lambdas[i] t)`` in the output after a
        unit amount enters compartment ``c`` (include ``1 / V`` for concentrations).
        For the depot, the row describes the compartment it empties into.
    lambdas : array, shape (n_exp,)
        Rates of the exponential modes (1/time), ``> 0``.
    ka : scalar, optional
        First-order absorption rate (1/time) of compartment `depot`; None: no depot.
    depot : int
        Index of the absorption compartment (used only with `ka`).
    f, tlag : scalar or array of shape (n_cmt,)
        Bioavailability (scales the amount) and lag time of doses into each compartment.
    features : frozenset of str, optional
        Static promise about `doses` (see ``dose_features``): which of ``"ss"``,
        ``"infusion"`` and ``"reset"`` occur. Omitted kinds are skipped when
        compiling, so bolus-only histories get a ~10x cheaper kernel. None
        (default) handles everything.

    Returns
    -------
    array, shape (...)
        The summed response at each time. Float64 is needed (see the module docstring).

    Examples
    --------
    >>> from bayestwin.dynamics.events import Doses
    >>> d = Doses.single(time=0.0, amt=100.0, rate=50.0, n=2)  # 2 h infusion
    >>> f"{float(superpose(2.0, d, [[0.05]], [0.1])):.5f}"  # 50 * 0.05 * (1 - exp(-0.2)) / 0.1
    '4.53173'
    """
    t = jnp.asarray(t, dtype=doses.time.dtype)
    coeffs = jnp.asarray(coeffs)
    n_cmt = coeffs.shape[0]
    t1 = jnp.ravel(t)
    lam = jnp.asarray(lambdas)[None, None, :]

    valid = doses.mask & (doses.cmt >= 0) & (doses.cmt < n_cmt)
    cmt = jnp.clip(doses.cmt, 0, n_cmt - 1)
    f_dose = jnp.broadcast_to(jnp.asarray(f), (n_cmt,))[cmt]
    lag_dose = jnp.broadcast_to(jnp.asarray(tlag), (n_cmt,))[cmt]
    amount = f_dose * doses.amt
    infusion = doses.rate > 0
    rate = jnp.where(infusion, doses.rate, 1.0)
    is_ss = (doses.ss == 1) | (doses.ss == 2)
    has_ii = doses.ii > 0
    ii = jnp.where(has_ii, doses.ii, 1.0)
    constant = is_ss & infusion & ~has_ii
    dur = jnp.where(infusion & ~constant, amount / rate, 0.0)
    invalid = is_ss & ((~infusion & ~has_ii) | (infusion & has_ii & (dur > doses.ii)))

    general = features is None or bool(features & {"ss", "infusion"})
    since = t1[:, None] - doses.time[None, :]
    counts = valid[None, :] & (since >= 0)
    if features is None or "reset" in features or "ss" in features:
        counts = counts & _kept_after_resets(t1, doses)
    tau = jnp.where(counts, since, 0.0) - lag_dose[None, :]
    if not general:  # boluses only: exp(-lam tau) into a mode, ka * exp_dd(lam, ka, tau) through the depot
        active = counts & (tau >= 0)
        tau = jnp.where(active, tau, 0.0)[:, :, None]
        unit = jnp.exp(-lam * tau)
        if ka is not None:
            unit = jnp.where((doses.cmt == depot)[None, :, None], ka * exp_dd(lam, ka, tau), unit)
        value = jnp.where(active[:, :, None], amount[None, :, None] * unit, 0.0)
        return jnp.reshape(jnp.sum(coeffs[cmt][None, :, :] * value, axis=(1, 2)), t.shape)
    # A steady-state dose whose lagged last dose has not arrived yet: its earlier doses have.
    shift = jnp.where(is_ss[None, :] & (tau < 0), jnp.ceil(-tau / ii[None, :]), 0.0)
    tau = tau + shift * ii[None, :]
    active = counts & (tau >= 0)
    tau = jnp.where(active, tau, 0.0)[:, :, None]

    dur3, ii3, ss3, amount3 = (x[None, :, None] for x in (dur, ii, is_ss, amount))
    unit = direct_response(lam, tau, dur3, ii3, ss3)
    if ka is not None:
        absorbed = absorbed_response(lam, ka, tau, dur3, ii3, ss3)
        unit = jnp.where((doses.cmt == depot)[None, :, None], absorbed, unit)
    value = jnp.where(constant[None, :, None], (f_dose * doses.rate)[None, :, None] / lam, amount3 * unit)
    value = jnp.where(active[:, :, None], value, 0.0)
    total = jnp.sum(coeffs[cmt][None, :, :] * value, axis=(1, 2))
    total = jnp.where(jnp.any(active & invalid[None, :], axis=1), jnp.nan, total)
    return jnp.reshape(total, t.shape)
