"""Unit responses of one exponential mode to one dose record, single and at steady state.

A linear model's response in the central compartment to a unit bolus into
compartment ``c`` is ``sum_i A[c, i] exp(-lam_i t)``. This module gives, for one
mode ``exp(-lam t)``, the response to one dose record: bolus or zero-order
infusion, given once or as the last of an infinite train every ``ii`` (steady
state); either *directly* into the mode or through a first-order *absorption*
compartment (rate ``ka``). ``bayestwin.dynamics.closed_form`` sums these over
modes and the padded dose axis.

Everything is written with three stable building blocks, so that no formula
subtracts nearly equal numbers:

* ``phi(x) = (1 - exp(-x)) / x`` (``phi(0) = 1``), via ``expm1`` and a Taylor
  series for small ``|x|`` (so gradients at ``x = 0`` are exact, not 0 or NaN);
* ``exp_dd(a, b, t) = (exp(-a t) - exp(-b t)) / (b - a) = t exp(-min t) phi(|b - a| t)``,
  symmetric in ``a, b``, exact at ``a == b`` and free of overflow in flip-flop;
* ``exp_dd2(a, b, t)``, the second divided difference of ``k -> exp(-k t)`` at
  nodes ``0, a, b`` (the central response to a constant infusion into a depot).

The steady-state train sums are geometric series, ``sum_k exp(-lam (t + k ii)) =
exp(-lam t) / (1 - exp(-lam ii))``, and for the absorbed mode the divided
difference of ``g(k) = exp(-k t) / (1 - exp(-k ii))`` at ``lam, ka`` is expanded
by the Leibniz rule into positive terms, so ``ka == lam`` is exact.

Inputs are arrays that broadcast against each other (the caller passes
``(time, dose, mode)`` shaped arrays); elapsed times must be ``>= 0`` and rates
``> 0``. Float64 is needed: concentrations span many orders of magnitude across
a dosing history and likelihood sums amplify float32 rounding.

Examples
--------
>>> import jax.numpy as jnp
>>> f"{float(phi(jnp.asarray(0.0))):.3f}", f"{float(exp_dd(0.5, 0.5, 2.0)):.5f}"
('1.000', '0.73576')
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

__all__ = ["absorbed_response", "direct_response", "exp_dd", "exp_dd2", "phi"]

# phi: Taylor series for |x| < 0.1 with 10 terms (remainder < 0.1**10 / 11! ~ 3e-18); above it -expm1(-x) / x is
# accurate to a few ulp and its derivative to ~eps / x absolute (<= 2e-15 against |phi'| ~ 0.5).
_PHI_SERIES_BELOW = 0.1
_PHI_COEFFS = tuple((-1.0) ** n / math.factorial(n + 1) for n in range(10))
# exp_dd2: series for max(a, b) t < 0.01 with 6 terms (remainder < 7 * 0.01**6 / 8! ~ 2e-16 against a sum >= 0.49);
# above it the direct formula's cancellation costs a relative ~2 eps / (max(a, b) t) <= 5e-14, on values ~ t^2 / 2.
_DD2_SERIES_BELOW = 0.01
_DD2_COEFFS = tuple(1.0 / math.factorial(m + 2) for m in range(6))


def phi(x: ArrayLike) -> Array:
    """``(1 - exp(-x)) / x`` with ``phi(0) = 1``; accurate, with exact gradients, for all ``x >= 0``.

    Examples
    --------
    >>> f"{float(phi(1.0)):.6f}"
    '0.632121'
    """
    x = jnp.asarray(x)
    small = jnp.abs(x) < _PHI_SERIES_BELOW
    xs = jnp.where(small, x, 0.0)
    series = jnp.zeros_like(xs) + _PHI_COEFFS[-1]
    for c in reversed(_PHI_COEFFS[:-1]):
        series = series * xs + c
    xd = jnp.where(small, 1.0, x)  # the "double where": the unused branch never sees x = 0
    return jnp.where(small, series, -jnp.expm1(-xd) / xd)


def _lo_hi(a: ArrayLike, b: ArrayLike) -> tuple[Array, Array]:
    a_is_lo = a <= b
    return jnp.where(a_is_lo, a, b), jnp.where(a_is_lo, b, a)


def exp_dd(a: ArrayLike, b: ArrayLike, t: ArrayLike) -> Array:
    """``(exp(-a t) - exp(-b t)) / (b - a)``, stable for all rates ``a, b > 0`` and ``t >= 0``.

    Written as ``t exp(-lo t) phi((hi - lo) t)`` with ``lo, hi`` the smaller and
    larger rate: exact at ``a == b`` (``t exp(-a t)``), no overflow when the rates
    are far apart, and derivatives at ``a == b`` equal the one-sided (true) ones.

    Examples
    --------
    >>> f"{float(exp_dd(1.0, 2.0, 1.0)):.6f}"
    '0.232544'
    """
    lo, hi = _lo_hi(a, b)
    return t * jnp.exp(-lo * t) * phi((hi - lo) * t)


def exp_dd2(a: ArrayLike, b: ArrayLike, t: ArrayLike) -> Array:
    """Second divided difference of ``k -> exp(-k t)`` at nodes ``0, a, b`` (positive), for ``a, b > 0``, ``t >= 0``.

    Equals the convolution ``1 * exp(-a t) * exp(-b t)``: the amount in a mode of
    rate ``a`` fed by a depot of rate ``b`` under a unit-rate infusion into the
    depot, divided by ``b``. Direct formula ``t (phi(lo t) - exp(-lo t) phi((hi - lo) t)) / hi``
    where ``hi t >= 0.01``, else the series ``t^2 sum_m (-t)^m h_m(lo, hi) / (m + 2)!``
    with ``h_m`` the complete homogeneous symmetric polynomials.

    Examples
    --------
    >>> f"{float(exp_dd2(1.0, 1.0, 1e-3)):.4e}"  # ~ t^2 / 2 for small t
    '4.9967e-07'
    """
    lo, hi = _lo_hi(a, b)
    x, y = lo * t, hi * t
    small = y < _DD2_SERIES_BELOW
    xs, ys = jnp.where(small, x, 0.0), jnp.where(small, y, 0.0)
    h, x_pow = jnp.ones_like(xs), jnp.ones_like(xs)
    series = jnp.zeros_like(xs) + _DD2_COEFFS[0]
    for m, c in enumerate(_DD2_COEFFS[1:], start=1):
        x_pow = x_pow * xs
        h = ys * h + x_pow  # h_m(x, y) = y h_{m-1} + x^m
        series = series + ((-1.0) ** m * c) * h
    # Double where: the unused direct branch sees harmless values (finite, with finite derivatives).
    ld, hd, td = jnp.where(small, 0.5, lo), jnp.where(small, 1.0, hi), jnp.where(small, 1.0, t)
    phi_lo, phi_gap = _batched(phi, (ld * td,), ((hd - ld) * td,))
    direct = td * (phi_lo - jnp.exp(-ld * td) * phi_gap) / hd
    return jnp.where(small, t * t * series, direct)


def _batched(fn: Callable[..., Array], *calls: tuple[ArrayLike, ...]) -> list[Array]:
    """``[fn(*args) for args in calls]`` as one call on stacked arguments: a smaller graph, faster to compile."""
    shape = jnp.broadcast_shapes(*(jnp.shape(a) for args in calls for a in args))
    out = fn(*(jnp.stack([jnp.broadcast_to(a, shape) for a in column]) for column in zip(*calls, strict=True)))
    return [out[i] for i in range(len(calls))]


def _geometric(lam: Array, ii: Array) -> Array:
    """``1 / (1 - exp(-lam ii))``: the sum over a steady-state train, ``ii > 0``."""
    return 1.0 / -jnp.expm1(-lam * ii)


def direct_response(lam: ArrayLike, tau: Array, dur: Array, ii: Array, ss: Array) -> Array:
    """Response of mode ``exp(-lam t)`` per unit amount of a dose put directly into it.

    Parameters
    ----------
    lam : array
        Rate of the mode (1/time), ``> 0``.
    tau : array
        Time since the (lagged) dose started, ``>= 0``; for a steady-state dose,
        the time since the last dose of the train.
    dur : array
        Infusion duration (``0`` for a bolus); for ``ss``, ``dur <= ii``.
    ii : array
        Dosing interval of the steady-state train (``> 0`` where ``ss``).
    ss : bool array
        Add the earlier doses of the infinite train.

    Returns
    -------
    array
        Bolus ``exp(-lam tau)``; infusion ``(u / T) phi(lam u) exp(-lam (tau - u))``,
        ``u = min(tau, T)``; plus, for ``ss``, the earlier doses
        ``phi(lam T) exp(-lam (tau + ii - T)) / (1 - exp(-lam ii))``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> z = jnp.asarray(0.0)
    >>> f"{float(direct_response(0.1, jnp.asarray(5.0), z, jnp.asarray(1.0), jnp.asarray(False))):.6f}"
    '0.606531'
    """
    infusion = dur > 0
    inv_dur = jnp.where(infusion, 1.0 / jnp.where(infusion, dur, 1.0), 0.0)
    u = jnp.minimum(tau, dur)
    w = jnp.where(infusion, u * inv_dur, 1.0)
    phi_u, phi_dur = _batched(phi, (lam * u,), (lam * dur,))
    single = w * phi_u * jnp.exp(-lam * (tau - u))
    tau0 = jnp.where(ss, tau + ii - dur, tau)  # >= 0 where used; finite (no overflow) where not
    earlier = phi_dur * jnp.exp(-lam * tau0) * _geometric(lam, ii)
    return single + jnp.where(ss, earlier, 0.0)


def absorbed_response(lam: ArrayLike, ka: ArrayLike, tau: Array, dur: Array, ii: Array, ss: Array) -> Array:
    """Response of mode ``exp(-lam t)`` per unit amount of a dose into a depot absorbed at rate ``ka``.

    Same arguments as ``direct_response``, plus ``ka`` (1/time, ``> 0``). A
    unit bolus gives ``ka exp_dd(lam, ka, tau)``; an infusion gives the depot's
    and the mode's amounts at the end of the infusion decaying afterwards; the
    steady-state train adds ``sum_k exp_dd(lam, ka, tau0 + k ii) =
    exp_dd(lam, ka, tau0) s(ka) + exp(-lam tau0) exp_dd(lam, ka, ii) s(lam) s(ka)``
    (``s(k) = 1 / (1 - exp(-k ii))``, ``tau0`` the time since the previous dose
    ended): all terms positive, exact at ``ka == lam``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> z, f = jnp.asarray(0.0), jnp.asarray(False)
    >>> f"{float(absorbed_response(0.1, 1.0, jnp.asarray(2.0), z, jnp.asarray(1.0), f)):.6f}"
    '0.759328'
    """
    infusion = dur > 0
    inv_dur = jnp.where(infusion, 1.0 / jnp.where(infusion, dur, 1.0), 0.0)
    u = jnp.minimum(tau, dur)
    w = jnp.where(infusion, u * inv_dur, 1.0)
    after = tau - u
    tau0 = jnp.where(ss, tau + ii - dur, tau)  # since the previous dose of the train ended; finite where unused
    dd2_u, dd2_dur = _batched(exp_dd2, (lam, ka, u), (lam, ka, dur))
    dd_after, dd_tau0, dd_ii = _batched(exp_dd, (lam, ka, after), (lam, ka, tau0), (lam, ka, ii))
    phi_u, phi_dur = _batched(phi, (ka * u,), (ka * dur,))
    s_lam, s_ka = _batched(_geometric, (lam, ii), (ka, ii))
    single = dd2_u * inv_dur * jnp.exp(-lam * after) + w * phi_u * dd_after
    train = dd_tau0 * s_ka + jnp.exp(-lam * tau0) * dd_ii * s_lam * s_ka
    earlier = dd2_dur * inv_dur * jnp.exp(-lam * tau0) * s_lam + phi_dur * train
    return ka * (single + jnp.where(ss, earlier, 0.0))
