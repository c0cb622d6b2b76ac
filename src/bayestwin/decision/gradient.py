"""Choose a dose by gradient: the amount is continuous, the interval stays on a grid (``optimize_dose``).

For every interval of the grid, the dose ``D`` in ``[low, high]`` that maximises the objective (e.g. P(measured
trough in window)) subject to constraints of the form ``P(event) <= max`` (e.g. P(measured peak > toxic) <=
5 %) is found from the **Rao-Blackwellised** probabilities of ``bayestwin.decision.smooth``: per posterior
draw, the residual distribution's probability of the event given the draw's prediction, averaged over draws.
It estimates the same probability as the indicator of a simulated measurement, with less Monte Carlo error,
and it is smooth in ``D`` (the indicator's average is a step function whose derivative is zero almost
everywhere). Derivatives are exact (forward mode, ``jax.jvp``, through the same structural model and dose
records as ``compare_plans``), every evaluation uses the same posterior draws and residual noise (common random
numbers) and one compiled program serves every interval and iteration.

The search, per interval (all intervals at once):

1. constraints: each constrained probability increases with the dose (more drug, more exposure); the
   largest feasible dose ``D_max`` is found by a safeguarded Newton iteration on ``P(D) - max`` inside a
   bracket (bisection when a Newton step leaves it). No feasible dose at ``low``: the interval is infeasible;
2. objective on ``[low, D_max]`` (a projection onto the feasible set): a coarse scan of 17 doses brackets the
   best, then bisection on the sign of the derivative (a bracketing line search on the gradient) converges
   to the stationary point in it, or to ``D_max`` where the constraint binds;
3. on a flat top, the smallest dose whose objective is within `z` MCSE of the maximum (``least_drug``,
   bisection: the grid rule's least drug among ties);
4. across intervals, the rule of ``optimize_regimen``: the best objective among feasible intervals, ties
   within `z` MCSE of the paired difference, the least total amount among ties.

Examples
--------
>>> import numpy as np
>>> from bayestwin.spec import example_spec
>>> from bayestwin.decision import Exceeds, InWindow, PosteriorDraws
>>> rng = np.random.default_rng(1)
>>> cl = np.exp(rng.normal(np.log(2.0), 0.3, size=(2, 200)))
>>> draws = PosteriorDraws.from_arrays(example_spec(), {"ka": np.ones_like(cl), "cl": cl,
...                                    "v": np.full_like(cl, 20.0)}, {"sigma_add": np.full_like(cl, 0.3)})
>>> targets = [InWindow("trough", lo=2.0, hi=5.0, quantity="pred"),
...            Exceeds("peak", threshold=8.0, within=(0.0, 48.0), quantity="pred")]
>>> opt = optimize_dose(draws, "trough", {"peak": 0.05}, targets, intervals=[12.0], dose_range=(20.0, 200.0),
...                     stop=47.0, times=np.linspace(0, 48, 49))
>>> row = opt.table.iloc[0]
>>> bool(20.0 < row["dose"] < 200.0), bool(row["peak"] <= 0.05 + 1e-9), bool(row["mcse_ratio"] > 1)
(True, True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayestwin.decision.draws import PosteriorDraws
from bayestwin.decision.kernel import Layout
from bayestwin.decision.mcse import mcse_of_mean
from bayestwin.decision.optimize import Constraint
from bayestwin.decision.plans import Plan
from bayestwin.decision.prepare import prepare
from bayestwin.decision.smooth import dose_program, trajectory_program
from bayestwin.decision.targets import Target
from bayestwin.dynamics.events import Doses
from bayestwin.exceptions import InputError, PredictionError

__all__ = ["DoseOptimum", "optimize_dose"]

_SCAN = 17  # doses of the coarse scan that brackets the objective's maximum


@dataclass
class DoseOptimum:
    """Result of ``optimize_dose``: one row per interval, the chosen plan and the rule."""

    table: pd.DataFrame
    plans: list[Plan]
    chosen: Plan | None
    rule: str
    objective: str
    constraints: list[Constraint]
    evaluations: int
    draws: PosteriorDraws

    def __repr__(self) -> str:
        chosen = None if self.chosen is None else self.chosen.name
        return f"DoseOptimum(chosen={chosen!r}, intervals={len(self.table)}, evaluations={self.evaluations})"


class _Evaluator:
    """Smooth values, their dose derivative and indicator values of every interval row at given doses."""

    def __init__(self, draws: PosteriorDraws, templates: list[Plan], targets: Sequence[Target],
                 times: Sequence[float], time_unit: str, seed: int, linear: bool | None = None) -> None:
        prep = prepare(draws, templates, targets, times, time_unit=time_unit, batch=1,
                       path="segments" if draws.starts is not None else "generic")
        n_past = len(draws.past["time"])
        stacked = prep.plans["doses"]
        self.is_new = np.zeros(stacked["time"].shape, bool)
        for r, d in enumerate(prep.doses_spec):
            self.is_new[r, n_past:n_past + len(d["time"])] = True
        self.doses = Doses(**{k: jnp.asarray(v) for k, v in stacked.items()})
        theta, self.sigmas = draws.flat()
        segmented = prep.path == "segments"
        self.theta = prep.plans["seg_theta"] if segmented else theta
        n_rows = len(templates)
        self.starts = prep.plans["starts"] if segmented else np.zeros((n_rows, 1))
        layout = Layout(path=prep.path, kinds=tuple(t.kind for t in targets), columns=prep.columns,
                        quantities=tuple(t.quantity for t in targets), batch=1, features=prep.features)
        self.linear = (draws.model.linear and not segmented) if linear is None else linear
        self.run = dose_program(draws.spec, draws.model, layout, segmented, linear=self.linear)
        n = draws.n_chains * draws.n_draws
        self.noise = jax.random.normal(jax.random.PRNGKey(seed), (n, len(prep.times), len(draws.spec.error)))
        self.prep, self.shape, self.calls = prep, (draws.n_chains, draws.n_draws), 0
        if self.linear:  # trajectories = base + dose * unit response: computed once (superposition)
            traj = trajectory_program(draws.spec, draws.model, prep.features)
            th = {k: jnp.asarray(v) for k, v in self.theta.items()}
            args = (self.doses, jnp.asarray(self.is_new), th, jnp.asarray(prep.times))
            self.base = traj(jnp.zeros(n_rows), *args)
            self.unit = traj(jnp.ones(n_rows), *args) - self.base

    def __call__(self, dose: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per (row, draw, target): smooth values, derivatives in the dose, indicators."""
        self.calls += 1
        p = self.prep
        sig = {k: jnp.asarray(v) for k, v in self.sigmas.items()}
        if self.linear:
            out = self.run(jnp.asarray(dose, float), self.base, self.unit, jnp.asarray(p.at_idx), sig,
                           jnp.asarray(p.times), jnp.asarray(p.lo), jnp.asarray(p.hi), jnp.asarray(p.masks),
                           self.noise)
            return tuple(np.asarray(a) for a in out)  # type: ignore[return-value]
        out = self.run(jnp.asarray(dose, float), self.doses, jnp.asarray(self.is_new), jnp.asarray(p.at_idx),
                       jax.tree_util.tree_map(jnp.asarray, self.theta), {k: jnp.asarray(v) for k, v in
                                                                         self.sigmas.items()},
                       jnp.asarray(p.times), jnp.asarray(p.lo), jnp.asarray(p.hi), jnp.asarray(p.masks), self.noise,
                       jnp.asarray(self.starts))
        return tuple(np.asarray(a) for a in out)  # type: ignore[return-value]


