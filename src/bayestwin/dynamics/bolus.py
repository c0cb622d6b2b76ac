"""The response to one bolus, element by element, with its derivatives written out (issue 9).

``bolus_unit(lam, ka, tau, into_depot)`` is what ``closed_form.superpose`` evaluates on every (time, dose, mode)
element of a bolus-only history: ``exp(-lam tau)`` for a dose into a mode's compartment, and
``ka exp_dd(lam, ka, tau)`` for a dose into the depot, where ``exp_dd(a, b, t) = (exp(-a t) - exp(-b t)) /
(b - a)`` is the divided difference of the two exponentials.

Value (as before the derivatives were written out): ``exp_dd = -e_lo expm1(-|x|) / |b - a|`` with ``e_lo =
exp(-min(a, b) t)`` and ``x = (b - a) t``: no series and no cancellation, accurate to a few ulp for every
``x``; ``e_lo`` is ``exp(-a t)`` itself (which a dose into the mode needs anyway) unless ``b < a`` (flip-flop).
Where ``x == 0`` (``a == b``, or ``t == 0``) it is ``t e_a (1 - x / 2)``. When every dose goes into the depot
(no ``direct`` dose feature), the second exponential is ``e_lo (1 + expm1(-|x|))``: one transcendental call
fewer per element (~9 % less CPU time per step at N = 200, 4 chains), not used for histories with a dose into
the central compartment, whose ``exp(-a t)`` it would lose below ``eps exp(-b t)`` in flip-flop.

Derivatives (``jax.custom_jvp``), from the exponentials the value already computed:

* ``d exp_dd / dt = exp(-b t) - a exp_dd`` (exact, no cancellation),
* ``d exp_dd / da = (exp_dd - t exp(-a t)) / (b - a)``, ``d exp_dd / db = (t exp(-b t) - exp_dd) / (b - a)``,
  and ``-t**2 exp(-a t) / 2`` for both where ``x == 0`` (exact). Elsewhere these cancel to ``~x**2 / 2``: a
  relative error of about ``2 eps / |x|`` (``<= 1e-10`` for ``|x| >= 5e-6``, e.g. ``|ka - ke| >= 2e-5`` /h with
  samples from 0.25 h on), as JAX's derivative of the same value had.

Why: JAX's reverse-mode derivative of the value's selects and branches, and XLA's fusion (which recomputes a
cheap chain of element-wise operations inside every fusion that consumes it), made the compiled gradient of the
N = 200 population density ~11x the cost of its value (1.07 Mflop, vs 0.24 for the model written directly in
NumPyro; ``benchmarks/pmap_cost.py``), and 4 chains under ``pmap`` on 2 cores pay for that work. With the
derivatives written out (and the depot-only form above): 0.81 Mflop and 8,417 transcendental calls (were 10,817),
and ~28 % less CPU time per step of 4 chains (same script; docs/benchmarks.md, "The pmap gap").

Float64 is needed, as for every closed-form kernel (``closed_form`` module docstring).

Examples
--------
>>> import jax, jax.numpy as jnp
>>> jax.config.update("jax_enable_x64", True)
>>> u = bolus_unit(jnp.array(0.1), jnp.array(1.0), jnp.array(2.0), jnp.array(True))
>>> f"{float(u):.6f}"  # 1.0 * (exp(-0.2) - exp(-2)) / 0.9
'0.759328'
>>> g = jax.grad(lambda a: bolus_unit(a, 1.0, 2.0, True))(0.1)
>>> f"{float(g):.6f}"  # ka (exp_dd - t exp(-a t)) / (b - a)
'-0.975704'
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array
from jax.custom_derivatives import SymbolicZero

__all__ = ["EQUAL_RATES_BELOW", "bolus_unit"]

# Below this |b - a| (1/time) the bolus kernel treats the rates as equal: a guard, not an approximation (the
# relative error of t e_a (1 - x / 2) is x**2 / 6 < 1e-400 t**2 there); it keeps 1 / |b - a| finite.
EQUAL_RATES_BELOW = 1e-200


def _parts(a: Array, b: Array, t: Array, exact: bool) -> tuple[Array, ...]:
    """``(e_a, e_b, dd, near, inv_diff)`` for ``t >= 0``: both exponentials, ``exp_dd(a, b, t)``, its branch.

    ``exact``: ``e_a = exp(-a t)`` is computed directly, to full relative accuracy (a dose into the mode needs
    it, even far below ``eps exp(-b t)``), and ``exp(-b t)`` directly too in flip-flop (``b < a``): three
    transcendental calls per element. Otherwise (every dose into the depot) two: ``e_lo = exp(-min(a, b) t)``
    and ``expm1(-|x|)``, the other exponential being ``e_lo (1 + expm1(-|x|))`` (no overflow; in flip-flop it
    is exact only to ``eps e_lo`` absolute, ample for ``exp_dd`` and its derivatives). Reciprocals of ``b - a``
    are taken once per rate pair, not per element.
    """
    diff = b - a
    x = diff * t
    equal = jnp.abs(diff) < EQUAL_RATES_BELOW
    flip = diff < 0
    inv_diff = 1.0 / jnp.where(equal, 1.0, diff)
    m = jnp.expm1(-jnp.abs(x))
    if exact:
        e_a = jnp.exp(-a * t)
        e_lo = jnp.where(flip, jnp.exp(-b * t), e_a)
        e_b = jnp.where(flip, e_lo, e_a + e_a * m)
    else:
        e_lo = jnp.exp(-jnp.minimum(a, b) * t)
        e_hi = e_lo + e_lo * m
        e_a, e_b = jnp.where(flip, e_hi, e_lo), jnp.where(flip, e_lo, e_hi)
    near = (x == 0) | equal
    dd = jnp.where(near, t * e_a * (1.0 - 0.5 * x), -e_lo * m * jnp.abs(inv_diff))
    return e_a, e_b, dd, near, inv_diff


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def bolus_unit(lam: Array, ka: Array, tau: Array, into_depot: Array, exact: bool = True) -> Array:
    """Response at ``tau >= 0`` after a unit bolus: ``ka exp_dd(lam, ka, tau)`` into the depot, else ``exp(-lam tau)``.

    Arguments broadcast together (e.g. ``lam`` ``(1, 1, mode)``, ``tau`` ``(time, dose, 1)``, ``into_depot``
    ``(1, dose, 1)`` bool). Pass ``tau = 0`` for elements that do not count (their value is then 0 into the
    depot, 1 into a mode: mask them afterwards). Derivatives in ``lam``, ``ka`` and ``tau`` are closed-form
    (module docstring); ``into_depot`` is not differentiable. ``exact`` (static): compute ``exp(-lam tau)`` to full
    relative accuracy, as a dose into a mode needs; False (every dose into the depot) saves one transcendental
    call per element (see ``_parts``).

    Examples
    --------
    >>> [f"{float(bolus_unit(0.5, 2.0, 1.0, d)):.6f}" for d in (False, True)]  # exp(-0.5), 2 (e^-0.5 - e^-2) / 1.5
    ['0.606531', '0.628261']
    """
    e_a, _e_b, dd, _near, _inv = _parts(lam, ka, tau, exact)
    return jnp.where(into_depot, ka * dd, e_a)


def _bolus_unit_jvp(exact: bool, primals: tuple[Array, ...], tangents: tuple[Array, ...]) -> tuple[Array, Array]:
    lam, ka, tau, into_depot = primals
    d_lam, d_ka, d_tau, _ = tangents
    e_a, e_b, dd, near, inv_diff = _parts(lam, ka, tau, exact)
    value = jnp.where(into_depot, ka * dd, e_a)
    half_t2 = -0.5 * tau * tau * e_a  # both rate derivatives where a == b (exact)
    terms = []
    if not isinstance(d_lam, SymbolicZero):
        dd_a = jnp.where(near, half_t2, (dd - tau * e_a) * inv_diff)
        terms.append(jnp.where(into_depot, ka * dd_a, -tau * e_a) * d_lam)
    if not isinstance(d_ka, SymbolicZero):
        dd_b = jnp.where(near, half_t2, (tau * e_b - dd) * inv_diff)
        terms.append(jnp.where(into_depot, dd + ka * dd_b, 0.0) * d_ka)
    if not isinstance(d_tau, SymbolicZero):
        terms.append(jnp.where(into_depot, ka * (e_b - lam * dd), -lam * e_a) * d_tau)
    tangent = sum(terms[1:], terms[0]) if terms else jnp.zeros_like(value)
    return value, jnp.broadcast_to(tangent, value.shape)


bolus_unit.defjvp(_bolus_unit_jvp, symbolic_zeros=True)
