"""Exact propagation of linear compartment systems over an interval: ``da/dt = K a + rate``.

Used by the ODE engine (``solve_amounts(..., matrix=...)``) for linear models with piecewise-constant
parameters (time-varying covariates), where it replaces the adaptive solver: no tolerance, and about
10x cheaper per interval.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> with jax.enable_x64(True):
...     a, status = propagate_linear(jnp.array([[-0.1]]), jnp.array([100.0]), jnp.asarray(10.0), jnp.zeros(1))
>>> round(float(a[0]), 6), int(status)  # 100 exp(-1)
(36.787944, 0)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["expm_2x2", "propagate_linear"]


def expm_2x2(m: Array) -> Array:
    """``expm(m)`` of a 2x2 matrix with real eigenvalues (every compartmental matrix), in closed form.

    With ``s`` the mean eigenvalue and ``q**2 = ((m00 - m11) / 2)**2 + m01 m10`` (>= 0 when the off-diagonal
    flows are >= 0), ``expm(m) = e^s cosh(q) I + e^s sinh(q)/q (m - s I)``; both factors are power series
    in ``q**2``, used as such near ``q = 0`` (equal eigenvalues, e.g. ka = k), so values and gradients stay
    finite there, and written as ``(e^(s+q) +- e^(s-q)) / 2`` elsewhere, which cannot overflow when the
    eigenvalues are <= 0.
    """
    s = 0.5 * (m[0, 0] + m[1, 1])
    q2 = jnp.maximum(0.25 * (m[0, 0] - m[1, 1]) ** 2 + m[0, 1] * m[1, 0], 0.0)
    small = q2 < 1e-6
    q = jnp.sqrt(jnp.where(small, 1.0, q2))
    es = jnp.exp(s)
    cosh = jnp.where(small, es * (1.0 + q2 / 2.0 + q2 * q2 / 24.0), 0.5 * (jnp.exp(s + q) + jnp.exp(s - q)))
    sinhc = jnp.where(small, es * (1.0 + q2 / 6.0 + q2 * q2 / 120.0), (jnp.exp(s + q) - jnp.exp(s - q)) / (2.0 * q))
    return cosh * jnp.eye(2, dtype=m.dtype) + sinhc * (m - s * jnp.eye(2, dtype=m.dtype))


def propagate_linear(k: Array, a: Array, dt: Array, rate: Array) -> tuple[Array, Array]:
    """Exact state after ``dt`` of ``da/dt = K a + rate`` (constant K and rate).

    One and two compartments: ``a(dt) = e^(K dt) (a - a_p) + a_p`` with the constant-input equilibrium
    ``a_p = -K^-1 rate`` (K is invertible when every compartment is eliminated) and a closed-form
    exponential (``expm_2x2``); about 5x cheaper than ``expm`` under ``vmap``, which evaluates all of its
    Pade branches. Larger systems: ``expm([[K dt, rate dt], [0, 0]]) @ [a, 1]``, which needs no inverse.
    """
    n = a.shape[0]
    if n <= 2:
        has_rate = jnp.any(rate != 0)
        k_safe = jnp.where(has_rate, k, -jnp.eye(n, dtype=k.dtype))  # no solve with a singular K when unused
        a_p = jnp.where(has_rate, -jnp.linalg.solve(k_safe, rate), 0.0)
        e = jnp.exp(k * dt) if n == 1 else expm_2x2(k * dt)
        out = e @ (a - a_p) + a_p
    else:
        m = jnp.zeros((n + 1, n + 1), a.dtype).at[:n, :n].set(k * dt).at[:n, n].set(rate * dt)
        out = (jax.scipy.linalg.expm(m) @ jnp.concatenate([a, jnp.ones(1, a.dtype)]))[:n]
    finite = jnp.all(jnp.isfinite(out))
    code = jnp.where(finite, 0, 3).astype(jnp.int32)  # SolveStatus.OK / SolveStatus.NONFINITE
    return jnp.where(finite, out, jnp.nan), code