def _largest_feasible(ev: _Evaluator, cols: list[int], limits: list[float], lo: float, hi: float, tol: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the largest dose in [lo, hi] with every constrained probability <= its limit; feasible at lo."""
    n = len(ev.is_new)
    a, b = np.full(n, lo), np.full(n, hi)
    val, _, _ = ev(a)
    excess_lo = np.max([val[:, :, c].mean(1) - m for c, m in zip(cols, limits, strict=True)], axis=0)
    val, _, _ = ev(b)
    excess_hi = np.max([val[:, :, c].mean(1) - m for c, m in zip(cols, limits, strict=True)], axis=0)
    feasible = excess_lo <= 0
    done = excess_hi <= 0  # the whole range is feasible
    x = np.where(done, hi, 0.5 * (a + b))
    for _ in range(100):
        active = feasible & ~done & (b - a > tol)
        if not active.any():
            break
        val, dval, _ = ev(x)
        g = np.stack([val[:, :, c].mean(1) - m for c, m in zip(cols, limits, strict=True)])
        dg = np.stack([dval[:, :, c].mean(1) for c in cols])
        worst = np.argmax(g, axis=0)
        gx, dgx = g[worst, np.arange(n)], dg[worst, np.arange(n)]
        a = np.where(active & (gx <= 0), x, a)
        b = np.where(active & (gx > 0), x, b)
        root = active & (np.abs(gx) < 1e-12)  # on the limit: x is the answer
        a = np.where(root, x, a)
        done |= root
        # Newton, pushed tol/2 past the root so that the next point lands on the other side and the bracket closes
        newton = x - gx / np.where(dgx > 0, dgx, np.nan) + np.where(gx > 0, -0.5, 0.5) * tol
        inside = np.isfinite(newton) & (newton > a) & (newton < b)
        x = np.where(active & ~root, np.where(inside, newton, 0.5 * (a + b)), x)
    return np.where(excess_hi <= 0, hi, a), feasible  # a: the largest dose known to be feasible


def _maximise(ev: _Evaluator, obj: int, lo: float, upper: np.ndarray, tol: float) -> np.ndarray:
    """Per row: the dose in [lo, upper] maximising the objective (coarse scan, then bisection on the derivative)."""
    n = len(upper)
    fractions = np.linspace(0.0, 1.0, _SCAN)
    grid = lo + fractions[:, None] * (upper - lo)[None]  # (scan, row)
    values = np.stack([ev(g)[0][:, :, obj].mean(1) for g in grid])
    best = np.argmax(values, axis=0)
    a = grid[np.maximum(best - 1, 0), np.arange(n)]
    b = grid[np.minimum(best + 1, _SCAN - 1), np.arange(n)]
    x = grid[best, np.arange(n)]
    for _ in range(100):
        active = b - a > tol
        if not active.any():
            break
        mid = 0.5 * (a + b)
        _, dval, _ = ev(mid)
        slope = dval[:, :, obj].mean(1)
        a = np.where(active & (slope > 0), mid, a)
        b = np.where(active & (slope <= 0), mid, b)
    x = 0.5 * (a + b)
    # an end of the range may beat the interior stationary point (a binding constraint, or the lower bound)
    ends = np.stack([x, np.full(n, lo), upper])
    vals = np.stack([ev(e)[0][:, :, obj].mean(1) for e in ends])
    return ends[np.argmax(vals, axis=0), np.arange(n)]


def optimize_dose(source: Any, objective: str, constraints: Sequence[Constraint] | Mapping[str, float],
                  targets: Sequence[Target], *, intervals: Sequence[float], dose_range: tuple[float, float],
                  stop: float, times: Sequence[float], start: float = 0.0, duration: float = 0.0,
                  route: str | int = 0, time_unit: str = "h", amt_unit: str = "mg", z: float = 2.0,
                  rtol: float = 1e-4, least_drug: bool = True, seed: int = 0,
                  override_convergence: bool = False) -> DoseOptimum:
    """The continuous dose per interval that maximises `objective` subject to `constraints` (module docstring).

    Parameters
    ----------
    source : Twin or PosteriorDraws
        The patient's posterior.
    objective : str
        Name of the target to maximise; every target named here or in a constraint must read a new
        measurement (``quantity="pred"``) and be an ``at``/``any``/``fraction`` target: on the latent value
        the probability has no residual to integrate and its dose derivative is zero.
    constraints : sequence of Constraint (``max=`` only), or mapping of target name to an upper limit
        E.g. ``{"toxic peak": 0.05}``; each constrained probability must increase with the dose.
    targets : sequence of Target
        Every target the objective and constraints name.
    intervals : sequence of float
        The dosing intervals (a grid); for each, `dose` every interval from `start` while ``time <= stop``.
    dose_range : (float, float)
        Smallest and largest dose considered (`amt_unit`).
    times : sequence of float
        Time grid of the targets (as in ``compare_plans``).
    duration, route, time_unit, amt_unit
        As in ``Plan.repeat`` (an infusion keeps its duration: its rate scales with the dose).
    z : float
        Ties across intervals within `z` Monte Carlo standard errors of the paired difference.
    rtol : float
        Tolerance on the dose, relative to the width of `dose_range`.
    least_drug : bool
        Per interval, report the smallest dose whose objective is within `z` MCSE of the maximum (the grid
        rule's "least drug among ties", on a flat top); ``dose_at_max`` keeps the maximiser. False: the maximiser.
    seed : int
        Seed of the residual noise of the indicator estimates reported beside the smooth ones.

    Returns
    -------
    DoseOptimum
        ``table``: per interval the optimal ``dose``, the smooth estimate of each target with its MCSE, the
        indicator estimate of the objective with its MCSE and ``mcse_ratio`` (indicator / smooth), whether a
        constraint binds, feasibility, ties and the choice; ``plans`` the optimal plan per interval.
    """
    cons = [Constraint(k, max=float(v)) for k, v in constraints.items()] if isinstance(constraints, Mapping) \
        else list(constraints)
    names = [t.name for t in targets]
    for name in [objective, *[c.target for c in cons]]:
        if name not in names:
            raise InputError(f"optimize_dose: target {name!r} is not among the targets {names}")
    for c in cons:
        if c.max is None or c.min is not None:
            raise InputError(f"optimize_dose: constraint {c.describe()!r} must be an upper limit only (max=), as "
                             "P(toxic) <= 5 %; use optimize_regimen on a grid for other constraints")
    for t in targets:
        if t.quantity != "pred" or t.kind not in ("at", "any", "fraction"):
            raise InputError(f"optimize_dose: target {t.name!r} must read a new measurement (quantity='pred') and "
                             f"be InWindow/Exceeds/TimeInRange (kind {t.kind!r}, quantity {t.quantity!r}): on the "
                             "latent value the probability is a step function of the dose (zero gradient)")
    lo, hi = (float(x) for x in dose_range)
    if not 0 < lo < hi:
        raise InputError(f"optimize_dose: dose_range must be (low, high) with 0 < low < high, got {dose_range!r}")
    draws = source if isinstance(source, PosteriorDraws) else PosteriorDraws.from_twin(
        source, override_convergence=override_convergence)
    templates = [Plan.repeat(dose=1.0, interval=float(i), start=start, stop=stop, duration=duration, route=route,
                             time_unit=time_unit, amt_unit=amt_unit) for i in intervals]
    ev = _Evaluator(draws, templates, targets, times, time_unit, seed)
    tol = rtol * (hi - lo)
    obj = names.index(objective)
    cols, limits = [names.index(c.target) for c in cons], [float(c.max) for c in cons]  # type: ignore[arg-type]
    if cols:
        upper, feasible = _largest_feasible(ev, cols, limits, lo, hi, tol)
    else:
        upper, feasible = np.full(len(templates), hi), np.ones(len(templates), bool)
    upper = np.maximum(upper, lo)
    at_max = _maximise(ev, obj, lo, upper, tol)
    best = _least_within(ev, obj, lo, at_max, z, ev.shape, tol) if least_drug else at_max
    val, _, ind = ev(best)
    binds = feasible & (upper < hi - tol) & (np.abs(at_max - upper) <= tol)  # the constraint limits the maximiser
    result = _result(draws, templates, targets, cons, objective, best, upper, feasible, val, ind, binds, z, ev.calls,
                     duration=duration, route=route, start=start, stop=stop, time_unit=time_unit, amt_unit=amt_unit)
    result.table.insert(2, "dose_at_max", at_max)
    return result


def _least_within(ev: _Evaluator, obj: int, lo: float, at_max: np.ndarray, z: float, shape: tuple[int, int],
                  tol: float) -> np.ndarray:
    """Per row: the smallest dose in [lo, at_max] whose objective is within `z` MCSE of the maximum (bisection)."""
    val, _, _ = ev(at_max)
    per_draw = val[:, :, obj]
    top = per_draw.mean(1)
    err = np.array([float(mcse_of_mean(r.reshape(shape))) for r in per_draw])
    target = top - z * np.nan_to_num(err)
    a, b = np.full(len(at_max), lo), at_max.copy()
    done = ev(a)[0][:, :, obj].mean(1) >= target
    b = np.where(done, lo, b)
    for _ in range(100):
        active = ~done & (b - a > tol)
        if not active.any():
            break
        mid = 0.5 * (a + b)
        ok = ev(mid)[0][:, :, obj].mean(1) >= target
        b = np.where(active & ok, mid, b)
        a = np.where(active & ~ok, mid, a)
    return b


def _result(draws: PosteriorDraws, templates: list[Plan], targets: Sequence[Target], cons: list[Constraint],
            objective: str, best: np.ndarray, upper: np.ndarray, feasible: np.ndarray, val: np.ndarray,
            ind: np.ndarray, binds: np.ndarray, z: float, calls: int, **plan_kw: Any) -> DoseOptimum:
    shape = (len(templates), draws.n_chains, draws.n_draws, len(targets))
    val, ind = val.reshape(shape), ind.reshape(shape)
    names = [t.name for t in targets]
    broken = ~np.isfinite(val).all(axis=(0, 3))  # (chain, draw): a prediction that is not finite somewhere
    if broken.any():
        raise PredictionError(
            f"optimize_dose: the model's prediction is not finite for {int(broken.sum())} of {broken.size} posterior "
            "draws at the doses searched (an ODE solve failed, or the prediction overflowed); a dose chosen from the "
            "other draws would rest on a biased subset. Narrow dose_range, or check the model's solver settings.")
    obj = names.index(objective)
    table = pd.DataFrame({"interval": [p.interval for p in templates], "dose": best,
                          "doses": [len(p.amounts) for p in templates]})
    table["total_amount"] = table["dose"] * table["doses"]
    for k, name in enumerate(names):
        table[name] = val[..., k].mean(axis=(1, 2))
        table[f"{name}_mcse"] = [float(mcse_of_mean(val[r, :, :, k])) for r in range(len(templates))]
    table[f"{objective}_indicator"] = ind[..., obj].mean(axis=(1, 2))
    table[f"{objective}_indicator_mcse"] = [float(mcse_of_mean(ind[r, :, :, obj])) for r in range(len(templates))]
    ind_err = table[f"{objective}_indicator_mcse"].to_numpy()
    table["mcse_ratio"] = np.where(ind_err > 0, ind_err / table[f"{objective}_mcse"].to_numpy(), np.nan)  # NaN:
    # the indicator did not vary in these draws (its MCSE of 0 is then no estimate)
    table["constraint_binds"] = binds
    table["feasible"] = feasible
    table["tied"], table["chosen"] = False, False
    plans = [Plan.repeat(dose=float(d), interval=float(p.interval), **plan_kw) for d, p in zip(best, templates,
                                                                                              strict=True)]
    cons_text = "; ".join(c.describe() for c in cons) or "none"
    rule = (f"per interval, the dose maximising the Rao-Blackwellised {objective} subject to [{cons_text}] "
            f"(continuous dose, found by gradient); across intervals, those within {z:g} MCSE of the best "
            "(paired, common draws) are ties; among ties the smallest total amount")
    chosen = None
    if feasible.any():
        objv = table[objective].to_numpy()
        b = int(np.argmax(np.where(feasible, objv, -np.inf)))
        for r in np.flatnonzero(feasible):
            diff = val[b, :, :, obj] - val[r, :, :, obj]
            table.loc[r, "tied"] = bool(objv[b] - objv[r] <= z * np.nan_to_num(float(mcse_of_mean(diff))) + 1e-12)
        pick = min(np.flatnonzero(table["tied"].to_numpy()), key=lambda r: (table["total_amount"][r], r))
        table.loc[pick, "chosen"] = True
        chosen = plans[pick]
    else:
        rule += ". No interval had a feasible dose."
    return DoseOptimum(table, plans, chosen, rule, objective, cons, calls, draws)
