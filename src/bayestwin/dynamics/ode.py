"""ODE dosing engine: integrate a compartment model between events with diffrax.

``solve_amounts`` takes a right-hand side ``rhs(t, a, theta, rate) -> da/dt``
(a pure function of its arguments), one patient's padded
``Doses`` and a padded array of evaluation
times, and returns the compartment amounts at those times plus a
``SolveStatus`` code. Ready-made right-hand sides live in
``bayestwin.dynamics.ode_models``.

How the solve works
-------------------
The *breakpoints* are the union of the dose times (resets are dose records),
the infusion end times ``time + amt / rate``, the evaluation times and the times
at which piecewise-constant parameters change (``theta_times``), in one
fixed-size array (``2 * n_doses + n_times + n_segments``, padding ``+inf``) sorted once. A
``lax.scan`` walks the breakpoints: it integrates from the previous breakpoint to
this one with the infusion rates then running (constant in between, because
every start and end is a breakpoint), then applies the event at this
breakpoint: a dose record (reset, steady state, bolus, infusion start), an
infusion end, or the reading of an evaluation time. Doses are therefore applied
at their exact times and none is lost between evaluation times. Each interval
is integrated in rescaled time ``s = (t - t0) / (t1 - t0)`` over ``[0, 1]``, so
zero-length and padded intervals are well posed (and skipped by ``lax.cond``
where not vectorised).

Conventions
-----------
* **Same time, dose first.** Events at equal times are applied in the order:
  evaluation times flagged ``predose``, then dose records in record order, then
  infusion ends, then the other evaluation times. So by default a dose at ``t``
  *is* seen by an evaluation at ``t`` (a NONMEM data set whose dose row precedes
  the sample row). Pass ``predose=True`` for trough samples that precede a dose
  at the same time (for example a sample at the time of an ADDL-implied dose,
  which ``bayestwin.data.expand`` places before the dose).
* **Infusions.** A record with ``rate > 0`` adds ``rate`` to ``da/dt`` of its
  compartment on ``[time, time + amt / rate)``; ``rate == 0`` is a bolus added
  to the compartment at ``time``.
* **Reset** (``reset`` true, EVID 3/4) sets the state to ``y0`` (zero by
  default) and stops running infusions, *before* the record's own dose.
* **Steady state** (``ss`` 1 or 2, interval ``ii > 0``): the dose is the last of
  an infinite train every ``ii``. The pre-dose periodic state ``a*`` solves
  ``a* = Φ(a*)``, ``Φ`` being one interval that starts with the dose. Newton's
  method on ``Φ(a) - a``, with ``dΦ/da`` from the variational equations, runs a
  fixed ``ss_iterations`` steps (a linear model is exact after one; a saturable
  one near its capacity needs more), then one last step through which gradients
  flow, giving the implicit-function derivative; that step must be below
  ``100 * (atol + rtol * |a*|)``, otherwise the status is
  ``STEADY_STATE_NOT_CONVERGED`` (also when no steady state exists, e.g. a dose
  rate above a Michaelis–Menten capacity).
  ``ss == 1`` resets (infusions stop) and replaces the state by ``a*``; ``ss == 2``
  adds ``a*`` to the state, which is exact for linear models only
  (superposition). Then the dose itself is applied. A steady-state infusion
  must end within ``ii`` (the data rule D003 says the same).
* **Padding.** Dose records with ``mask`` false or a non-finite time do nothing.
  Evaluation times that are non-finite or masked out (``times_mask``) return
  rows of zeros. Evaluation times need not be sorted; rows come back in input
  order. Before the first breakpoint the state is ``y0``.
* **Precision.** Use float64 (``jax.config.update("jax_enable_x64", True)``):
  the default tolerances ``rtol=1e-8, atol=1e-10`` are below float32 resolution.
* **Gradients** (diffrax's default ``RecursiveCheckpointAdjoint``) flow to
  ``theta``, ``y0``, dose amounts, rates and times, and evaluation times; in
  times they are exact while the order of events stays the same (a time moves
  the end of an interval, which the rescaled time carries), so lag times work.
* **Failures do not raise inside jit.** The status is one ``SolveStatus``
  code per patient, the first failure met; under ``vmap`` a stiff patient only
  marks its own entry. ``status_messages`` turns codes into messages outside
  jit; the caller (the adapter that knows the patients) decides what to raise.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> from bayestwin.dynamics.events import Doses
>>> from bayestwin.dynamics.ode_models import one_cmt_oral_rhs
>>> with jax.enable_x64(True):
...     doses = Doses.single(time=0.0, amt=100.0, cmt=0, n=4)      # 100 mg into the depot
...     theta = jnp.array([1.0, 5.0, 50.0])                         # ka 1/h, CL 5 L/h, V 50 L
...     amounts, status = solve_amounts(one_cmt_oral_rhs, theta, doses, jnp.array([1.0, 12.0, jnp.inf]), n_cmt=2)
>>> [round(x, 3) for x in amounts[:, 1].tolist()], SolveStatus(int(status)).name
([59.662, 33.465, 0.0], 'OK')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from jax import Array, lax

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.linear import propagate_linear
from bayestwin.dynamics.sensitivity import forward_jacobian_vjp
from bayestwin.dynamics.solve_status import SolveStatus, status_messages
from bayestwin.exceptions import SpecError

if TYPE_CHECKING:  # pragma: no cover
    import diffrax

    from bayestwin.dynamics.ode_steps import _Config

__all__ = ["SENSITIVITIES", "SOLVERS", "Rhs", "SolveStatus", "solve_amounts", "status_messages"]

# diffrax (and ``ode_steps``, which imports it) load on the first solve, not at import: every model module is
# imported by the registry, and importing diffrax costs a closed-form model's twin ~1 s of start-up for nothing.
Rhs = Callable[[Array, Array, Any, Array], Array]
"""``rhs(t, a, theta, rate) -> da/dt``: time, amounts ``(n_cmt,)``, parameters, infusion rates ``(n_cmt,)``
(the alias of ``bayestwin.dynamics.ode_steps``)."""


def _diffrax_solver(name: str) -> Callable[[], diffrax.AbstractSolver]:
    def make() -> diffrax.AbstractSolver:
        import diffrax

        return getattr(diffrax, name)()

    return make


SOLVERS: dict[str, Callable[[], diffrax.AbstractSolver | str]] = {
    "tsit5": _diffrax_solver("Tsit5"), "kvaerno5": _diffrax_solver("Kvaerno5"), "dopri5": lambda: "dopri5"}
"""Solver names accepted by ``solve_amounts``: explicit ``tsit5``, stiff (implicit) ``kvaerno5`` (both diffrax), and
``dopri5``, the lean explicit solver of ``bayestwin.dynamics.rk`` (forward sensitivities only)."""

SENSITIVITIES = ("reverse", "forward")
"""How ``solve_amounts`` is differentiated: reverse mode through diffrax's checkpointed solver (gradients to
every float input), or forward sensitivities in ``theta`` only (``bayestwin.dynamics.sensitivity``)."""


def solve_amounts(rhs: Rhs, theta: Any, doses: Doses, times: Array, *, n_cmt: int, solver: str = "tsit5",
                  rtol: float = 1e-8, atol: float = 1e-10, max_steps: int = 4096, y0: Array | None = None,
                  times_mask: Array | None = None, predose: Array | None = None,
                  ss_iterations: int = 8, theta_times: Array | None = None,
                  matrix: Callable[[Any], Array] | None = None,
                  sensitivity: str = "reverse") -> tuple[Array, Array]:
    """Compartment amounts at `times` for one patient's `doses`, and a ``SolveStatus`` code.

    Pure JAX: ``jit`` it with `rhs`, `n_cmt`, `solver`, `rtol`, `atol`, `max_steps` and `ss_iterations` static
    (for example through ``functools.partial``), ``vmap`` it over patients, differentiate it in `theta`. Inputs of
    the same padded sizes reuse one compilation. See the module docstring for the event conventions.

    Parameters
    ----------
    rhs : callable
        ``rhs(t, a, theta, rate) -> da/dt`` with ``a`` and ``rate`` of shape ``(n_cmt,)``; ``rate`` is the
        zero-order infusion input per compartment (amount per time), constant between breakpoints, and must be
        added to ``da/dt``. Pure: pass parameters through `theta`, do not close over traced arrays.
    theta : pytree of arrays
        Parameters handed to `rhs` unchanged.
    doses : Doses
        One patient's padded dose records (``bayestwin.dynamics.events``).
    times : array, shape (n_times,)
        Evaluation times, any order; ``+inf`` (or `times_mask` false) marks padding, which returns zeros.
    n_cmt : int
        Number of compartments (length of the state).
    solver : {"tsit5", "kvaerno5"}
        Explicit Runge–Kutta (non-stiff) or implicit ESDIRK (stiff models).
    rtol, atol : float
        Relative and absolute tolerances of the adaptive step controller, per interval.
    max_steps : int
        Most solver steps in one interval between breakpoints.
    y0 : array, shape (n_cmt,), optional
        State before the first breakpoint and after a reset; zeros by default.
    times_mask : bool array, shape (n_times,), optional
        False marks padded evaluation times.
    predose : bool array, shape (n_times,), optional
        True for evaluation times read *before* the doses at the same time (trough samples).
    theta_times : array, shape (n_segments,), optional
        Piecewise-constant parameters (time-varying covariates): every leaf of `theta` then has a leading
        ``n_segments`` axis, and segment ``k`` holds from ``theta_times[k]`` (sorted; the first may be
        ``-inf``, padding ``+inf``) until the next. Each finite change time is a breakpoint, so every
        interval integrates with one segment's constants (the state is continuous across a change); a
        steady-state train uses the parameters at its record's time.
    matrix : callable, optional
        For a *linear* model, ``matrix(theta) -> K`` ``(n_cmt, n_cmt)`` with ``rhs(t, a, theta, rate) ==
        K @ a + rate``: each interval is then propagated exactly by one matrix exponential instead of the
        adaptive solver (about 10x cheaper, no tolerance); steady states still use the Newton solve on `rhs`.
    ss_iterations : int
        Newton steps for each steady-state record; ``0`` turns steady state off (ss records then give
        ``UNSUPPORTED_DOSE``). Under ``vmap`` every padded dose record runs these steps (on a trivial problem when
        it is not an ss record), so pass ``0`` for cohorts without ss records: it saves run and compile time.
    sensitivity : {"reverse", "forward"}
        How gradients are computed. ``"reverse"`` (default): reverse mode through diffrax's checkpointed
        solver; gradients flow to every float input (lag times, dose amounts). ``"forward"``: the Jacobian in
        `theta` is solved alongside the state (one tangent per parameter) and reverse mode contracts with it;
        about 3x faster for a few parameters (see ``bayestwin.dynamics.sensitivity``), but gradients flow to
        `theta` only and forward-mode transforms (``jvp``, ``hessian``) of the result are not available.

    Returns
    -------
    amounts : array, shape (n_times, n_cmt)
        Amounts at each evaluation time, after the doses at that time (unless `predose`).
    status : int32 array, shape ()
        A ``SolveStatus`` code: the first failure met, ``0`` when all went well.

    Raises
    ------
    SpecError
        At trace time, for an unknown `solver` or an `rhs` whose output is not of shape ``(n_cmt,)``.
    """
    if solver not in SOLVERS:
        raise SpecError(f"unknown ODE solver {solver!r}; choose one of {sorted(SOLVERS)}")
    if sensitivity not in SENSITIVITIES:
        raise SpecError(f"unknown sensitivity {sensitivity!r}; choose one of {list(SENSITIVITIES)}")
    if solver == "dopri5" and sensitivity != "forward":
        raise SpecError("solver 'dopri5' is differentiable in forward mode only: pass sensitivity='forward', or use "
                        "solver='tsit5' for reverse-mode gradients (to lag times or dose amounts)")
    import diffrax

    from bayestwin.dynamics.ode_steps import _Config

    dtype = jnp.result_type(float)
    adjoint = diffrax.ForwardMode() if sensitivity == "forward" else diffrax.RecursiveCheckpointAdjoint()
    cfg = _Config(SOLVERS[solver](), float(rtol), float(atol), int(max_steps), adjoint)
    y0 = jnp.zeros(n_cmt, dtype) if y0 is None else jnp.asarray(y0, dtype)
    zero_rate = jnp.zeros(n_cmt, dtype)
    one_theta = theta if theta_times is None else jax.tree.map(lambda x: x[0], theta)
    out = jax.eval_shape(rhs, jnp.zeros((), dtype), y0, one_theta, zero_rate)
    if getattr(out, "shape", None) != (n_cmt,):
        raise SpecError(f"rhs returned shape {getattr(out, 'shape', type(out))} for a state of shape ({n_cmt},); "
                        "it must return da/dt with one entry per compartment")
    times = jnp.asarray(times, dtype)
    nt = times.shape[0]
    t_ok = jnp.isfinite(times) if times_mask is None else jnp.isfinite(times) & jnp.asarray(times_mask, bool)
    predose = jnp.zeros(nt, bool) if predose is None else jnp.asarray(predose, bool)
    theta_times = None if theta_times is None else jnp.asarray(theta_times, dtype)
    run = functools.partial(_solve, rhs, cfg, n_cmt, ss_iterations, matrix)
    if sensitivity == "forward":
        run = forward_jacobian_vjp(run)
    return run(theta, doses, times, t_ok, predose, y0, theta_times)


def _solve(rhs: Rhs, cfg: _Config, n_cmt: int, ss_iterations: int, matrix: Callable[[Any], Array] | None,
           theta: Any, doses: Doses, times: Array, t_ok: Array, predose: Array, y0: Array,
           theta_times: Array | None) -> tuple[Array, Array]:
    """The body of ``solve_amounts`` once its arguments are checked and normalised."""
    from bayestwin.dynamics.ode_steps import _first_failure, _integrate, _steady_states

    dtype = jnp.result_type(float)
    nd, nt = doses.time.shape[0], times.shape[0]
    t_eval = jnp.where(t_ok, times, jnp.inf)

    live = doses.mask & jnp.isfinite(doses.time)
    d_time = jnp.where(live, doses.time, jnp.inf)
    infusion = live & (doses.rate > 0)
    d_end = jnp.where(infusion, d_time + doses.amt / jnp.where(infusion, doses.rate, 1.0), jnp.inf)
    cmt_ok = (doses.cmt >= 0) & (doses.cmt < n_cmt)
    cmt = jnp.where(cmt_ok, doses.cmt, 0)
    status = jnp.where(jnp.any(live & ~cmt_ok), SolveStatus.UNSUPPORTED_DOSE, SolveStatus.OK).astype(jnp.int32)
    live = live & cmt_ok
    bolus_amt = jnp.where(live & ~infusion, doses.amt, 0.0)
    inf_rate = jnp.where(infusion & cmt_ok, doses.rate, 0.0)
    if theta_times is None:
        n_seg = 0
        theta_times = jnp.zeros((0,), dtype)
        segment_theta = lambda mid: theta  # noqa: E731
        dose_theta = jax.tree.map(lambda x: jnp.broadcast_to(x, (nd, *jnp.shape(x))), theta)
    else:
        n_seg = theta_times.shape[0]

        def segment_theta(mid: Array) -> Any:
            k = jnp.clip(jnp.searchsorted(theta_times, mid, side="right") - 1, 0, n_seg - 1)
            return jax.tree.map(lambda x: x[k], theta)

        dose_theta = jax.vmap(segment_theta)(jnp.where(live, doses.time, 0.0))
    a_ss, ss_status = _steady_states(rhs, dose_theta, doses, live, n_cmt, cfg, ss_iterations)
    status = _first_failure(status, ss_status)
    ss1 = live & (doses.ss == 1)
    ss2 = live & (doses.ss == 2)
    resets = live & (doses.reset | ss1)

    # Sort breakpoints by time, ties by rank: predose reads, doses (record order), infusion ends, other reads.
    changes = jnp.where(jnp.isfinite(theta_times), theta_times, jnp.inf)  # breakpoints that only split intervals
    keys = jnp.concatenate([d_time, d_end, t_eval, changes])
    rank = jnp.concatenate([jnp.full(nd, 1), jnp.full(nd, 2), jnp.where(predose, 0, 3), jnp.full(n_seg, 2)])
    order = jnp.lexsort((jnp.arange(keys.shape[0]), rank, keys))

    def step(carry: tuple[Array, Array, Array, Array, Array], x: tuple[Array, Array]):
        t, a, on, st, h = carry
        b, src = x
        advance = jnp.isfinite(b) & (b > t)
        dt = jnp.where(advance, b - jnp.where(advance, t, 0.0), 0.0)
        rate = jnp.zeros(n_cmt, dtype).at[cmt].add(jnp.where(on, inf_rate, 0.0))
        th = segment_theta(t + 0.5 * dt)
        if matrix is None:
            a, code, h = _integrate(rhs, a, t, dt, th, rate, cfg, h)
        else:
            a, code = propagate_linear(matrix(th), a, dt, rate)
        st = _first_failure(st, code)
        t = jnp.where(advance, b, t)
        i = jnp.where(src < 2 * nd, src % nd, 0)
        is_dose = (src < nd) & live[i]
        # dose record: reset, steady state, bolus, infusion start
        a = jnp.where(is_dose & resets[i], y0, a)
        on = jnp.where(is_dose & resets[i], False, on)
        a = jnp.where(is_dose & ss1[i], a_ss[i], a)
        a = jnp.where(is_dose & ss2[i], a + a_ss[i], a)
        a = a.at[cmt[i]].add(jnp.where(is_dose, bolus_amt[i], 0.0))
        on = on.at[i].set(jnp.where(is_dose, on[i] | infusion[i], on[i]))
        # infusion end
        is_end = (src >= nd) & (src < 2 * nd)
        on = on.at[i].set(jnp.where(is_end, False, on[i]))
        st = _first_failure(st, jnp.where(jnp.all(jnp.isfinite(a)), SolveStatus.OK, SolveStatus.NONFINITE))
        return (t, a, on, st, h), a

    t_first = jnp.where(jnp.isfinite(keys[order[0]]), keys[order[0]], 0.0)
    init = (t_first, y0, jnp.zeros(nd, bool), status, jnp.asarray(jnp.nan, dtype))
    (_, _, _, status, _), path = lax.scan(step, init, (keys[order], order))
    position = jnp.zeros(order.shape[0], jnp.int32).at[order].set(jnp.arange(order.shape[0], dtype=jnp.int32))
    amounts = jnp.where(t_ok[:, None], path[position[2 * nd:2 * nd + nt]], 0.0)
    return amounts, status
