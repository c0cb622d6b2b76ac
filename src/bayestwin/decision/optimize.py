"""Choose a regimen on a dose x interval grid: ``optimize_regimen``.

The rule (stated in every result and recommendation):

1. evaluate every grid plan in one ``compare_plans`` call (one compiled, vectorised evaluation);
2. a plan is *feasible* when every constraint holds on its estimate (e.g. P(peak > toxic) <= 0.05); one
   within `z` Monte Carlo standard errors of a limit is marked ``borderline``;
3. among feasible plans, the *best* maximises the objective's estimate; every feasible plan whose
   estimate is below the best by at most `z` times the MCSE of the difference (common random numbers) is
   *tied* with it: the data cannot tell them apart at this number of draws;
4. among the tied plans the one with the smallest total amount is chosen (then the fewest doses, then grid
   order): the least drug that does as well.

The same rule applied to a point estimate of the parameters (posterior mean or median,
``PosteriorDraws.point``, or the MAP of a twin, ``map_draws``) gives the choice a point-estimate dosing tool
would make; the result reports when it differs from the full-posterior choice.

Examples
--------
>>> import numpy as np
>>> from bayestwin.spec import example_spec
>>> rng = np.random.default_rng(1)
>>> cl = np.exp(rng.normal(np.log(2.0), 0.4, size=(2, 300)))
>>> draws = PosteriorDraws.from_arrays(example_spec(), {"ka": np.ones_like(cl), "cl": cl,
...                                    "v": np.full_like(cl, 20.0)}, {"sigma_add": np.full_like(cl, 0.1)})
>>> targets = [InWindow("trough", lo=2.0, hi=6.0), Exceeds("toxic", threshold=12.0)]
>>> choice = optimize_regimen(draws, "trough", [Constraint("toxic", max=0.05)], targets,
...                           grid=regimen_grid(doses=[50.0, 100.0, 150.0], intervals=[12.0], stop=48.0),
...                           times=np.linspace(0, 48, 97))
>>> choice.chosen.name
'100 mg q12h x5'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayestwin.decision.compare import compare_plans
from bayestwin.decision.draws import PosteriorDraws
from bayestwin.decision.map_estimate import map_draws
from bayestwin.decision.plans import Plan
from bayestwin.decision.result import PlanComparison
from bayestwin.decision.targets import Exceeds, InWindow, Target  # noqa: F401  (doctest namespace)
from bayestwin.exceptions import InputError, SpecError

__all__ = ["Constraint", "RegimenChoice", "choose", "optimize_regimen", "regimen_grid"]


@dataclass(frozen=True)
class Constraint:
    """A limit on a target's estimate: ``estimate <= max`` and/or ``estimate >= min``."""

    target: str
    max: float | None = None
    min: float | None = None

    def __post_init__(self) -> None:
        if self.max is None and self.min is None:
            raise SpecError(f"constraint on {self.target!r} needs max= or min=")

    def holds(self, value: float) -> bool:
        """Whether `value` satisfies the constraint."""
        return (self.max is None or value <= self.max) and (self.min is None or value >= self.min)

    def margin(self, value: float) -> float:
        """Distance of `value` to the nearest limit (positive inside)."""
        m = math.inf
        if self.max is not None:
            m = min(m, self.max - value)
        if self.min is not None:
            m = min(m, value - self.min)
        return m

    def describe(self) -> str:
        """Readable form."""
        parts = ([f"{self.target} <= {self.max:g}"] if self.max is not None else []) + (
            [f"{self.target} >= {self.min:g}"] if self.min is not None else [])
        return " and ".join(parts)


def regimen_grid(*, doses: Sequence[float], intervals: Sequence[float], start: float = 0.0, stop: float,
                 duration: float = 0.0, route: str | int = 0, time_unit: str = "h", amt_unit: str = "mg") -> list[Plan]:
    """Plans for every dose x interval: `dose` every `interval` from `start` while ``time <= stop``."""
    if len(doses) == 0 or len(intervals) == 0:
        raise SpecError("regimen_grid needs at least one dose and one interval")
    return [Plan.repeat(dose=float(d), interval=float(i), start=start, stop=stop, duration=duration, route=route,
                        time_unit=time_unit, amt_unit=amt_unit) for d in doses for i in intervals]


