"""Patient-cluster bootstrap of coverage: width against binomial limits, calibration, and the report columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayestwin.validation.bootstrap import cluster_bootstrap_coverage, cluster_bootstrap_interval
from bayestwin.validation.calibration import LEVELS, CalibrationResult


def test_independent_observations_give_the_binomial_width_and_clustered_ones_the_patient_binomial() -> None:
    rng = np.random.default_rng(0)
    n_pat, per, p = 200, 5, 0.8
    inside = rng.binomial(per, p, n_pat)  # independent observations
    lo, hi = cluster_bootstrap_interval(inside, np.full(n_pat, per), n_boot=4000, seed=1)
    binomial = 2 * 1.96 * np.sqrt(p * (1 - p) / (n_pat * per))  # 0.0496
    # the bootstrap SD of a pooled proportion from 1000 observations is within a few % of the binomial SD
    # (sampling SD of p_hat (1 - p_hat) here is ~3 %, quantile noise at 4000 resamples ~2 %)
    assert (hi - lo) == pytest.approx(binomial, rel=0.15)
    # perfectly correlated within a patient: the information is that of n_pat Bernoulli draws, not n_pat * per
    whole = per * rng.binomial(1, p, n_pat)
    lo, hi = cluster_bootstrap_interval(whole, np.full(n_pat, per), n_boot=4000, seed=1)
    assert (hi - lo) == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / n_pat), rel=0.15)  # sqrt(5) wider


def test_interval_covers_the_true_coverage_at_its_nominal_rate() -> None:
    # 50 patients x 2 observations (like pheno_sd); patient-level coverage probability ~ Beta(8, 2), mean 0.8.
    # 400 simulated studies: the MC SE of the hit rate is 0.011, so 0.95 +- 3 SE. (With 12 patients x 8 the
    # percentile interval is known to be short: measured 0.90; the report says so.)
    rng = np.random.default_rng(1)
    hits = 0
    for r in range(400):
        inside = rng.binomial(2, rng.beta(8, 2, 50))
        lo, hi = cluster_bootstrap_interval(inside, np.full(50, 2), n_boot=1000, seed=r)
        hits += lo <= 0.8 <= hi
    assert 0.917 <= hits / 400 <= 0.983


def test_degenerate_and_invalid_inputs() -> None:
    assert cluster_bootstrap_interval(np.array([3, 2]), np.array([3, 2])) == (1.0, 1.0)
    with pytest.raises(ValueError, match="one entry per patient"):
        cluster_bootstrap_interval(np.array([1, 2]), np.array([3]))
    with pytest.raises(ValueError, match="0 <= inside <= count"):
        cluster_bootstrap_interval(np.array([4]), np.array([3]))


def test_coverage_table_reports_the_interval_and_whether_the_target_band_is_consistent_with_it() -> None:
    # 12 patients x 8 observations; every patient has 7 of 8 inside the 95 % interval except two with 4
    inside95 = np.array([7] * 10 + [4, 4])
    rows = []
    for i, k in enumerate(inside95):
        for j in range(8):
            rows.append({"patient": i, "dv": 1.0, "twin_median": 1.0, "population_median": 1.0, "last_value": 1.0,
                         "pit": 0.5, "crps": 0.0} | {f"in_{lv:g}": j < (k if lv == 0.95 else 6) for lv in LEVELS})
    p = pd.DataFrame(rows)
    cov = CalibrationResult(dataset="d", spec="s", predictions=p, settings={}, wall_s=0.0).coverage(n_boot=2000)
    row = cov.loc[0.95]
    assert row["coverage"] == pytest.approx(78 / 96)  # 0.8125: misses 0.91-0.98
    assert not row["ok"] and row["patients"] == 12
    assert row["ci_low"] < row["coverage"] < row["ci_high"] < 0.91  # ci_high <= 7/8 = 0.875: band inconsistent
    assert not row["band_consistent"]
    assert cov.loc[0.8, "coverage"] == 0.75 and cov.loc[0.8, "ok"] and cov.loc[0.8, "band_consistent"]
    same = cluster_bootstrap_coverage(p, (0.95,), n_boot=2000)
    assert same.loc[0.95, "ci_low"] == row["ci_low"] and same.loc[0.95, "ci_high"] == row["ci_high"]
