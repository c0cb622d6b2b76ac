"""Compare treatment plans on a twin's whole posterior: ``compare_plans``.

Every plan is evaluated on every posterior draw at every time of a common grid in one compiled call
(``bayestwin.decision.kernel``), with common random numbers: the same posterior draws and the same residual
noise for every plan, so a difference between two plans is a difference between the plans, not between two
samples. Each target becomes a probability (or an expected fraction) per plan with its Monte Carlo standard
error from the chains' autocorrelation (``bayestwin.decision.mcse``); differences between plans come with
their MCSE under common random numbers and the MCSE they would have with independent draws
(``sqrt(mcse_a**2 + mcse_b**2)``); the ratio is what common random numbers buy.

Examples
--------
>>> import numpy as np
>>> from bayestwin.spec import example_spec
>>> rng = np.random.default_rng(0)
>>> cl = np.exp(rng.normal(np.log(2.0), 0.3, size=(2, 200)))
>>> draws = PosteriorDraws.from_arrays(example_spec(), {"ka": np.ones_like(cl), "cl": cl,
...                                    "v": np.full_like(cl, 20.0)}, {"sigma_add": np.full_like(cl, 0.1)})
>>> plans = [Plan.repeat(dose=d, interval=12.0, count=3) for d in (100.0, 200.0)]
>>> cmp = compare_plans(draws, plans, [Exceeds("toxic", threshold=8.0)], times=np.linspace(0, 36, 73))
>>> cmp.summary()[["plan", "target", "estimate"]].round(3)
             plan target  estimate
0  100 mg q12h x3  toxic     0.020
1  200 mg q12h x3  toxic     0.978
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayestwin.decision.draws import PosteriorDraws
from bayestwin.decision.extrapolation import covariate_warnings, dose_warnings
from bayestwin.decision.fused import draws_per_chunk, group_plans
from bayestwin.decision.kernel import Layout, program
from bayestwin.decision.plans import Plan
from bayestwin.decision.prepare import prepare
from bayestwin.decision.result import PlanComparison
from bayestwin.decision.targets import Exceeds, Target  # noqa: F401  (Exceeds: doctest namespace)
from bayestwin.dynamics.events import Doses
from bayestwin.exceptions import InputError, PredictionError
from bayestwin.forecast.forecast import forecast_times
from bayestwin.units import conversion_factor

__all__ = ["compare_plans"]

_CELLS_PER_CHUNK = 4_000_000  # plan x draw x time x output values per chunk (~32 MB per float64 array)
_FUSED_LINEAR = True  # the linear path by draw chunks with fused reductions (False: plan chunks, for comparison)


def _batch(n_plans: int, cells_per_plan: int, batch: int | None) -> int:
    if batch is not None:
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        return min(batch, n_plans)
    most = max(1, min(n_plans, _CELLS_PER_CHUNK // max(cells_per_plan, 1)))
    chunks = math.ceil(n_plans / most)
    return math.ceil(n_plans / chunks)


def _pad_plans(tree: Any, n: int, to: int, skip: tuple[str, ...]) -> Any:
    """Repeat the last plan so that the plan axis has length `to` (arrays in `skip` are shared)."""
    def pad(a: np.ndarray) -> np.ndarray:
        return a if to == n else np.concatenate([a, np.repeat(a[-1:], to - n, axis=0)])
    return {k: (v if k in skip else jax.tree_util.tree_map(pad, v)) for k, v in tree.items()}


def _check(plans: Sequence[Plan], targets: Sequence[Target]) -> None:
    if not plans:
        raise InputError("compare_plans needs at least one plan")
    if not targets:
        raise InputError("compare_plans needs at least one target (InWindow, Exceeds, TimeInRange, TimeToThreshold)")
    for what, items in (("plan", plans), ("target", targets)):
        names = [x.name for x in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(f"{what} names must be unique within a comparison; repeated: {dup}")


def compare_plans(source: Any, plans: Sequence[Plan], targets: Sequence[Target], *, times: Sequence[float],
                  time_unit: str | None = None, interval_probs: Sequence[float] = (0.8, 0.95),
                  interval_times: Sequence[float] | None = None, interval_draws: int = 1000, seed: int = 0,
                  batch: int | None = None, override_convergence: bool = False,
                  path: str | None = None) -> PlanComparison:
    """Probabilities of every target under every plan, on the whole posterior, with Monte Carlo errors.

    Parameters
    ----------
    source : Twin or PosteriorDraws
        A fitted twin (its posterior draws are read once) or draws built directly.
    plans : sequence of Plan
        The plans to compare (unique names).
    targets : sequence of Target
        What to estimate (unique names); see ``bayestwin.decision.targets``.
    times : sequence of float
        The common time grid (patient clock), in `time_unit` (default the spec's time unit). "Any",
        "fraction" and "first" targets look at these times; "at" targets add their own times.
    interval_probs : sequence of float
        Central predictive intervals to report per plan and time.
    interval_times, interval_draws : optional
        Intervals are computed on host from `interval_draws` evenly spaced draws (default 1,000) at
        `interval_times` (default: the grid, thinned to at most 50 times): sorting all plan x draw x time values
        costs more than the rest of the comparison.
    seed : int
        Seed of the residual noise (one array shared by every plan).
    batch : int, optional
        Plans per chunk inside the compiled call (default: ~4 million values per chunk). The linear path
        without level-reactive plans is chunked over draws instead (``bayestwin.decision.fused``); giving
        `batch` there evaluates it by chunks of plans.
    override_convergence : bool
        Compare plans on a twin that failed its convergence gate (recorded).
    path : {"linear", "generic", "segments"}, optional
        Force how trajectories are computed (tests); default the fastest exact one.

    Returns
    -------
    PlanComparison
        Labelled per-draw values, the summary table, intervals, differences between plans, warnings.
    """
    _check(plans, targets)
    times = forecast_times(times, what="compare_plans times")
    draws = source if isinstance(source, PosteriorDraws) else PosteriorDraws.from_twin(
        source, override_convergence=override_convergence)
    unit = time_unit or draws.units["time"]
    model, spec = draws.model, draws.spec
    n = draws.n_chains * draws.n_draws
    n_grid = len(times)
    b = _batch(len(plans), n * (n_grid + len(targets) + len(plans)) * len(spec.error), batch)
    prep = prepare(draws, plans, targets, times, time_unit=unit, batch=b, path=path)
    theta, sigmas = draws.flat()
    plan_arrays = dict(prep.plans)
    for param, value, mode, _start in plan_arrays.pop("theta_changes", []):
        theta[param] = np.full_like(theta[param], value) if mode == "set" else theta[param] * value
    n_plans = len(plans)
    fused = prep.path == "linear" and not prep.reactive and _FUSED_LINEAR and batch is None
    if fused:
        grouping = group_plans(plan_arrays["amounts"])
        plan_arrays.update(patterns=grouping.patterns, row_pattern=grouping.row_pattern, coef=grouping.coef,
                           position=grouping.position)
        padded, at_idx = n_plans, prep.at_idx
        b = draws_per_chunk(n, grouping.cells * len(prep.times) * len(spec.error))
    else:
        padded = math.ceil(n_plans / b) * b
        plan_arrays = _pad_plans(plan_arrays, n_plans, padded, ("slots", "past"))
        at_idx = _pad_plans({"a": prep.at_idx}, n_plans, padded, ())["a"]
    for key in ("doses", "slots", "past"):
        if key in plan_arrays:
            plan_arrays[key] = Doses(**{k: jnp.asarray(v) for k, v in plan_arrays[key].items()})
    if prep.path == "segments":
        theta = {k: np.zeros(n) for k in theta}  # unused by the program (seg_theta holds the values): fixed shape
    int_draws = np.unique(np.linspace(0, n - 1, min(n, interval_draws)).round().astype(int))
    if interval_times is None:
        pick = np.unique(np.linspace(0, n_grid - 1, min(n_grid, 50)).round().astype(int))
        int_times = prep.grid_idx[pick]
    else:
        fac = conversion_factor(unit, draws.units["time"], where="interval_times")
        wanted = forecast_times(interval_times, what="interval_times") * fac
        int_times = np.searchsorted(prep.times, wanted).clip(0, len(prep.times) - 1)
    layout = Layout(path=prep.path, kinds=tuple(t.kind for t in targets), columns=prep.columns,
                    quantities=tuple(t.quantity for t in targets), batch=b, features=prep.features,
                    reactive=prep.reactive, fused=fused)
    run = program(spec, model, layout)
    values, ipred_sub, pred_sub = run(
        {k: jnp.asarray(v) for k, v in theta.items()}, {k: jnp.asarray(v) for k, v in sigmas.items()},
        jax.random.PRNGKey(seed), jnp.asarray(prep.times), jax.tree_util.tree_map(jnp.asarray, plan_arrays),
        jnp.asarray(at_idx), jnp.asarray(prep.lo), jnp.asarray(prep.hi), jnp.asarray(prep.masks),
        jnp.asarray(int_draws), jnp.asarray(int_times))
    values = np.asarray(values)[:n_plans].reshape(n_plans, draws.n_chains, draws.n_draws, len(targets))
    _require_finite(values, np.asarray(ipred_sub)[:n_plans], np.asarray(pred_sub)[:n_plans], plans, targets)
    warnings = _warnings(draws, plans, prep)
    return PlanComparison.build(
        draws=draws, plans=list(plans), targets=list(targets), values=values,
        interval_times=prep.times[int_times], ipred_sub=np.asarray(ipred_sub)[:n_plans],
        pred_sub=np.asarray(pred_sub)[:n_plans], interval_probs=tuple(interval_probs), grid=prep.grid,
        target_units=prep.target_units, warnings=warnings, path=prep.path)


def _require_finite(values: np.ndarray, ipred_sub: np.ndarray, pred_sub: np.ndarray, plans: Sequence[Plan],
                    targets: Sequence[Target]) -> None:
    """``PredictionError`` naming each plan and target with draws whose prediction is not finite (NaN values)."""
    bad = np.isnan(values)  # (plan, chain, draw, target); +inf is a legitimate "not crossed" time
    lines = [f"plan {plans[p].name!r}, target {targets[k].name!r}: {int(bad[p, ..., k].sum())} of "
             f"{bad[p, ..., k].size} draws" for p, k in zip(*np.nonzero(bad.any(axis=(1, 2))), strict=True)]
    if not lines and np.all(np.isfinite(ipred_sub)) and np.all(np.isfinite(pred_sub)):
        return
    if not lines:
        rows = np.nonzero(~np.isfinite(ipred_sub).all(axis=(1, 2, 3)) | ~np.isfinite(pred_sub).all(axis=(1, 2, 3)))
        lines = [f"plan {plans[p].name!r}: the interval sample" for p in rows[0]]
    raise PredictionError(
        "compare_plans: the model's prediction is not finite for some posterior draws -- " + "; ".join(lines[:10])
        + (" ..." if len(lines) > 10 else "") + ". An ODE solve failed (too many steps: stiff parameters or "
        "doses) or the prediction overflowed; estimates from the other draws would be biased, so none are given. "
        "Check the plans' doses and times, or use solver settings that cover these draws (e.g. a larger max_steps).")


def _warnings(draws: PosteriorDraws, plans: Sequence[Plan], prep: Any) -> list[str]:
    ranges = draws.meta.get("population_ranges")
    out = []
    status = draws.meta.get("diagnostics", {}).get("status")
    if status == "failed-overridden":
        out.append("the twin (or its population) failed its convergence gate; compared anyway (override recorded)")
    if "population_ranges" in draws.meta and ranges is None:
        out.append("the population's data ranges are unknown (a population loaded from a store keeps no data): "
                   "extrapolation was not checked")
    out += covariate_warnings(draws.meta.get("covariates", {}), ranges)
    for plan, d in zip(plans, prep.doses_spec, strict=True):
        out += dose_warnings(plan.name, d["amt"].tolist(), d["cmt"].tolist(), d["rate"].tolist(), ranges,
                             amt_unit=draws.units["amt"])
    return out
