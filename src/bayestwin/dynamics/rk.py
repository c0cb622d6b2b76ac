"""A lean adaptive Runge–Kutta integrator (Dormand–Prince 5(4)) for small ODE states inside NUTS.

diffrax is general: PyTree states, dense output, events, checkpointed reverse mode. On the two- or
three-compartment states of PK models that generality is the cost: each adaptive step is a sequential
loop iteration of many small operations. ``dopri5`` is one ``lax.while_loop`` whose body is the seven
stages of the Dormand–Prince 5(4) pair (first same as last), a mixed absolute/relative RMS error norm
and a PI step-size controller: few operations per step, which XLA fuses.

It is differentiable in *forward* mode only (``jvp``, ``jacfwd``: the tangents ride along the same
steps, "discretise then differentiate"), which is what ``bayestwin.dynamics.sensitivity`` needs; reverse
mode through ``lax.while_loop`` is not defined in JAX, so ``solve_amounts`` uses it only with
``sensitivity="forward"``.

Step-size control (Hairer, Nørsett & Wanner, *Solving ODEs I*, II.4; Gustafsson's PI controller): the
error of a step of size h is ``err = RMS(e_i / (atol + rtol max(|y_i|, |y_new,i|)))``; the step is accepted
when ``err <= 1``, and the next step is ``h · clip(0.9 err^(-0.7/5) err_prev^(0.4/5), 0.2, 10)`` (after a
rejection the factor is capped at 1). The first step follows Hairer's starting-step heuristic.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> with jax.enable_x64(True):
...     y1, code, _ = dopri5(lambda s, y, k: -k * y, jnp.array([1.0]), 0.0, 2.0, jnp.array(1.5),
...                       rtol=1e-10, atol=1e-12, max_steps=1000)
...     print(round(float(y1[0]), 10), int(code))      # exp(-3)
0.0497870684 0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from jax import Array, lax

from bayestwin.dynamics.solve_status import SolveStatus

__all__ = ["dopri5"]

# Dormand & Prince (1980) 5(4) tableau; the 5th-order row is also the last stage (FSAL).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B_LOW = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b - bl for b, bl in zip(_B, _B_LOW, strict=True))

_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0
_BETA1, _BETA2 = 0.7 / 5, 0.4 / 5  # PI controller exponents


def _combine(y: Array, h: Array, coeffs: tuple[float, ...], ks: list[Array]) -> Array:
    out = y
    for c, k in zip(coeffs, ks, strict=False):
        if c != 0.0:
            out = out + (h * c) * k
    return out


def _norm(e: Array, y: Array, y_new: Array, rtol: float, atol: float) -> Array:
    scale = atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y_new))
    return jnp.sqrt(jnp.mean(jnp.square(e / scale)))


def _initial_step(f: Callable[..., Array], t0: Array, y0: Array, f0: Array, span: Array, args: Any,
                  rtol: float, atol: float) -> Array:
    """Hairer's starting step for a 5th-order method (Solving ODEs I, II.4), capped by the span."""
    scale = atol + rtol * jnp.abs(y0)
    d0 = jnp.sqrt(jnp.mean(jnp.square(y0 / scale)))
    d1 = jnp.sqrt(jnp.mean(jnp.square(f0 / scale)))
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0))
    h0 = jnp.minimum(h0, span)
    f1 = f(t0 + h0, y0 + h0 * f0, args)
    d2 = jnp.sqrt(jnp.mean(jnp.square((f1 - f0) / scale))) / h0
    big = jnp.maximum(d1, d2)
    h1 = jnp.where(big <= 1e-15, jnp.maximum(1e-6, h0 * 1e-3), (0.01 / jnp.where(big > 0, big, 1.0)) ** (1 / 5))
    return jnp.minimum(jnp.minimum(100 * h0, h1), span)


