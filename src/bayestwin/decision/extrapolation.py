"""Extrapolation warnings: a plan or a patient outside what the population was fitted on.

The population model learned from the cohort's doses and covariates. A plan whose single doses are larger
or smaller than any dose in the cohort, that doses into a compartment the cohort never received, or that
infuses when the cohort had only boluses, asks the model for something it has not seen; so does a patient
whose covariate (weight, age...) lies outside the cohort's range. Such cases are flagged as warnings in the
comparison (a list of sentences), not raised: the model may still be right, but the clinician should know.

Examples
--------
>>> ranges = {"amt": [100.0, 320.0], "compartments": [0], "infusion": False, "covariates": {"wt": [50.0, 90.0]}}
>>> dose_warnings("800 mg q12h", [800.0], [0], [0.0], ranges, amt_unit="mg")
['plan 800 mg q12h: dose 800 mg is outside the doses the population was fitted on (100-320 mg)']
>>> covariate_warnings({"wt": 120.0}, ranges)
['patient covariate wt = 120 is outside the population range 50-90']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["covariate_warnings", "dose_warnings", "population_ranges"]


def population_ranges(population: Any) -> dict[str, Any] | None:
    """Ranges of the cohort data of a ``PopulationFit`` (spec units); None if its arrays are not kept.

    Keys: ``amt`` [min, max] of dose amounts (> 0), ``compartments`` (0-based indices dosed),
    ``infusion`` (whether any dose was an infusion), ``covariates`` {name: [min, max]}.
    """
    arrays = getattr(population, "arrays", None)
    if arrays is None:
        return None
    mask = np.asarray(arrays.doses.mask, dtype=bool) & (np.asarray(arrays.doses.amt) > 0)
    amt = np.asarray(arrays.doses.amt)[mask]
    covs = {}
    for name, values in arrays.covariates.items():
        v = np.asarray(values, dtype=float)
        if v.size and name.isidentifier():
            covs[name] = [float(np.nanmin(v)), float(np.nanmax(v))]
    return {"amt": [float(amt.min()), float(amt.max())] if amt.size else None,
            "compartments": sorted({int(c) for c in np.asarray(arrays.doses.cmt)[mask]}),
            "infusion": bool((np.asarray(arrays.doses.rate)[mask] > 0).any()), "covariates": covs}


def dose_warnings(plan: str, amounts: Sequence[float], compartments: Sequence[int], rates: Sequence[float],
                  ranges: Mapping[str, Any] | None, *, amt_unit: str) -> list[str]:
    """Warnings for one plan's doses (amounts in spec units) against the population `ranges`."""
    if ranges is None or not len(amounts):
        return []
    out = []
    lo_hi = ranges.get("amt")
    if lo_hi is not None:
        lo, hi = lo_hi
        bad = sorted({float(a) for a in amounts if a < lo * (1 - 1e-9) or a > hi * (1 + 1e-9)})
        if bad:
            shown = ", ".join(f"{a:g}" for a in bad[:5])
            out.append(f"plan {plan}: dose {shown} {amt_unit} is outside the doses the population was fitted on "
                       f"({lo:g}-{hi:g} {amt_unit})")
    seen = set(ranges.get("compartments", []))
    new = sorted({int(c) for c in compartments} - seen)
    if seen and new:
        out.append(f"plan {plan}: doses into compartment index {new}, which no cohort dose went into ({sorted(seen)})")
    if not ranges.get("infusion", True) and any(r > 0 for r in rates):
        out.append(f"plan {plan}: infusions, but the population was fitted on boluses only")
    return out


def covariate_warnings(covariates: Mapping[str, Any], ranges: Mapping[str, Any] | None) -> list[str]:
    """Warnings for patient covariates outside the population's covariate ranges."""
    if ranges is None:
        return []
    out = []
    for name, (lo, hi) in ranges.get("covariates", {}).items():
        if name not in covariates:
            continue
        values = np.atleast_1d(np.asarray(covariates[name], dtype=float))
        outside = values[(values < lo) | (values > hi)]
        if outside.size:
            out.append(f"patient covariate {name} = {outside[0]:g} is outside the population range {lo:g}-{hi:g}")
    return out
