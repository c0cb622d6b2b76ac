"""The closed-form models as tables of exponential modes, and the bolus superposition with its VJP written out.

``closed_form.superpose`` takes a linear model as a table: ``coeffs`` (compartment x mode), ``lambdas`` (mode),
an optional absorption rate ``ka`` into the compartment ``depot``, and per-compartment bioavailability ``f`` and
lag ``tlag``. ``Superposition`` holds that table for one patient; ``one_cmt_iv_table`` ... ``two_cmt_oral_table``
build it from the parameters exactly as the models of ``closed_form`` do (same operations, so the same bits).

``bolus_value_and_vjp(table, doses, t, features)`` evaluates the bolus-only superposition (``features`` without
``ss``/``infusion``) at times ``t`` and returns, with the predictions, a function that maps a cotangent on them
to the cotangent on the table, written out from the exponentials the value computed (``bolus._parts``): each
(time, dose, mode) element is visited once, and every derivative of the table is a sum over those elements.
Autodiff of the same value gives the same numbers, but its reverse pass is a chain of element-wise operations
that XLA's CPU fusion recomputes inside each consumer (issue 9, ``benchmarks/grad_floor.py``).
``inference.fused_loglik`` uses it for the population log density's observation block.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> jax.config.update("jax_enable_x64", True)
>>> from bayestwin.dynamics.events import Doses
>>> tab = one_cmt_oral_table(jnp.array(1.0), jnp.array(2.0), jnp.array(20.0))
>>> pred, vjp = bolus_value_and_vjp(tab, Doses.single(time=0.0, amt=100.0), jnp.array([2.0]), frozenset())
>>> f"{float(pred[0]):.5f}"  # closed_form.one_cmt_oral(2.0, ...)
'3.79664'
>>> f"{float(vjp(jnp.array([1.0])).ka):.5f}"  # d C(2) / d ka
'1.08188'
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from bayestwin.dynamics.bolus import _parts
from bayestwin.dynamics.closed_form import _kept_after_resets, _per_cmt, _pick, _two_cmt_modes
from bayestwin.dynamics.events import Doses

__all__ = ["Superposition", "bolus_value_and_vjp", "one_cmt_iv_table", "one_cmt_oral_table", "two_cmt_iv_table",
           "two_cmt_oral_table"]


class Superposition(NamedTuple):
    """One patient's linear model as ``closed_form.superpose`` takes it (``depot`` is given separately).

    ``coeffs`` ``(n_cmt, n_mode)``, ``lambdas`` ``(n_mode,)``, ``ka`` a scalar or None (no depot), ``f`` and
    ``tlag`` ``(n_cmt,)`` or scalars.
    """

    coeffs: Array
    lambdas: Array
    ka: Array | None
    f: Array
    tlag: Array


def one_cmt_iv_table(cl: ArrayLike, v: ArrayLike) -> Superposition:
    """The table of ``closed_form.one_cmt_iv``.

    Examples
    --------
    >>> one_cmt_iv_table(2.0, 20.0).lambdas.tolist()
    [0.1]
    """
    cl, v = jnp.asarray(cl), jnp.asarray(v)
    return Superposition(jnp.reshape(1.0 / v, (1, 1)), jnp.reshape(cl / v, (1,)), None, jnp.asarray(1.0),
                         jnp.asarray(0.0))


def one_cmt_oral_table(ka: ArrayLike, cl: ArrayLike, v: ArrayLike, f: ArrayLike = 1.0,
                       tlag: ArrayLike = 0.0) -> Superposition:
    """The table of ``closed_form.one_cmt_oral`` (depot 0).

    Examples
    --------
    >>> one_cmt_oral_table(1.0, 2.0, 20.0).coeffs.shape
    (2, 1)
    """
    cl, v = jnp.asarray(cl), jnp.asarray(v)
    return Superposition(jnp.broadcast_to(jnp.reshape(1.0 / v, (1, 1)), (2, 1)), jnp.reshape(cl / v, (1,)),
                         jnp.asarray(ka), _per_cmt(f, 2, 0, 1.0), _per_cmt(tlag, 2, 0, 0.0))


def two_cmt_iv_table(cl: ArrayLike, v1: ArrayLike, q: ArrayLike, v2: ArrayLike) -> Superposition:
    """The table of ``closed_form.two_cmt_iv``.

    Examples
    --------
    >>> two_cmt_iv_table(2.0, 20.0, 3.0, 40.0).coeffs.shape
    (2, 2)
    """
    lam, central, peripheral = _two_cmt_modes(cl, v1, q, v2)
    return Superposition(jnp.stack([central, peripheral]) / v1, lam, None, jnp.asarray(1.0), jnp.asarray(0.0))


def two_cmt_oral_table(ka: ArrayLike, cl: ArrayLike, v1: ArrayLike, q: ArrayLike, v2: ArrayLike,
                       f: ArrayLike = 1.0, tlag: ArrayLike = 0.0) -> Superposition:
    """The table of ``closed_form.two_cmt_oral`` (depot 0).

    Examples
    --------
    >>> two_cmt_oral_table(1.5, 2.0, 20.0, 3.0, 40.0).coeffs.shape
    (3, 2)
    """
    lam, central, peripheral = _two_cmt_modes(cl, v1, q, v2)
    return Superposition(jnp.stack([central, central, peripheral]) / v1, lam, jnp.asarray(ka),
                         _per_cmt(f, 3, 0, 1.0), _per_cmt(tlag, 3, 0, 0.0))


def _by_cmt(per_dose: Array, cmt: Array, n_cmt: int) -> Array:
    """``(n_cmt, ...)``: the sum of `per_dose` (dose first) over the doses into each compartment (``_pick``'s VJP)."""
    shape = cmt.shape + (1,) * (per_dose.ndim - 1)
    return jnp.stack([jnp.sum(jnp.where(jnp.reshape(cmt == c, shape), per_dose, 0.0), axis=0) for c in range(n_cmt)])


def bolus_value_and_vjp(table: Superposition, doses: Doses, t: Array, features: frozenset[str], depot: int = 0):
    """Predictions at times `t` (1-D) of a bolus-only history, and ``cotangent -> Superposition`` (its VJP).

    The predictions are ``closed_form.superpose(t, doses, *table, depot=depot, features=features)``'s, computed
    by the same operations; `features` must hold neither ``ss`` nor ``infusion`` (ValueError). The VJP's
    ``ka`` is None when the table has none; ``f`` and ``tlag`` come back with shape ``(n_cmt,)``.
    """
    if features & {"ss", "infusion"}:
        raise ValueError("bolus_value_and_vjp needs a bolus-only history (features without 'ss' and 'infusion')")
    coeffs = jnp.asarray(table.coeffs)
    n_cmt = coeffs.shape[0]
    lam = jnp.asarray(table.lambdas)[None, None, :]
    valid = doses.mask & (doses.cmt >= 0) & (doses.cmt < n_cmt)
    cmt = jnp.clip(doses.cmt, 0, n_cmt - 1)
    f_dose = _pick(jnp.broadcast_to(jnp.asarray(table.f), (n_cmt,)), cmt)
    lag_dose = _pick(jnp.broadcast_to(jnp.asarray(table.tlag), (n_cmt,)), cmt)
    amount = f_dose * doses.amt
    since = t[:, None] - doses.time[None, :]
    counts = valid[None, :] & (since >= 0)
    if "reset" in features:
        counts = counts & _kept_after_resets(t, doses)
    tau = jnp.where(counts, since, 0.0) - lag_dose[None, :]
    active = counts & (tau >= 0)
    tau = jnp.where(active, tau, 0.0)[:, :, None]
    act = active[:, :, None]
    c_dose = _pick(coeffs, cmt)  # (dose, mode)
    if table.ka is None:
        e_a = jnp.exp(-lam * tau)
        unit = e_a
    else:
        ka = table.ka
        into = (doses.cmt == depot)[None, :, None]
        exact = "direct" in features or depot != 0
        e_a, e_b, dd, near, inv_diff = _parts(lam, ka, tau, exact)
        unit = jnp.where(into, ka * dd, e_a)
    value = jnp.where(act, amount[None, :, None] * unit, 0.0)
    pred = jnp.sum(c_dose[None, :, :] * value, axis=(1, 2))

    def vjp(ct: Array) -> Superposition:
        g = jnp.where(act, ct[:, None, None], 0.0)  # (time, dose, mode)
        g_cu = g * unit
        d_value = jnp.sum(g_cu, axis=0)  # d / d (c_dose amount), (dose, mode)
        d_coeffs = _by_cmt(d_value * amount[:, None], cmt, n_cmt)
        d_f = _by_cmt(jnp.sum(d_value * c_dose, axis=1) * doses.amt, cmt, n_cmt)
        gw = g * (c_dose * amount[:, None])[None, :, :]
        if table.ka is None:
            d_lam = jnp.sum(gw * (-tau * e_a), axis=(0, 1))
            d_tau = jnp.sum(gw * (-lam * e_a), axis=2)
            d_ka = None
        else:
            half_t2 = -0.5 * tau * tau * e_a
            dd_a = jnp.where(near, half_t2, (dd - tau * e_a) * inv_diff)
            dd_b = jnp.where(near, half_t2, (tau * e_b - dd) * inv_diff)
            d_lam = jnp.sum(gw * jnp.where(into, ka * dd_a, -tau * e_a), axis=(0, 1))
            d_ka = jnp.sum(gw * jnp.where(into, dd + ka * dd_b, 0.0))
            d_tau = jnp.sum(gw * jnp.where(into, ka * (e_b - lam * dd), -lam * e_a), axis=2)
        d_tlag = _by_cmt(-jnp.sum(d_tau, axis=0), cmt, n_cmt)
        return Superposition(d_coeffs, d_lam, d_ka, d_f, d_tlag)

    return pred, vjp
