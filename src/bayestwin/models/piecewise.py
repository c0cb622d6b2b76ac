"""Predictions with parameters that change over time (time-varying covariates), through the ODE engine.

Closed forms by superposition assume constant parameters: when a covariate such as body weight or
creatinine clearance changes between records, the superposed curve is wrong after the change. The
models here then integrate their right-hand side with ``solve_amounts(..., theta_times=...)``: the
parameters are constant on each segment (a linear model's intervals are propagated exactly by a matrix
exponential; a nonlinear one is integrated by diffrax), the compartment *amounts* are continuous across a change
(a change of volume makes the concentration jump, as in NONMEM and nlmixr2), and every dosing
feature of the ODE engine (infusions, resets, steady state with the parameters at the record's time)
applies. Bioavailability ``f`` and lag ``tlag`` act on doses into the depot with their values at the
dose's recorded time.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.dynamics.events import Doses
>>> from bayestwin.models import get_model
>>> m = get_model("pk.one_cmt_iv")
>>> theta = {"cl": jnp.array([2.0, 4.0]), "v": jnp.array([20.0, 20.0])}   # CL doubles at 5 h
>>> c = m.predict_segments(theta, jnp.array([-jnp.inf, 5.0]), Doses.single(time=0.0, amt=100.0),
...                        jnp.array([5.0, 10.0]))
>>> [round(x, 5) for x in c[:, 0].tolist()]  # 5 exp(-0.1 * 5), then exp(-0.2 * 5) more
[3.03265, 1.11565]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax.numpy as jnp
from jax import Array

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.ode import Rhs, SolveStatus, solve_amounts
from bayestwin.dynamics.ode_models import LINEAR_MATRICES

__all__ = ["piecewise_predict", "segment_index"]


def segment_index(starts: Array, t: Array) -> Array:
    """Index of the segment holding each time in `t` (segment k starts at ``starts[k]``; sorted)."""
    return jnp.clip(jnp.searchsorted(starts, t, side="right") - 1, 0, starts.shape[0] - 1)


def piecewise_predict(
    rhs: Rhs, names: Sequence[str], n_cmt: int, observe: Callable[[Array, Mapping[str, Array]], Array],
    theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *, features: frozenset[str] | None = None,
    depot: int | None = None, max_steps: int = 4096, sensitivity: str = "reverse", solver: str = "tsit5",
) -> Array:
    """Outputs ``(len(times), n_outputs)`` of a model with piecewise-constant parameters.

    Parameters
    ----------
    rhs, names, n_cmt
        Right-hand side on amounts, the parameter names in the order it reads them, and the state size.
    observe : callable
        ``observe(amounts (time, n_cmt), theta_at_times) -> (time, n_outputs)``.
    theta : mapping of str to array, shape (n_segments,)
        Parameter values per segment; ``f`` and ``tlag`` (optional) act on doses into `depot`.
    starts : array, shape (n_segments,)
        Start time of each segment (the first may be ``-inf``; padding ``+inf``).
    sensitivity : {"reverse", "forward"}
        Passed to ``solve_amounts``; reverse mode is used anyway when ``f`` or ``tlag`` act on the doses
        (forward sensitivities give gradients in the parameters of the right-hand side only).
    solver : str
        Passed to ``solve_amounts``; where reverse mode is used, ``"dopri5"`` (forward mode only) becomes
        ``"tsit5"``.

    A failed solve gives NaN (never a finite wrong value), as the ODE models do.
    """
    params = jnp.stack([jnp.asarray(theta[n]) for n in names], axis=-1)
    if depot is not None and ("f" in theta or "tlag" in theta):
        sensitivity = "reverse"
        solver = "tsit5" if solver == "dopri5" else solver
        k = segment_index(starts, jnp.where(doses.mask, doses.time, 0.0))
        into_depot = doses.mask & (doses.cmt == depot)
        if "f" in theta:
            doses = doses._replace(amt=jnp.where(into_depot, doses.amt * jnp.asarray(theta["f"])[k], doses.amt))
        if "tlag" in theta:
            doses = doses._replace(time=jnp.where(into_depot, doses.time + jnp.asarray(theta["tlag"])[k], doses.time))
    ss_iterations = 8 if features is None or "ss" in features else 0
    amounts, status = solve_amounts(rhs, params, doses, times, n_cmt=n_cmt, theta_times=starts,
                                    ss_iterations=ss_iterations, max_steps=max_steps,
                                    matrix=LINEAR_MATRICES.get(rhs), sensitivity=sensitivity, solver=solver)
    k_t = segment_index(starts, times)
    out = observe(amounts, {n: jnp.asarray(v)[k_t] for n, v in theta.items()})
    return jnp.where(status == SolveStatus.OK, out, jnp.nan)
