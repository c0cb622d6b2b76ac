"""Fold designs of the forecast-calibration study (K folds, leave one patient out) and the k curve's bookkeeping.

Fast: no fit. The real study (fold populations fitted once, twins at two conditioning sizes) is
tests/validation/test_calibration.py's module fixture.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayestwin.data import load_dataset
from bayestwin.validation.calibration import LEVELS, CalibrationResult, leave_future_out
from bayestwin.validation.conditioning import ConditioningCurve, conditioning_curve
from bayestwin.validation.folds import FoldPopulations, fold_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from model_specs.theophylline import spec


@pytest.mark.parametrize("n_folds", [2, 3, 5, 12])
def test_folds_partition_the_patients_evenly_and_reproducibly(n_folds: int) -> None:
    ids = [f"p{i}" for i in range(12)]
    folds = fold_assignment(ids, n_folds, seed=4)
    flat = [pid for f in folds for pid in f]
    assert sorted(flat) == sorted(ids)  # every patient in exactly one fold
    sizes = [len(f) for f in folds]
    assert len(folds) == n_folds and max(sizes) - min(sizes) <= 1
    assert [f.tolist() for f in fold_assignment(ids, n_folds, seed=4)] == [f.tolist() for f in folds]
    if n_folds == 12:  # leave one patient out
        assert sizes == [1] * 12
    assert [f.tolist() for f in fold_assignment(ids, n_folds, seed=5)] != [f.tolist() for f in folds]


def test_impossible_fold_counts_are_refused_with_the_range() -> None:
    for n in (1, 13):
        with pytest.raises(ValueError, match=r"between 2 and the number of patients \(12\)"):
            fold_assignment(range(12), n)


def _pops(folds: list[list], ok: list[bool]) -> FoldPopulations:
    table = pd.DataFrame({"fold": range(1, len(folds) + 1), "ok": ok}).set_index("fold")
    return FoldPopulations(folds=tuple(np.asarray(f, dtype=object) for f in folds), fits=(), table=table,
                           notes=(), settings={}, wall_s=0.0)


def test_failed_fold_fits_are_counted() -> None:
    assert _pops([[1], [2], [3]], [True, False, False]).n_failed == 2
    assert _pops([[1], [2]], [True, True]).n_failed == 0


def test_populations_from_other_patients_and_scoring_conditioning_data_are_refused() -> None:
    theo = load_dataset("theo_sd")
    wrong = _pops([list(theo.patients)[:6], ["x", "y"]], [True, True])
    with pytest.raises(ValueError, match="fitted on other patients"):
        leave_future_out(spec(), theo, n_conditioning=3, populations=wrong)
    with pytest.raises(ValueError, match="score_after=2 < n_conditioning=3"):
        leave_future_out(spec(), theo, n_conditioning=3, score_after=2, populations=wrong)
    with pytest.raises(ValueError, match="at least one conditioning size"):
        conditioning_curve(spec(), theo, ks=(0, 2), populations=wrong)


def _result(k: int, error: float, n_obs: int = 10, n_patients: int = 6, seed: int = 0) -> CalibrationResult:
    """Patients with `n_obs` observations, scored after the first `k`; twin medians off by `error` (relative)."""
    rng = np.random.default_rng(seed)
    p = pd.DataFrame({"patient": np.repeat(np.arange(n_patients), n_obs),
                      "obs_index": np.tile(np.arange(n_obs), n_patients), "dv": rng.uniform(1, 10, n_obs * n_patients)})
    p = p[p["obs_index"] >= k].reset_index(drop=True)
    p["twin_median"] = p["dv"] * (1 + error * rng.choice([-1, 1], len(p)))
    p["population_median"] = p["dv"] * 1.3
    p["last_value"] = p["dv"] * 0.5
    p["pit"] = rng.random(len(p))
    p["crps"] = error * p["dv"]
    for lv in LEVELS:
        p[f"in_{lv:g}"] = rng.random(len(p)) < lv
    return CalibrationResult(dataset="d", spec="s", predictions=p, settings={"n_conditioning": k}, wall_s=0.0)


def test_curve_compares_every_k_on_the_same_later_observations() -> None:
    curve = ConditioningCurve(results={k: _result(k, err) for k, err in ((1, 0.4), (3, 0.2), (5, 0.1))})
    own = curve.table()
    assert own["observations"].tolist() == [6 * 9, 6 * 7, 6 * 5]  # each k: the observations after its k-th
    common = curve.table(common=True)
    assert curve.common_after == 5 and common["observations"].tolist() == [30, 30, 30]
    keys = [curve.common(k).predictions[["patient", "obs_index"]].to_numpy().tolist() for k in (1, 3, 5)]
    assert keys[0] == keys[1] == keys[2]
    assert common["twin_MDAPE_%"].round(6).tolist() == [40.0, 20.0, 10.0]
    assert common.loc[5, "CRPS"] < common.loc[1, "CRPS"]
    assert curve.more_data_helps() == {"CRPS": True, "twin_MDAPE_%": True}
    worse = ConditioningCurve(results={1: _result(1, 0.1), 5: _result(5, 0.3)})
    assert worse.more_data_helps() == {"CRPS": False, "twin_MDAPE_%": False}
    assert set(own.columns) >= {f"coverage_{lv:g}" for lv in LEVELS} | {"population_MDAPE_%", "twin_MDPE_%"}
