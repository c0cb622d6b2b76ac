"""Closed-form linear PK models: superposition of exact dose responses over padded dose records.

A linear model's amount (or concentration) in the central compartment after a
unit bolus into compartment ``c`` is a sum of exponentials
``sum_i coeffs[c, i] exp(-lambdas[i] t)``. ``superpose`` turns such a table
into concentrations at arbitrary times for a whole ``Doses``
history: boluses, zero-order infusions, steady-state doses (``ss`` 1 and 2),
resets, bioavailability, lag times, and an optional first-order absorption
(depot) compartment. The models below only compute their ``coeffs`` and
``lambdas``; a new linear model is one more such function.

Semantics (the conventions of ``bayestwin.dynamics.events``, plus):

* a dose counts from its record time on (right-continuous: at ``t == time`` a
  bolus has just been given); with a lag, from ``time + tlag``;
* ``rate > 0`` is an infusion of ``f * amt`` at ``rate`` (bioavailability
  changes its duration, as in NONMEM); ``rate <= 0`` is a bolus (the modelled
  codes -1/-2 must be resolved before calling);
* a steady-state record (``ss`` 1 or 2, ``ii > 0``) is the last dose of an
  infinite train every ``ii`` ending at ``time``; it contributes only from its
  record time on: ``ss == 1`` resets first, ``ss == 2`` adds the steady-state
  amounts at ``time`` to what is there (NONMEM's semantics). With a lag, the
  train's earlier (lagged) doses are already present at ``time``;
* ``ss`` with ``ii == 0`` and ``rate > 0`` is a constant infusion at steady state
  (``amt`` ignored), contributing ``f * rate * sum_i coeffs[c, i] / lambdas[i]``
  from ``time`` until the next reset;
* a record with ``reset`` (or ``ss == 1``) removes, for all later times, every
  dose recorded before it: earlier in time, or at the same time but earlier in
  the record order. Resets compare record times, so a lagged dose recorded
  before a reset is removed even if it would arrive after it;
* padded entries (``mask`` false) and doses into a compartment outside
  ``0 .. n_cmt - 1`` contribute nothing;
* unsupported steady-state records give NaN rather than a wrong number: a
  bolus with ``ii <= 0``, or an infusion lasting longer than ``ii`` (the data
  layer rejects both, rules D005 and D003).

All kernels are pure JAX: ``jit``, ``vmap`` (stack ``Doses`` along a
leading patient axis) and ``grad`` with respect to every parameter apply, with
finite gradients everywhere (including ``ka == ke``). The work is a vectorised
``(time, dose, mode)`` array, no Python loops over doses or patients.

Float64 is needed (``jax.config.update("jax_enable_x64", True)``): a dosing
history adds many terms spanning orders of magnitude, steady-state sums divide
by ``1 - exp(-lam ii)``, and log-likelihoods of proportional errors need
concentrations far below float32's resolution; float32 runs but loses digits.

Examples
--------
>>> from bayestwin.dynamics.events import Doses
>>> c = one_cmt_iv(jnp.array([0.0, 5.0]), Doses.single(time=0.0, amt=100.0, n=4), cl=2.0, v=20.0)
>>> [f"{x:.5f}" for x in c.tolist()]  # 100 / 20 * exp(-0.1 t)
['5.00000', '3.03265']
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from bayestwin.dynamics.bolus import bolus_unit
from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.steady_state import absorbed_response, direct_response, phi

__all__ = [
    "dose_features", "log_one_cmt_oral_single", "one_cmt_iv", "one_cmt_oral", "superpose", "two_cmt_iv",
    "two_cmt_oral",
]


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
        ``"infusion"``, ``"reset"`` and ``"direct"`` occur. Omitted kinds are skipped when
        compiling, so bolus-only histories get a ~10x cheaper kernel (and, through
        a depot, a divided difference without series: see ``bolus.bolus_unit``). None
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
    f_dose = _pick(jnp.broadcast_to(jnp.asarray(f), (n_cmt,)), cmt)
    lag_dose = _pick(jnp.broadcast_to(jnp.asarray(tlag), (n_cmt,)), cmt)
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
        exact = features is None or "direct" in features or depot != 0  # exp(-lam tau) itself for direct doses
        unit = jnp.exp(-lam * tau) if ka is None else bolus_unit(lam, ka, tau, (doses.cmt == depot)[None, :, None],
                                                                  exact)
        value = jnp.where(active[:, :, None], amount[None, :, None] * unit, 0.0)
        return jnp.reshape(jnp.sum(_pick(coeffs, cmt)[None, :, :] * value, axis=(1, 2)), t.shape)
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
    total = jnp.sum(_pick(coeffs, cmt)[None, :, :] * value, axis=(1, 2))
    total = jnp.where(jnp.any(active & invalid[None, :], axis=1), jnp.nan, total)
    return jnp.reshape(total, t.shape)


def _pick(table: Array, cmt: Array) -> Array:
    """``table[cmt]`` for a small static first axis, as selects; `cmt` must lie in ``0 .. len(table) - 1``.

    A gather's gradient is a scatter, slow on CPU (measured: ~20 % of the bolus kernel at N = 200).
    """
    table = jnp.asarray(table)
    shape = cmt.shape + (1,) * (table.ndim - 1)
    out = jnp.broadcast_to(table[0], cmt.shape + table.shape[1:])
    for c in range(1, table.shape[0]):
        out = jnp.where(jnp.reshape(cmt == c, shape), table[c], out)
    return out


def dose_features(doses: Doses) -> frozenset[str]:
    """Which dose kinds occur in concrete (non-traced) `doses`: ``ss``, ``infusion``, ``reset``, ``direct``.

    ``direct``: a dose into a compartment other than the first (for the oral models, one that bypasses the depot).

    Examples
    --------
    >>> dose_features(Doses.single(time=0.0, amt=100.0, rate=50.0, n=2))
    frozenset({'infusion'})
    """
    import numpy as np

    mask = np.asarray(doses.mask)
    kinds = {"ss": np.asarray(doses.ss)[mask] != 0, "infusion": np.asarray(doses.rate)[mask] > 0,
             "reset": np.asarray(doses.reset)[mask], "direct": np.asarray(doses.cmt)[mask] != 0}
    return frozenset(k for k, v in kinds.items() if v.any())


def _per_cmt(value: ArrayLike, n_cmt: int, where: int, other: float) -> Array:
    """Array of shape (n_cmt,): `value` at index `where`, `other` elsewhere."""
    return jnp.where(jnp.arange(n_cmt) == where, value, other)


def one_cmt_iv(
    t: ArrayLike, doses: Doses, cl: ArrayLike, v: ArrayLike, *, features: frozenset[str] | None = None
) -> Array:
    """Concentration in a one-compartment model with IV doses (``cmt`` 0 = central).

    ``C(t) = sum_doses amt / v * exp(-(cl / v) tau)`` for boluses, with the
    infusion and steady-state forms of ``superpose``.

    Parameters
    ----------
    t : array
        Times (h). Float64 is needed (see the module docstring).
    doses : Doses
        Padded dose records.
    cl, v : scalar
        Clearance (L/h) and volume (L), ``> 0``.

    Examples
    --------
    >>> from bayestwin.dynamics.events import Doses
    >>> f"{float(one_cmt_iv(5.0, Doses.single(time=0.0, amt=100.0), 2.0, 20.0)):.5f}"
    '3.03265'
    """
    return superpose(t, doses, jnp.reshape(1.0 / v, (1, 1)), jnp.reshape(cl / v, (1,)), features=features)


def one_cmt_oral(
    t: ArrayLike, doses: Doses, ka: ArrayLike, cl: ArrayLike, v: ArrayLike, *, f: ArrayLike = 1.0,
    tlag: ArrayLike = 0.0, features: frozenset[str] | None = None,
) -> Array:
    """Concentration in a one-compartment model with first-order absorption.

    ``cmt`` 0 is the depot (bioavailability `f`, lag `tlag`), ``cmt`` 1 the
    central compartment (IV doses, no `f` or lag). A depot bolus gives
    ``amt f ka / v * tau exp(-lo tau) phi((hi - lo) tau)`` with ``lo, hi`` the
    smaller and larger of ``ka`` and ``ke = cl / v`` and ``phi(x) = -expm1(-x) / x``:
    the Bateman function, exact at ``ka == ke``, stable in flip-flop (``ka < ke``),
    with finite gradients everywhere. Steady-state oral doses are equally
    stable (see ``absorbed_response``). Bolus-only histories (``features`` without
    ``ss``/``infusion``) take a cheaper form, ``-exp(-lo tau) expm1(-(hi - lo) tau) / (hi - lo)``:
    the same values to a few ulp, gradients exact at ``ka == ke`` and to ~``2 eps / |x|``
    relative elsewhere, ``x = (ka - ke) tau`` (see ``bolus.bolus_unit``).

    Parameters
    ----------
    t : array
        Times (h). Float64 is needed (see the module docstring).
    doses : Doses
        Padded dose records.
    ka, cl, v : scalar
        Absorption rate (1/h), clearance (L/h), volume (L), ``> 0``.
    f, tlag : scalar
        Bioavailability and lag time (h) of depot doses.

    Examples
    --------
    >>> from bayestwin.dynamics.events import Doses
    >>> f"{float(one_cmt_oral(2.0, Doses.single(time=0.0, amt=100.0), 1.0, 2.0, 20.0)):.5f}"
    '3.79664'
    """
    lam = jnp.reshape(cl / v, (1,))
    coeffs = jnp.broadcast_to(jnp.reshape(1.0 / v, (1, 1)), (2, 1))
    return superpose(t, doses, coeffs, lam, ka=ka, depot=0, f=_per_cmt(f, 2, 0, 1.0), tlag=_per_cmt(tlag, 2, 0, 0.0),
                     features=features)


def log_one_cmt_oral_single(
    tau: ArrayLike, amt: ArrayLike, ka: ArrayLike, cl: ArrayLike, v: ArrayLike, *, f: ArrayLike = 1.0
) -> Array:
    """Log concentration after a single oral bolus, finite where the concentration underflows.

    ``log(f amt ka / v) + log(tau) - lo tau + log(phi((hi - lo) tau))`` (see
    ``one_cmt_oral``); ``-inf`` for ``tau <= 0``. For log-normal error models
    at long times after the dose (e.g. ``tau = 1e4`` h), where ``exp(-ke tau)`` is 0
    in floating point but its logarithm is an ordinary number.

    Parameters
    ----------
    tau : array
        Time since the (lagged) dose (h).
    amt : scalar
        Dose (mg); `f` its bioavailability.
    ka, cl, v : scalar
        Absorption rate (1/h), clearance (L/h), volume (L), ``> 0``.

    Examples
    --------
    >>> f"{float(log_one_cmt_oral_single(1e4, 100.0, 1.0, 2.0, 20.0)):.4f}"  # C = exp(-998.3) underflows
    '-998.2852'
    """
    tau = jnp.asarray(tau)
    ke = cl / v
    positive = tau > 0
    ts = jnp.where(positive, tau, 1.0)
    a_is_lo = ka <= ke
    lo, hi = jnp.where(a_is_lo, ka, ke), jnp.where(a_is_lo, ke, ka)
    log_c = jnp.log(f * amt * ka / v) + jnp.log(ts) - lo * ts + jnp.log(phi((hi - lo) * ts))
    return jnp.where(positive, log_c, -jnp.inf)


def _two_cmt_modes(cl: ArrayLike, v1: ArrayLike, q: ArrayLike, v2: ArrayLike) -> tuple[Array, Array, Array]:
    """Macro rates ``(alpha, beta)`` and central-amount coefficients for central and peripheral inputs.

    ``alpha, beta`` solve ``x^2 - (k10 + k12 + k21) x + k10 k21 = 0``; with
    ``a = k10 + k12 - k21`` and ``root = sqrt(a^2 + 4 k12 k21) = alpha - beta``
    (no cancellation), ``beta = k10 k21 / alpha``, and the central bolus
    coefficients ``(alpha - k21) / root``, ``(k21 - beta) / root`` are computed
    as sums of positive terms.
    """
    k10, k12, k21 = cl / v1, q / v1, q / v2
    a = k10 + k12 - k21
    root = jnp.sqrt(a * a + 4.0 * k12 * k21)
    alpha = 0.5 * (k10 + k12 + k21 + root)
    beta = k10 * k21 / alpha
    pos = a >= 0
    a_safe_pos, a_safe_neg = jnp.where(pos, a, 0.0), jnp.where(pos, -1.0, a)
    alpha_minus_k21 = jnp.where(pos, 0.5 * (a_safe_pos + root), 2.0 * k12 * k21 / (root - a_safe_neg))
    root_minus_a = jnp.where(pos, 4.0 * k12 * k21 / (root + a_safe_pos), root - a_safe_neg)
    alpha_minus_k10 = k12 + 0.5 * root_minus_a
    central = jnp.stack([alpha_minus_k21 / root, k21 * alpha_minus_k10 / (alpha * root)])
    peripheral = jnp.stack([-k21 / root, k21 / root])
    return jnp.stack([alpha, beta]), central, peripheral


def two_cmt_iv(
    t: ArrayLike, doses: Doses, cl: ArrayLike, v1: ArrayLike, q: ArrayLike, v2: ArrayLike, *,
    features: frozenset[str] | None = None,
) -> Array:
    """Concentration in the central compartment of a two-compartment model with IV doses.

    ``cmt`` 0 is central, 1 peripheral. A central bolus gives
    ``amt / v1 * (A exp(-alpha t) + B exp(-beta t))`` with ``A = (alpha - k21) / (alpha - beta)``,
    ``B = (k21 - beta) / (alpha - beta)``; ``k10 = cl / v1``, ``k12 = q / v1``, ``k21 = q / v2``.

    Parameters
    ----------
    t : array
        Times (h). Float64 is needed (see the module docstring).
    doses : Doses
        Padded dose records.
    cl, v1, q, v2 : scalar
        Clearance (L/h), central volume (L), intercompartmental clearance (L/h),
        peripheral volume (L), ``> 0``.

    Examples
    --------
    >>> from bayestwin.dynamics.events import Doses
    >>> f"{float(two_cmt_iv(0.0, Doses.single(time=0.0, amt=100.0), 2.0, 20.0, 3.0, 40.0)):.5f}"
    '5.00000'
    """
    lam, central, peripheral = _two_cmt_modes(cl, v1, q, v2)
    return superpose(t, doses, jnp.stack([central, peripheral]) / v1, lam, features=features)


def two_cmt_oral(
    t: ArrayLike, doses: Doses, ka: ArrayLike, cl: ArrayLike, v1: ArrayLike, q: ArrayLike, v2: ArrayLike, *,
    f: ArrayLike = 1.0, tlag: ArrayLike = 0.0, features: frozenset[str] | None = None,
) -> Array:
    """Central concentration of a two-compartment model with first-order absorption.

    ``cmt`` 0 is the depot (bioavailability `f`, lag `tlag`), 1 central, 2
    peripheral. Each mode's absorbed response uses the stable divided difference
    of ``one_cmt_oral``, so ``ka`` equal or close to ``alpha`` or ``beta`` is exact.

    Parameters
    ----------
    t : array
        Times (h). Float64 is needed (see the module docstring).
    doses : Doses
        Padded dose records.
    ka, cl, v1, q, v2 : scalar
        Absorption rate (1/h) and the parameters of ``two_cmt_iv``, ``> 0``.
    f, tlag : scalar
        Bioavailability and lag time (h) of depot doses.

    Examples
    --------
    >>> from bayestwin.dynamics.events import Doses
    >>> c = two_cmt_oral(jnp.array([0.0, 1.0]), Doses.single(time=0.0, amt=100.0), 1.0, 2.0, 20.0, 3.0, 40.0)
    >>> [f"{x:.4f}" for x in c.tolist()]
    ['0.0000', '2.7459']
    """
    lam, central, peripheral = _two_cmt_modes(cl, v1, q, v2)
    coeffs = jnp.stack([central, central, peripheral]) / v1
    return superpose(t, doses, coeffs, lam, ka=ka, depot=0, f=_per_cmt(f, 3, 0, 1.0), tlag=_per_cmt(tlag, 3, 0, 0.0),
                     features=features)