def dopri5(f: Callable[[Array, Array, Any], Array], y0: Array, t0: Array | float, t1: Array | float, args: Any, *,
           rtol: float, atol: float, max_steps: int, h0: Array | float | None = None,
           ) -> tuple[Array, Array, Array]:
    """State at `t1` of ``dy/dt = f(t, y, args)`` from ``y(t0) = y0``, a ``SolveStatus`` code, and the next step.

    Parameters
    ----------
    f : callable
        ``f(t, y, args) -> dy/dt``, pure, ``y`` a 1-d array.
    y0 : array, shape (n,)
        Initial state.
    t0, t1 : float
        Start and end, ``t1 >= t0`` (``t1 == t0`` returns `y0`).
    args : pytree
        Passed to `f`; forward-mode tangents of `args` and `y0` are propagated.
    rtol, atol : float
        Tolerances of the error norm (see the module docstring).
    max_steps : int
        Most steps (accepted or rejected); reaching it returns ``MAX_STEPS_REACHED`` and the state where the
        integration stopped.
    h0 : float, optional
        First step to try; a non-finite or non-positive value (or None) uses the starting-step heuristic.
        Passing the step returned by the previous interval lets a solve that is cut at breakpoints (doses,
        sample times) go on with the step size it had reached, instead of starting small again.

    Returns
    -------
    y1 : array, shape (n,)
    code : int32 array, shape ()
        ``SolveStatus.OK``, ``MAX_STEPS_REACHED`` or ``SOLVER_FAILED`` (a non-finite error estimate, e.g. the
        solution blew up).
    h_next : array, shape ()
        The step the controller proposes after the last one (not shortened to end at `t1`): a good `h0` for
        a following interval.
    """
    t0 = jnp.asarray(t0, y0.dtype)
    t1 = jnp.asarray(t1, y0.dtype)
    span = t1 - t0
    f0 = f(t0, y0, args)
    if h0 is None:
        h_init = jnp.where(span > 0, _initial_step(f, t0, y0, f0, span, args, rtol, atol), 0.0)
    else:
        h0 = lax.stop_gradient(jnp.asarray(h0, y0.dtype))
        given = jnp.isfinite(h0) & (h0 > 0)
        h_init = jnp.where(given, h0, jnp.where(span > 0, _initial_step(f, t0, y0, f0, span, args, rtol, atol), 0.0))
    tiny = 1e-14 * jnp.maximum(jnp.abs(t1), 1.0)

    # carry: t, y, f(t, y), h, previous error, steps taken, status
    def cond(c: tuple[Array, ...]) -> Array:
        t, _, _, _, _, n, code = c
        return (t1 - t > tiny) & (n < max_steps) & (code == SolveStatus.OK)

    def body(c: tuple[Array, ...]) -> tuple[Array, ...]:
        t, y, fy, h_want, err_prev, n, code = c
        h = jnp.minimum(h_want, t1 - t)
        ks = [fy]
        for i in range(1, 7):
            ks.append(f(t + _C[i] * h, _combine(y, h, _A[i], ks), args))
        y_new = _combine(y, h, _A[6], ks)  # the 5th-order solution (row 7 of A equals b)
        err = _norm(_combine(jnp.zeros_like(y), h, _E, ks), y, y_new, rtol, atol)
        err = lax.stop_gradient(err)
        finite = jnp.isfinite(err) & jnp.all(jnp.isfinite(y_new))
        accept = finite & (err <= 1.0)
        safe_err = jnp.where(finite, jnp.maximum(err, 1e-10), 1e10)
        factor = _SAFETY * safe_err ** (-_BETA1) * err_prev ** _BETA2
        factor = jnp.clip(factor, _MIN_FACTOR, jnp.where(accept, _MAX_FACTOR, 1.0))
        # a step shortened to end at t1 and accepted says nothing against the step size wanted before it
        h_next = lax.stop_gradient(jnp.where(accept & (h < h_want), jnp.maximum(h * factor, h_want), h * factor))
        t = jnp.where(accept, t + h, t)
        y = jnp.where(accept, y_new, y)
        fy = jnp.where(accept, ks[6], fy)
        err_prev = jnp.where(accept, safe_err, err_prev)
        code = jnp.where(h_next <= tiny, SolveStatus.SOLVER_FAILED, code)  # a step that cannot shrink further
        return t, y, fy, h_next, err_prev, n + 1, code.astype(jnp.int32)

    init = (t0, y0, f0, lax.stop_gradient(h_init), jnp.asarray(1.0, y0.dtype), jnp.asarray(0, jnp.int32),
            jnp.asarray(SolveStatus.OK, jnp.int32))
    t, y, _, h_next, _, _, code = lax.while_loop(cond, body, init)
    code = jnp.where((code == SolveStatus.OK) & (t1 - t > tiny), SolveStatus.MAX_STEPS_REACHED, code)
    return y, code.astype(jnp.int32), h_next

