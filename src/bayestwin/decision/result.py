"""``PlanComparison``: the labelled result of ``compare_plans``, its tables and its JSON.

``dataset`` is an xarray Dataset: ``value`` with dims ``(plan, target, chain, draw)`` (per draw: the
indicator of the target's event, the fraction of time in range, or the crossing time, +inf when not
crossed) and the interval sample ``pred_sample`` / ``ipred_sample`` (a new measurement / the latent value) with
dims ``(plan, sample, time, output)``, from which ``intervals`` computes quantiles when asked (floored at 0 for an
output that cannot be negative, the ``nonnegative`` coordinate: see ``bayestwin.forecast.forecast``). Tables are
tidy pandas frames with units in the column names.

Examples
--------
>>> PlanComparison.__name__
'PlanComparison'
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayestwin.decision.draws import PosteriorDraws
from bayestwin.decision.mcse import ess_of_mean, mcse_of_mean
from bayestwin.decision.plans import Plan
from bayestwin.decision.targets import Target
from bayestwin.exceptions import InputError

__all__ = ["COMPARISON_SCHEMA", "PlanComparison"]

COMPARISON_SCHEMA = "bayestwin.plan_comparison/1"


def _quantile_levels(probs: Sequence[float]) -> list[float]:
    for p in probs:
        if not 0 < p < 1:
            raise InputError(f"interval probabilities must be in (0, 1), got {p}")
    return sorted({0.5, *[(1 - p) / 2 for p in probs], *[(1 + p) / 2 for p in probs]})


@dataclass
class PlanComparison:
    """Result of ``compare_plans`` (see the module docstring)."""

    dataset: xr.Dataset
    plans: list[Plan]
    targets: list[Target]
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, *, draws: PosteriorDraws, plans: list[Plan], targets: list[Target], values: np.ndarray,
              interval_times: np.ndarray, ipred_sub: np.ndarray, pred_sub: np.ndarray,
              interval_probs: Sequence[float], grid: np.ndarray, target_units: list[str], warnings: list[str],
              path: str) -> PlanComparison:
        """Assemble from the program's outputs (``values``: plan, chain, draw, target)."""
        _quantile_levels(interval_probs)  # validates
        outputs = list(draws.spec.observed_outputs)
        coords = {"plan": [p.name for p in plans], "target": [t.name for t in targets],
                  "chain": np.arange(values.shape[1]), "draw": np.arange(values.shape[2]),
                  "sample": np.arange(pred_sub.shape[1]), "time": interval_times, "output": outputs}
        ds = xr.Dataset(coords=coords)
        ds["value"] = (("plan", "target", "chain", "draw"), np.moveaxis(values, 3, 1))
        for name, sub in (("pred_sample", pred_sub), ("ipred_sample", ipred_sub)):
            ds[name] = (("plan", "sample", "time", "output"), sub)
        ds["time"].attrs["unit"] = draws.units["time"]
        nonnegative = draws.model.nonnegative_outputs
        ds = ds.assign_coords(unit=("output", [draws.units[o] for o in outputs]),
                              nonnegative=("output", [o in nonnegative for o in outputs]))
        ds.attrs.update(time_unit=draws.units["time"], path=path, interval_draws=int(pred_sub.shape[1]))
        meta = {"patient": draws.patient, "units": dict(draws.units), "grid": grid.tolist(),
                "interval_probs": list(interval_probs), "target_units": target_units, "path": path,
                **{k: v for k, v in draws.meta.items() if k != "population_ranges"},
                "population_ranges": draws.meta.get("population_ranges")}
        return cls(ds, plans, targets, warnings, meta)

    # --- per-draw indicators ----------------------------------------------------------------------
    @property
    def time_unit(self) -> str:
        """Unit of every time in the result."""
        return str(self.dataset.attrs["time_unit"])

    def indicators(self, target: str) -> np.ndarray:
        """Per-draw values averaged into the target's estimate, ``(plan, chain, draw)``."""
        tg = self._target(target)
        v = self.dataset["value"].sel(target=target).to_numpy()
        return np.isfinite(v).astype(float) if tg.kind == "first" else v

    def _target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise InputError(f"no target {name!r} in this comparison; it has {[t.name for t in self.targets]}")

    # --- tables -----------------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per (plan, target): estimate, MCSE, ESS; for time-to-threshold targets the median time.

        ``estimate`` is a probability, the expected fraction of time in range (``fraction``), or the
        probability of reaching the threshold within the window (``first``; ``censored`` = 1 - estimate,
        draws that had not crossed by the end of the window).
        """
        rows = []
        tu = self.time_unit
        for tg in self.targets:
            ind = self.indicators(tg.name)  # (plan, chain, draw)
            est = ind.mean(axis=(1, 2))
            err = mcse_of_mean(np.moveaxis(ind, 0, 2))
            ess = ess_of_mean(np.moveaxis(ind, 0, 2))
            times = self.dataset["value"].sel(target=tg.name).to_numpy().reshape(len(self.plans), -1)
            for p, plan in enumerate(self.plans):
                row = {"plan": plan.name, "target": tg.name, "kind": tg.kind, "description": tg.describe(),
                       "estimate": float(est[p]), "mcse": float(err[p]), "ess": float(ess[p]),
                       f"median time ({tu})": np.nan, "censored": np.nan}
                if tg.kind == "first":
                    row["censored"] = 1.0 - float(est[p])
                    row[f"median time ({tu})"] = float(np.quantile(times[p], 0.5)) if est[p] >= 0.5 else np.inf
                rows.append(row)
        return pd.DataFrame(rows)

    def estimate(self, plan: str, target: str) -> tuple[float, float]:
        """(estimate, MCSE) of one plan and target."""
        s = self.summary()
        row = s[(s["plan"] == plan) & (s["target"] == target)]
        if row.empty:
            raise InputError(f"no plan {plan!r} with target {target!r}; plans: {[p.name for p in self.plans]}")
        return float(row["estimate"].iloc[0]), float(row["mcse"].iloc[0])

    def differences(self, target: str | None = None, *, reference: str | None = None) -> pd.DataFrame:
        """Differences ``estimate(plan_a) - estimate(plan_b)`` with their MCSE.

        Pairs: every pair of plans (up to 12 plans), or each plan against `reference`. ``mcse`` is the MCSE of
        the difference under common random numbers (from the per-draw differences), ``mcse_independent`` what
        it would be with independent draws per plan (``sqrt(mcse_a**2 + mcse_b**2)``), ``crn_ratio`` their ratio.
        """
        names = [p.name for p in self.plans]
        if reference is not None and reference not in names:
            raise InputError(f"reference plan {reference!r} is not one of {names}")
        if reference is None and len(names) > 12:
            raise InputError(f"{len(names)} plans make {len(names) * (len(names) - 1) // 2} pairs; pass reference=")
        pairs = ([(names.index(reference), j) for j in range(len(names)) if names[j] != reference]
                 if reference is not None else list(itertools.combinations(range(len(names)), 2)))
        rows = []
        for tg in [self._target(target)] if target else self.targets:
            ind = self.indicators(tg.name)
            if not pairs:
                continue
            own = mcse_of_mean(np.moveaxis(ind, 0, 2))
            diff = np.stack([ind[a] - ind[b] for a, b in pairs], axis=-1)  # (chain, draw, pair)
            err = mcse_of_mean(diff)
            for k, (a, b) in enumerate(pairs):
                indep = float(np.hypot(own[a], own[b]))
                rows.append({"target": tg.name, "plan_a": names[a], "plan_b": names[b],
                             "difference": float(diff[..., k].mean()), "mcse": float(err[k]),
                             "mcse_independent": indep,
                             "crn_ratio": indep / float(err[k]) if err[k] > 0 else np.inf if indep > 0 else np.nan})
        return pd.DataFrame(rows)

    def intervals(self, quantity: str = "pred") -> pd.DataFrame:
        """Central predictive intervals per plan, time and output, as a tidy table.

        Columns ``plan, time (unit), output, prob, lower, median, upper, unit``; `quantity` ``"pred"`` (a new
        measurement) or ``"ipred"`` (latent).
        """
        if quantity not in ("pred", "ipred"):
            raise InputError(f"quantity must be 'pred' or 'ipred', got {quantity!r}")
        sample = self.dataset[f"{quantity}_sample"]
        levels = _quantile_levels(self.meta["interval_probs"])
        q = np.moveaxis(np.quantile(sample.to_numpy(), levels, axis=1), 0, 1)  # (plan, quantile, time, output)
        if "nonnegative" in sample.coords:  # intervals of max(0, y) for outputs that cannot be negative
            q = np.where(sample["nonnegative"].to_numpy(), np.maximum(q, 0.0), q)
        rows = []
        for prob in self.meta["interval_probs"]:
            lo, hi = levels.index((1 - prob) / 2), levels.index((1 + prob) / 2)
            mid = levels.index(0.5)
            for p, plan in enumerate(self.plans):
                for o, out in enumerate(sample["output"].to_numpy()):
                    for i, t in enumerate(sample["time"].to_numpy()):
                        v = q[p, :, i, o]
                        rows.append({"plan": plan.name, f"time ({self.time_unit})": float(t), "output": str(out),
                                     "prob": prob, "lower": float(v[lo]), "median": float(v[mid]),
                                     "upper": float(v[hi]), "unit": self.meta["units"][str(out)]})
        return pd.DataFrame(rows)

    def survival(self, target: str) -> pd.DataFrame:
        """For a ``TimeToThreshold`` target: P(not yet crossed by t) per plan on the grid (censored at its end)."""
        tg = self._target(target)
        if tg.kind != "first":
            raise InputError(f"target {target!r} is a {type(tg).__name__}, not a TimeToThreshold")
        grid = np.asarray(self.meta["grid"])
        v = self.dataset["value"].sel(target=target).to_numpy().reshape(len(self.plans), -1)
        rows = [{"plan": plan.name, f"time ({self.time_unit})": float(t), "not_crossed": float(np.mean(v[p] > t))}
                for p, plan in enumerate(self.plans) for t in grid]
        return pd.DataFrame(rows)

    # --- documents --------------------------------------------------------------------------------
    def to_dict(self, *, intervals: bool = True) -> dict[str, Any]:
        """Plain data: plans, targets, summary, intervals, warnings, provenance (JSON-able)."""
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records"))  # NaN/inf -> null, numpy -> plain
        return {"schema": COMPARISON_SCHEMA, "patient": self.meta.get("patient"), "time_unit": self.time_unit,
                "units": self.meta.get("units"), "plans": [p.to_record() for p in self.plans],
                "targets": [t.to_record() for t in self.targets], "summary": records(self.summary()),
                "intervals": records(self.intervals()) if intervals else None, "warnings": list(self.warnings),
                "draws": {"chains": int(self.dataset.sizes["chain"]), "draws": int(self.dataset.sizes["draw"])},
                "provenance": self.meta.get("provenance"), "diagnostics": self.meta.get("diagnostics")}

    def to_json(self, *, indent: int | None = 2, intervals: bool = True) -> str:
        """``to_dict`` as JSON text."""
        from bayestwin.forecast.forecast import json_default

        return json.dumps(self.to_dict(intervals=intervals), indent=indent, default=json_default)

    def __repr__(self) -> str:
        s = self.dataset.sizes
        return (f"PlanComparison(patient={self.meta.get('patient')!r}, plans={s['plan']}, targets={s['target']}, "
                f"draws={s['chain'] * s['draw']}, warnings={len(self.warnings)})")
