"""The pieces of the ODE dosing engine (``bayestwin.dynamics.ode``): one interval, and steady-state trains.

``_integrate`` advances the state over one interval between breakpoints in rescaled time (``lax.switch``
skips zero-length intervals and poisons non-finite starts); ``_steady_states`` finds the pre-dose periodic
state of every steady-state record by Newton's method on the variational equations, with the
implicit-function derivative. The conventions are in ``bayestwin.dynamics.ode``'s docstring.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.flatten_util import ravel_pytree

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.rk import dopri5
from bayestwin.dynamics.solve_status import SolveStatus

Rhs = Callable[[Array, Array, Any, Array], Array]
"""``rhs(t, a, theta, rate) -> da/dt``: time, amounts ``(n_cmt,)``, parameters, infusion rates ``(n_cmt,)``."""


# How far the last Newton step may move the steady state, in units of the solver tolerance, and still count as
# converged: the periodic map is only known to about rtol, so steps below this are noise, not progress.
_SS_TOLERANCE_FACTOR = 100.0


class _Config(NamedTuple):
    solver: diffrax.AbstractSolver | str  # a diffrax solver, or "dopri5" (``bayestwin.dynamics.rk``)
    rtol: float
    atol: float
    max_steps: int
    adjoint: diffrax.AbstractAdjoint


def _first_failure(status: Array, new: Array | int) -> Array:
    """Keep the first non-OK status."""
    return jnp.where(status == SolveStatus.OK, new, status).astype(jnp.int32)


def _scaled_field(vf: Callable[..., Any], s: Array, y: Any, args: tuple[Any, ...]) -> Any:
    t0, dt, theta, rate = args
    return jax.tree.map(lambda d: dt * d, vf(t0 + s * dt, y, theta, rate))


def _integrate(vf: Callable[..., Any], y: Any, t0: Array, dt: Array, theta: Any, rate: Array,
               cfg: _Config, h: Array | None = None) -> tuple[Any, Array, Array]:
    """State after ``dt >= 0`` time units of ``dy/dt = vf(t, y, theta, rate)`` from ``t0``, a status code, and a step.

    `h` (time units) is the first step to try and the returned step the one to try next (``dopri5`` only: it
    carries the step size across breakpoints; diffrax solvers choose their own and return `h` unchanged).

    A non-finite state or derivative at ``t0`` gives NaN and ``NONFINITE`` without calling the solver; ``dt == 0``
    returns ``y`` unchanged (``lax.cond``; under ``vmap`` both branches run, and the rescaled problem stays posed).
    """
    f0 = vf(t0, y, theta, rate)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves((y, f0))]))
    h_in = jnp.asarray(jnp.nan if h is None else h, jnp.result_type(float))

    def solve(y: Any) -> tuple[Any, Array, Array]:
        if isinstance(cfg.solver, str):  # "dopri5": the lean solver, on the flattened state
            flat, unravel = ravel_pytree(y)
            y1, code, h_next = dopri5(lambda s, z, a: ravel_pytree(_scaled_field(vf, s, unravel(z), a))[0], flat,
                                      0.0, 1.0, (t0, dt, theta, rate), rtol=cfg.rtol, atol=cfg.atol,
                                      max_steps=cfg.max_steps, h0=h_in / jnp.where(dt > 0, dt, 1.0))
            return unravel(y1), code, h_next * dt
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(functools.partial(_scaled_field, vf)), cfg.solver, 0.0, 1.0, None, y,
            args=(t0, dt, theta, rate), saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
            max_steps=cfg.max_steps, adjoint=cfg.adjoint, throw=False)
        code = jnp.where(sol.result == diffrax.RESULTS.successful, SolveStatus.OK,
                         jnp.where(sol.result == diffrax.RESULTS.max_steps_reached,
                                   SolveStatus.MAX_STEPS_REACHED, SolveStatus.SOLVER_FAILED))
        return jax.tree.map(lambda x: x[-1], sol.ys), code.astype(jnp.int32), h_in

    def skip(y: Any) -> tuple[Any, Array, Array]:
        return y, jnp.asarray(SolveStatus.OK, jnp.int32), h_in

    def poison(y: Any) -> tuple[Any, Array, Array]:
        return (jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), y), jnp.asarray(SolveStatus.NONFINITE, jnp.int32),
                h_in)

    branch = jnp.where(~finite, 2, jnp.where(dt > 0, 1, 0))
    return lax.switch(branch, (skip, solve, poison), y)


def _augmented(rhs: Rhs, t: Array, y: tuple[Array, Array], theta: Any, rate: Array) -> tuple[Array, Array]:
    """State and sensitivity ``S = da(t)/da(t0)``: ``dS/dt = (∂f/∂a) S`` (the variational equations)."""
    a, sens = y
    da, jvp = jax.linearize(lambda x: rhs(t, x, theta, rate), a)
    return da, jax.vmap(jvp, in_axes=1, out_axes=1)(sens)


def _steady_states(rhs: Rhs, theta: Any, doses: Doses, live: Array, n_cmt: int, cfg: _Config,
                   iterations: int) -> tuple[Array, Array]:
    """Pre-dose periodic state ``a*`` of every steady-state record (zeros for the others) and a status code.

    `theta` has a leading dose axis: record i's train runs with ``theta[i]`` (the parameters at its time).
    """
    dtype = jnp.result_type(float)
    nd = doses.time.shape[0]
    is_ss = live & (doses.ss > 0)
    infusion = doses.rate > 0
    dur = jnp.where(infusion, doses.amt / jnp.where(infusion, doses.rate, 1.0), 0.0)
    ok = is_ss & (doses.ii > 0) & (dur <= doses.ii) & jnp.isfinite(doses.ii) & (doses.cmt >= 0) & (doses.cmt < n_cmt)
    unsupported = is_ss & ~ok if iterations > 0 else is_ss
    status = jnp.where(jnp.any(unsupported), SolveStatus.UNSUPPORTED_DOSE, SolveStatus.OK).astype(jnp.int32)
    if iterations <= 0:
        return jnp.zeros((nd, n_cmt), dtype), status

    eye = jnp.eye(n_cmt, dtype=dtype)
    augmented = functools.partial(_augmented, rhs)

    def one(x: tuple[Array, ...]) -> tuple[Array, Array]:
        ok_i, t_i, ii_i, amt_i, rate_i, cmt_i, dur_i, theta = x
        theta_fixed = lax.stop_gradient(theta)
        theta_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(theta)]))
        # Benign values for the records that are skipped: under vmap `cond` runs both branches, and a NaN in the
        # unused one would still poison gradients.
        ii = jnp.where(ok_i, ii_i, 1.0)
        dur = jnp.where(ok_i, dur_i, 0.0)
        t_start = jnp.where(ok_i & jnp.isfinite(t_i), t_i, ii) - ii
        cmt = jnp.where(ok_i, cmt_i, 0)
        amt = jnp.where(ok_i, amt_i, 0.0)
        bolus = jnp.zeros(n_cmt, dtype).at[cmt].add(jnp.where(rate_i > 0, 0.0, amt))
        rate = jnp.zeros(n_cmt, dtype).at[cmt].add(jnp.where(ok_i & (rate_i > 0), rate_i, 0.0))
        inputs_finite = theta_finite & jnp.all(jnp.isfinite(jnp.stack([amt, ii, dur]))) & jnp.all(jnp.isfinite(rate))
        # One period = two segments, infusion on then off (a bolus has a zero-length first segment); a scan over
        # them keeps a single solver instance per vector field in the compiled graph.
        segments = (jnp.stack([t_start, t_start + dur]), jnp.stack([dur, ii - dur]), jnp.stack([rate, 0.0 * rate]))

        def period(field: Callable[..., Any], y: Any, th: Any) -> tuple[Any, Array]:
            def segment(carry: tuple[Any, Array], seg: tuple[Array, Array, Array]) -> tuple[tuple[Any, Array], None]:
                y, st = carry
                y, s, _ = _integrate(field, y, seg[0], seg[1], th, seg[2], cfg)
                return (y, _first_failure(st, s)), None

            (y, st), _ = lax.scan(segment, (y, jnp.asarray(SolveStatus.OK, jnp.int32)), segments)
            return y, st

        def diverged(code: Array) -> Array:
            # With finite inputs, a non-finite periodic map means Newton wandered off: no (reachable) steady state.
            return jnp.where((code == SolveStatus.NONFINITE) & inputs_finite, SolveStatus.STEADY_STATE_NOT_CONVERGED,
                             code).astype(jnp.int32)

        def newton(_: int, carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
            a, jac, st = carry
            (phi, sens), s = period(augmented, (a + bolus, eye), theta_fixed)
            new_jac = jnp.where(ok_i, eye - sens, eye)
            new_a = a + jnp.linalg.solve(new_jac, phi - a)
            good = (s == SolveStatus.OK) & jnp.all(jnp.isfinite(new_a))
            s = jnp.where(good, s, jnp.where(s == SolveStatus.OK, SolveStatus.NONFINITE, s))
            # a failed step keeps the last good iterate, so the status says why instead of NaN spreading
            return jnp.where(good, new_a, a), jnp.where(good, new_jac, jac), _first_failure(st, diverged(s))

        def compute(_: None) -> tuple[Array, Array]:
            # Newton steps on a(theta fixed), then one more step through which gradients flow: its value is the
            # fixed point plus a negligible correction, its derivative the implicit-function one,
            # (I - dPhi/da)^-1 dPhi/dtheta, so reverse mode never goes back through the iterations.
            init = (jnp.zeros(n_cmt, dtype), eye, jnp.asarray(SolveStatus.OK, jnp.int32))
            a, jac, st = lax.fori_loop(0, iterations, newton, init)
            a, jac = lax.stop_gradient(a), lax.stop_gradient(jac)
            phi, s = period(rhs, a + bolus, theta)
            step = jnp.linalg.solve(jac, phi - a)
            a = a + step
            converged = jnp.all(jnp.abs(step) <= _SS_TOLERANCE_FACTOR * (cfg.atol + cfg.rtol * jnp.abs(a)))
            st = _first_failure(_first_failure(st, diverged(s)),
                                jnp.where(converged, SolveStatus.OK, SolveStatus.STEADY_STATE_NOT_CONVERGED))
            return a, jnp.where(inputs_finite, st, SolveStatus.NONFINITE).astype(jnp.int32)

        def skip(_: None) -> tuple[Array, Array]:
            return jnp.zeros(n_cmt, dtype), jnp.asarray(SolveStatus.OK, jnp.int32)

        return lax.cond(ok_i, compute, skip, None)

    a_ss, codes = lax.map(one, (ok, doses.time, doses.ii, doses.amt, doses.rate, doses.cmt, dur, theta))
    return a_ss, _first_failure(status, codes[jnp.argmax(codes != SolveStatus.OK)])  # first failing record