@dataclass
class RegimenChoice:
    """Result of ``optimize_regimen`` / ``choose``."""

    comparison: PlanComparison
    table: pd.DataFrame
    chosen: Plan | None
    ties: list[str]
    rule: str
    objective: str
    constraints: list[Constraint]
    point_estimates: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def differs_from_point_estimate(self) -> dict[str, bool]:
        """For each point estimate, whether its choice differs from the full-posterior one."""
        mine = None if self.chosen is None else self.chosen.name
        return {k: v["chosen"] != mine for k, v in self.point_estimates.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able): rule, choice, ties, per-plan table, point-estimate choices."""
        import json

        return {"objective": self.objective, "constraints": [c.describe() for c in self.constraints],
                "rule": self.rule, "chosen": None if self.chosen is None else self.chosen.name, "ties": self.ties,
                "table": json.loads(self.table.to_json(orient="records")),
                "point_estimates": {k: {"chosen": v["chosen"], "differs": v["chosen"] != (
                    None if self.chosen is None else self.chosen.name)} for k, v in self.point_estimates.items()}}

    def __repr__(self) -> str:
        chosen = None if self.chosen is None else self.chosen.name
        return f"RegimenChoice(chosen={chosen!r}, ties={len(self.ties)}, plans={len(self.table)})"


def _rule(objective: str, constraints: Sequence[Constraint], z: float) -> str:
    cons = "; ".join(c.describe() for c in constraints) or "none"
    return (f"maximise {objective} subject to [{cons}] on the estimates; plans within {z:g} MCSE of the best "
            f"(common random numbers) are ties; among ties the smallest total amount, then the fewest doses")


def choose(comparison: PlanComparison, objective: str, constraints: Sequence[Constraint], *,
           z: float = 2.0) -> RegimenChoice:
    """Apply the rule of the module docstring to a comparison."""
    summary = comparison.summary()
    est = summary.pivot(index="plan", columns="target", values="estimate")
    err = summary.pivot(index="plan", columns="target", values="mcse")
    names = [p.name for p in comparison.plans]
    for c in [objective, *[c.target for c in constraints]]:
        if c not in est.columns:
            raise InputError(f"objective/constraint target {c!r} is not among the targets {list(est.columns)}")
    table = pd.DataFrame({"plan": names})
    table["total_amount"] = [p.total_amount for p in comparison.plans]
    table["doses"] = [len(p.amounts) for p in comparison.plans]
    table[objective] = est.loc[names, objective].to_numpy()
    table[f"{objective}_mcse"] = err.loc[names, objective].to_numpy()
    feasible = np.ones(len(names), bool)
    borderline = np.zeros(len(names), bool)
    for c in constraints:
        v, e = est.loc[names, c.target].to_numpy(), np.nan_to_num(err.loc[names, c.target].to_numpy())
        if c.target != objective:
            table[c.target], table[f"{c.target}_mcse"] = v, e
        ok = np.array([c.holds(x) for x in v])
        feasible &= ok
        borderline |= np.array([abs(c.margin(x)) <= z * s for x, s in zip(v, e, strict=True)]) & (e > 0)
    table["feasible"], table["borderline"] = feasible, borderline
    table["tied"], table["chosen"] = False, False
    rule = _rule(objective, constraints, z)
    if not feasible.any():
        return RegimenChoice(comparison, table, None, [], rule + ". No plan met the constraints.", objective,
                             list(constraints))
    obj = table[objective].to_numpy()
    best = int(np.argmax(np.where(feasible, obj, -np.inf)))
    diffs = comparison.differences(objective, reference=names[best]) if len(names) > 1 else pd.DataFrame()
    gap_err = {r.plan_b: r.mcse for r in diffs.itertuples()} if len(diffs) else {}
    tied = np.zeros(len(names), bool)
    for i, name in enumerate(names):
        if not feasible[i]:
            continue
        s = 0.0 if i == best else np.nan_to_num(gap_err.get(name, 0.0))
        tied[i] = obj[best] - obj[i] <= z * s + 1e-12
    table["tied"] = tied
    order = sorted(np.flatnonzero(tied), key=lambda i: (table["total_amount"][i], table["doses"][i], i))
    pick = int(order[0])
    table.loc[pick, "chosen"] = True
    ties = [names[i] for i in order if i != pick]
    return RegimenChoice(comparison, table, comparison.plans[pick], ties, rule, objective, list(constraints))


def optimize_regimen(source: Any, objective: str, constraints: Sequence[Constraint] | Mapping[str, float],
                     targets: Sequence[Target], *, grid: Sequence[Plan], times: Sequence[float], z: float = 2.0,
                     point_estimates: Sequence[str] = ("mean", "median"), **compare_kwargs: Any) -> RegimenChoice:
    """Choose the plan of `grid` that maximises `objective` subject to `constraints` (see the module rule).

    Parameters
    ----------
    source : Twin or PosteriorDraws
        The patient's posterior.
    objective : str
        Name of the target to maximise (a probability or expected fraction).
    constraints : sequence of Constraint, or mapping of target name to an upper limit
        E.g. ``{"toxic peak": 0.05}`` for P(toxic peak) <= 5 %.
    targets : sequence of Target
        Every target the objective and constraints name (and any others to report).
    grid : sequence of Plan
        Candidate plans, e.g. ``regimen_grid(doses=..., intervals=..., stop=...)``.
    times : sequence of float
        Time grid of the comparison.
    z : float
        Ties and borderline constraints within `z` Monte Carlo standard errors.
    point_estimates : sequence of str
        Also choose on these point estimates (``"mean"``, ``"median"``; ``"map"``, the posterior mode, when
        `source` is a Twin: ``bayestwin.decision.map_estimate``) and report where they differ.
    **compare_kwargs
        Passed to ``compare_plans`` (``override_convergence``, ``seed``...).
    """
    cons = [Constraint(k, max=float(v)) for k, v in constraints.items()] if isinstance(constraints, Mapping) \
        else list(constraints)
    override = compare_kwargs.pop("override_convergence", False)
    if "map" in point_estimates and isinstance(source, PosteriorDraws):
        raise InputError("point estimate 'map' needs the fitted Twin (its log posterior density), not PosteriorDraws: "
                         "pass the twin as source, or leave 'map' out of point_estimates")
    draws = source if isinstance(source, PosteriorDraws) else PosteriorDraws.from_twin(
        source, override_convergence=override)
    comparison = compare_plans(draws, list(grid), targets, times=times, **compare_kwargs)
    result = choose(comparison, objective, cons, z=z)
    for kind in point_estimates:
        point = map_draws(source, override_convergence=override) if kind == "map" else draws.point(kind)
        point_cmp = compare_plans(point, list(grid), targets, times=times, **compare_kwargs)
        pc = choose(point_cmp, objective, cons, z=z)
        result.point_estimates[kind] = {"chosen": None if pc.chosen is None else pc.chosen.name, "table": pc.table}
    return result
