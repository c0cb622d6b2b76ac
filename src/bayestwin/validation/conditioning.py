"""Forecast calibration against the conditioning size: how a twin's forecasts improve with more of the patient's data.

``conditioning_curve`` runs ``leave_future_out`` at several conditioning sizes k on ONE set of fold populations
(``fit_fold_populations``: the expensive part is fitted once), and reports coverage, CRPS and MIPD accuracy
against k twice:

* on each k's own held-out set (every observation after the patient's k-th: what a study at that k reports), and
* on a **common set**, the observations after the largest k, so that every k forecasts the same observations
  and "a twin with more data forecasts better" is a like-for-like comparison.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from bayestwin.validation.calibration import LEVELS, CalibrationResult
>>> def result(k, err):
...     p = pd.DataFrame({"patient": np.repeat([1, 2], 4), "obs_index": np.tile([2, 3, 4, 5], 2), "dv": 10.0,
...                       "twin_median": 10.0 * (1 + err), "population_median": 13.0, "last_value": 5.0,
...                       "pit": 0.5, "crps": err})
...     p = p[p["obs_index"] >= k]
...     return CalibrationResult(dataset="d", spec="s", predictions=p.assign(**{f"in_{lv:g}": True for lv in LEVELS}),
...                              settings={"n_conditioning": k}, wall_s=0.0)
>>> curve = ConditioningCurve(results={2: result(2, 0.2), 4: result(4, 0.1)})
>>> curve.table(common=True)[["observations", "twin_MDAPE_%", "CRPS"]].round(3).to_dict("list")
{'observations': [4, 4], 'twin_MDAPE_%': [20.0, 10.0], 'CRPS': [0.2, 0.1]}
>>> curve.more_data_helps()
{'CRPS': True, 'twin_MDAPE_%': True}
"""

from __future__ import annotations

import dataclasses
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bayestwin.data import EventTable
from bayestwin.inference import SamplerConfig
from bayestwin.spec import TwinSpec
from bayestwin.validation.calibration import LEVELS, CalibrationResult, leave_future_out
from bayestwin.validation.folds import FoldPopulations, fit_fold_populations

__all__ = ["ConditioningCurve", "conditioning_curve"]


@dataclass(frozen=True)
class ConditioningCurve:
    """Leave-future-out results at several conditioning sizes k (keys of ``results``), same fold populations."""

    results: dict[int, CalibrationResult]
    populations: FoldPopulations | None = None
    wall_s: float = 0.0

    @property
    def common_after(self) -> int:
        """Observations scored on the common set are those after the patient's first ``max(k)``."""
        return max(self.results)

    def common(self, k: int) -> CalibrationResult:
        """The result at `k` restricted to the common set (observations after the first ``common_after``)."""
        res = self.results[k]
        keep = res.predictions["obs_index"] >= self.common_after
        return dataclasses.replace(res, predictions=res.predictions[keep].reset_index(drop=True))

    def table(self, *, common: bool = False) -> pd.DataFrame:
        """One row per k: observations, patients, coverage at every level, mean CRPS, MDPE/MDAPE (%).

        ``common=True`` scores every k on the same observations (after the largest k); otherwise each k on its
        own held-out set. ``population_MDAPE_%`` is the population-only forecast's (no patient data).
        """
        rows = []
        for k in sorted(self.results):
            res = self.common(k) if common else self.results[k]
            p = res.predictions
            m = res.mipd()
            rows.append({"k": k, "observations": len(p), "patients": int(p["patient"].nunique())}
                        | {f"coverage_{lv:g}": float(p[f"in_{lv:g}"].mean()) for lv in LEVELS}
                        | {"CRPS": float(p["crps"].mean()), "twin_MDPE_%": float(m.loc["twin", "MDPE_%"]),
                           "twin_MDAPE_%": float(m.loc["twin", "MDAPE_%"]),
                           "population_MDAPE_%": float(m.loc["population only", "MDAPE_%"])})
        return pd.DataFrame(rows).set_index("k")

    def more_data_helps(self) -> dict[str, bool]:
        """Whether the largest k beats the smallest on the common set, by mean CRPS and by twin MDAPE."""
        t = self.table(common=True)
        return {c: bool(t[c].iloc[-1] < t[c].iloc[0]) for c in ("CRPS", "twin_MDAPE_%")}


def conditioning_curve(
    spec: TwinSpec, table: EventTable, ks: Sequence[int] = (1, 2, 3, 5), *, n_folds: int = 3,
    population_sampler: SamplerConfig | None = None, populations: FoldPopulations | None = None,
    warmup: int = 300, draws: int = 500, chains: int = 2, n_components: int = 200, dataset: str | None = None,
    seed: int = 0,
) -> ConditioningCurve:
    """``leave_future_out`` at every conditioning size in `ks`, on one set of fold populations.

    Parameters
    ----------
    ks : sequence of int
        Conditioning sizes (observations per patient the twin sees), at least one.
    n_folds, population_sampler :
        As ``fit_fold_populations`` (ignored when `populations` is given); fitted once for every k.
    warmup, draws, chains, n_components, seed :
        The twins' settings, as ``leave_future_out``; the same seed for every k.

    Returns
    -------
    ConditioningCurve
        ``results[k]`` scores every observation after the k-th; ``table(common=True)`` compares the ks on the
        observations after the largest k. A patient with at most ``max(ks)`` observations is absent from the
        common set (and noted in the results).
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"ks={tuple(ks)} must hold at least one conditioning size >= 1")
    started = _time.perf_counter()
    pops = populations or fit_fold_populations(spec, table, n_folds=n_folds, population_sampler=population_sampler,
                                               seed=seed)
    results: dict[int, Any] = {}
    for k in sorted(set(ks)):
        results[k] = leave_future_out(spec, table, n_conditioning=k, populations=pops, warmup=warmup, draws=draws,
                                      chains=chains, n_components=n_components, dataset=dataset, seed=seed)
    return ConditioningCurve(results=results, populations=pops, wall_s=_time.perf_counter() - started)
