"""The simulated cohort: seeds, truth table, confounders, and injected effects of the stated size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayestwin.exceptions import InputError
from bayestwin.monitor.simulate import EFFECTS, POPULATION, SCHEDULES, SimulatedCohort, simulate_cohort
from bayestwin.monitor.streams import STREAM_COLUMNS, usable


@pytest.fixture(scope="module")
def cohort() -> SimulatedCohort:
    return simulate_cohort(n_patients=12, days=6.0, seed=3, artefact=0.02)


@pytest.fixture(scope="module")
def clean() -> SimulatedCohort:
    # confounders off, every patient deteriorates, long enough to see each effect at full size for 24 h
    return simulate_cohort(n_patients=9, days=10.0, seed=11, fraction_deteriorating=1.0, onset_min_h=48.0,
                           onset_margin_h=100.0, exercise_per_day=0.0, artefact=0.0, missing=0.0,
                           gaps_per_day=0.0, duplicate=0.0, late=0.0)


def test_same_seed_same_cohort_other_seed_other_cohort(cohort: SimulatedCohort) -> None:
    again = simulate_cohort(n_patients=12, days=6.0, seed=3, artefact=0.02)
    pd.testing.assert_frame_equal(again.frame, cohort.frame)
    pd.testing.assert_frame_equal(again.truth, cohort.truth)
    other = simulate_cohort(n_patients=12, days=6.0, seed=4, artefact=0.02)
    assert not other.truth["onset_h"].equals(cohort.truth["onset_h"])


def test_truth_table_has_half_the_patients_with_one_event_each(cohort: SimulatedCohort) -> None:
    truth = cohort.truth
    assert list(truth.columns) == ["patient", "signal", "onset_h", "kind", "magnitude"]
    assert len(truth) == 12 * 7 and truth.groupby("patient").size().eq(7).all()
    kinds = truth.groupby("patient")["kind"].first()
    assert (kinds == "none").sum() == 6
    assert kinds[kinds != "none"].value_counts().to_dict() == {"sepsis": 2, "hypertensive": 2, "heart_failure": 2}
    for (_patient, kind), rows in truth.groupby(["patient", "kind"]):
        hit = rows[rows["onset_h"].notna()]
        if kind == "none":
            assert hit.empty and (rows["magnitude"] == 0).all()
            continue
        assert set(hit["signal"]) == set(EFFECTS[kind][1])
        assert hit["onset_h"].nunique() == 1 and 72.0 <= hit["onset_h"].iloc[0] <= 6 * 24 - 36.0
        ratio = hit["magnitude"].to_numpy() / np.array([EFFECTS[kind][1][s] for s in hit["signal"]])
        assert np.allclose(ratio, ratio[0]) and 0.8 <= ratio[0] <= 1.2


def test_frame_is_canonical_on_the_simulation_clock(cohort: SimulatedCohort) -> None:
    f = cohort.frame
    assert tuple(f.columns) == STREAM_COLUMNS
    assert set(f.attrs["origin"].values()) == {"2026-01-05T00:00:00+00:00"}
    hours = (f["timestamp"] - f["timestamp"].dt.normalize()).dt.total_seconds() / 3600.0
    np.testing.assert_allclose(hours, f["time_h"] % 24.0, atol=1e-6)
    assert set(f["signal"]) == set(POPULATION)
    assert set(f["device"]) == {d for spec in SCHEDULES.values() for d in spec[0]}


def test_confounders_and_stream_defects_are_present_and_flagged(cohort: SimulatedCohort) -> None:
    f = cohort.frame
    counts = f["status"].value_counts().to_dict()
    assert counts["duplicate"] > 0 and counts["implausible"] > 0 and set(counts) <= {"ok", "duplicate", "implausible"}
    assert f["late"].sum() > 0
    assert (f.loc[f["status"] != "ok", "reason"] != "").all()
    u = usable(f)
    # US units (degF, lb) were converted: usable temperatures and weights are in Cel and kg
    assert u.loc[u["signal"] == "temperature", "value"].between(34.0, 42.0).all()
    assert u.loc[u["signal"] == "weight", "value"].between(30.0, 200.0).all()
    assert cohort.params["us_units"].any()
    # wearable gaps of more than an hour, and duplicates only among repeated readings
    gaps = u[u["signal"] == "heart_rate"].groupby("patient")["time_h"].diff()
    assert (gaps > 1.0).any()
    dup = f[f["status"] == "duplicate"]
    key = ["patient", "signal", "timestamp", "device", "value"]
    assert dup[key].merge(u[key], on=key).shape[0] == len(dup)


def _known_profile(params: pd.Series, signal: str, t: np.ndarray) -> np.ndarray:
    """The deterministic part the generator adds (baseline, circadian, sleep), at its 5-minute grid times."""
    grid = np.floor(t / (5.0 / 60.0)) * (5.0 / 60.0)
    hour = grid % 24.0
    bed, rise = params["bedtime"], params["rise"]
    asleep = (hour >= bed) | (hour < rise) if bed > rise else (hour >= bed) & (hour < rise)
    sleep = POPULATION[signal][3]
    circadian = params[f"{signal}_amplitude"] * np.cos(2 * np.pi * (grid - params["peak_hour"]) / 24.0)
    return params[f"{signal}_baseline"] + circadian + sleep * asleep


def _contrast_sd(params: pd.Series, signal: str, t_before: np.ndarray, t_after: np.ndarray) -> float:
    """Exact SD of mean(after) - mean(before) of OU + device noise + rounding, at the sampled grid times."""
    _, _, _, _, ou_sd, tau, _ = POPULATION[signal]
    t = np.floor(np.concatenate([t_before, t_after]) / (5.0 / 60.0)) * (5.0 / 60.0)
    w = np.concatenate([-np.ones(t_before.size) / t_before.size, np.ones(t_after.size) / t_after.size])
    cov = ou_sd**2 * np.exp(-np.abs(t[:, None] - t[None, :]) / tau)  # exact OU covariance on the grid
    noise = SCHEDULES[signal][0][params[f"{signal}_device"]]
    res = SCHEDULES[signal][3]
    if params["us_units"] and signal in ("temperature", "weight"):
        res = 0.1 * (5.0 / 9.0 if signal == "temperature" else 0.45359237)  # rounded in degF / lb
    return float(np.sqrt(w @ cov @ w + (noise**2 + res**2 / 12.0) * (w**2).sum()))


def check_injected_effects(cohort: SimulatedCohort, *, family_alpha: float = 1e-3) -> np.ndarray:
    """z of each (after - before) contrast of known-profile residuals against its stated magnitude."""
    from scipy.stats import norm

    u = usable(cohort.frame)
    params = cohort.params.set_index("patient")
    z_scores = []
    for row in cohort.truth.dropna(subset=["onset_h"]).itertuples():
        ramp = EFFECTS[row.kind][0]
        s = u[(u["patient"] == row.patient) & (u["signal"] == row.signal)]
        t, v = s["time_h"].to_numpy(), s["value"].to_numpy()
        resid = v - _known_profile(params.loc[row.patient], row.signal, t)
        before = (t >= row.onset_h - 24.0) & (t < row.onset_h)
        after = (t >= row.onset_h + ramp) & (t < row.onset_h + ramp + 24.0)
        sd = _contrast_sd(params.loc[row.patient], row.signal, t[before], t[after])
        z_scores.append((resid[after].mean() - resid[before].mean() - row.magnitude) / sd)
    z = np.asarray(z_scores)
    k = norm.isf(family_alpha / (2 * len(z)))  # each |z| < k: family-wise false-failure rate family_alpha
    assert np.abs(z).max() < k, (k, z.round(2))
    assert abs(z.mean()) < 4.0 / np.sqrt(len(z)), z.mean()  # no bias
    assert abs((z**2).sum() - len(z)) < 4.0 * np.sqrt(2 * len(z)), (z**2).mean()  # the stated noise levels
    return z


def test_injected_effects_have_the_stated_size(clean: SimulatedCohort) -> None:
    assert len(check_injected_effects(clean)) >= 30


def test_heart_failure_weight_gain_reaches_two_kg_in_three_days(clean: SimulatedCohort) -> None:
    hf = clean.truth[(clean.truth["kind"] == "heart_failure") & (clean.truth["signal"] == "weight")]
    assert len(hf) >= 2 and (hf["magnitude"] >= 0.8 * 3.0).all()


def test_config_errors_name_the_setting() -> None:
    with pytest.raises(InputError, match=r"unknown deterioration kind\(s\) \['stroke'\]"):
        simulate_cohort(kinds=("stroke",))
    with pytest.raises(InputError, match="lengthen `days`"):
        simulate_cohort(days=3.0)
    with pytest.raises(InputError, match=r"missing=1.5 must lie in \[0, 1\]"):
        simulate_cohort(missing=1.5)
