"""Patient-level detector (combined evidence, persistence, per-patient de-duplication) and the model structure rule."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from ou_synth import cohort_frame

from bayestwin.exceptions import ConvergenceWarning, InputError
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.monitor.detector import PatientPolicy, combined_probability, patient_alerts
from bayestwin.monitor.kalman import OUParams
from bayestwin.monitor.model import fit_signal, signal_arrays
from bayestwin.monitor.structure import Structure, choose_structure, circadian_coverage, within_scale


def _scores(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient", "signal", "kind", "time_h", "probability"])


def test_combined_probability_is_noisy_or_of_latest_values_and_expires() -> None:
    s = _scores([("A", "hr", "drift", 0.0, 0.2), ("A", "rr", "drift", 1.0, 0.5), ("A", "hr", "drift", 2.0, 0.6),
                 ("A", "hr", "crossing", 2.0, 0.9), ("A", "hr", "drift", 40.0, 0.1),
                 ("A", "hr", "drift", 41.0, np.nan)])
    c = combined_probability(s, kinds=("drift",), max_age_h=26.0)
    # rr expired at 40 h; a NaN (no estimate) keeps the latest value
    assert c["combined"].to_numpy() == pytest.approx([0.2, 1 - 0.8 * 0.5, 1 - 0.4 * 0.5, 0.1, 0.1])
    assert np.isnan(c.loc[("A", 40.0), "rr drift"])
    both = combined_probability(s, kinds=("drift", "crossing"))
    assert both.loc[("A", 2.0), "combined"] == pytest.approx(1 - 0.4 * 0.5 * 0.1)


def test_persistence_ignores_a_short_bout_and_delays_a_lasting_rise_by_at_most_persist_h() -> None:
    t = np.arange(0.0, 30.0, 1.0 / 6.0)
    bout = np.where((t >= 5.0) & (t < 5.5), 0.99, 0.05)  # a 30-min exercise bout
    rise = np.where(t >= 20.0, 0.99, 0.05)  # a lasting change from 20 h
    s = pd.concat([_scores([("A", "hr", "drift", x, p) for x, p in zip(t, bout, strict=True)]),
                   _scores([("B", "hr", "drift", x, p) for x, p in zip(t, rise, strict=True)])])
    quick = patient_alerts(s, PatientPolicy(0.9, persist_h=0.0, kinds=("drift",)))
    held = patient_alerts(s, PatientPolicy(0.9, persist_h=1.0, kinds=("drift",)))
    assert sorted(quick["patient"]) == ["A", "B"]
    assert held["patient"].tolist() == ["B"]
    assert 20.0 + 1.0 - 1e-9 <= held["time_h"].iloc[0] <= 20.0 + 1.0 + 1.0 / 6.0
    assert held["drivers"].iloc[0].startswith("hr drift 0.99")


def test_signals_rising_together_raise_one_alert_per_patient_and_dedup_holds() -> None:
    t = np.arange(0.0, 48.0, 0.5)
    p = np.where(((t >= 10) & (t < 12)) | ((t >= 16) & (t < 18)) | (t >= 30), 0.95, 0.0)
    rows = [("A", sig, "drift", x, v) for sig in ("hr", "rr", "spo2") for x, v in zip(t, p, strict=True)]
    a = patient_alerts(_scores(rows), PatientPolicy(0.9, dedup_h=12.0, kinds=("drift",)))
    assert a["time_h"].tolist() == [10.0, 30.0]  # 16 h is within 12 h of the first alert; 30 h is not
    assert (a["signal"] == "patient").all() and (a["kind"] == "combined").all()


def test_patient_policy_rejects_bad_levels() -> None:
    with pytest.raises(InputError, match="level"):
        PatientPolicy(1.5)
    with pytest.raises(InputError, match="persist_h"):
        PatientPolicy(0.5, persist_h=-1.0)


def _weight_frame(n_patients: int = 8, days: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        base = rng.normal(80.0, 12.0)
        t = 7.0 + 24.0 * np.arange(days) + rng.normal(0, 0.3, days)
        rows.append(pd.DataFrame({"patient": f"P{i}", "signal": "weight", "time_h": t, "device": "scale",
                                  "value": base + rng.normal(0, 0.5, days), "status": "ok"}))
    return pd.concat(rows, ignore_index=True)


def test_structure_rule_pools_sparse_signals_and_drops_an_unidentifiable_rhythm() -> None:
    weight = _weight_frame()
    data = signal_arrays(weight, "weight", scale=within_scale(weight, "weight"))
    assert circadian_coverage(data) < 0.01  # one time of day: the rhythm trades off against the baseline
    s = choose_structure(data)
    assert (s.circadian, s.ou, s.centred) == ("none", "population", True)
    assert s.baseline_scale > 10  # between-patient SD ~12 kg in within-patient SDs (~0.5 kg)
    truth = [OUParams(b, 4.0, -2.0, 0.3, 5.0, np.array([1.5, 4.0])) for b in (64.0, 72.0, 80.0)]
    dense = cohort_frame(truth, 60, seed=2)
    d = signal_arrays(dense, "heart_rate", scale=within_scale(dense, "heart_rate"))
    assert circadian_coverage(d) > 0.3
    assert choose_structure(d).ou == "patient" and choose_structure(d).circadian == "patient"
    with pytest.raises(InputError, match="circadian is one of"):
        Structure(circadian="daily")


def test_pooled_fit_reports_its_structure_and_gate() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fit = fit_signal(_weight_frame(), "weight", sampler=SamplerConfig(chains=2, warmup=60, draws=60, seed=1,
                                                                          init="prior"))
    assert fit.structure.ou == "population" and fit.structure.circadian == "none"
    checked = set(fit.diagnostics.table.index)
    assert {"total_sd", "ou_fraction", "sd_baseline"} <= checked and not any(q.startswith("cos") for q in checked)
    # the verdict is reported either way: a failed gate warns and names the structure
    assert fit.ok or any("FAILED its convergence gate" in str(w.message) and "population" in str(w.message)
                         for w in caught)
    p = fit.params(["P0", "NEW"], 20)
    assert np.all(p.cos == 0.0) and np.allclose(p.sd[0], p.sd[1], rtol=1e-12)  # no rhythm; one pooled OU SD
    assert abs(np.median(p.baseline[0]) - _weight_frame().query("patient == 'P0'")["value"].mean()) < 1.0


def test_twin_patient_alerts_are_the_detector_on_its_scores() -> None:
    from bayestwin.monitor.model import assumed_fit
    from bayestwin.monitor.simulate import simulate_cohort
    from bayestwin.monitor.twin import MonitorTwin

    frame = simulate_cohort(n_patients=3, days=5.0, seed=11).frame
    hist = frame[frame["time_h"] < 48.0]
    twin = MonitorTwin(signals=("spo2",), n_draws=4, n_paths=4, seed=5)
    twin.fit(hist, fits={"spo2": assumed_fit(hist, "spo2", n_draws=4)})
    twin.observe(frame[frame["time_h"] >= 48.0])
    policy = PatientPolicy(0.3, persist_h=0.5, kinds=("drift", "crossing"))
    got, want = twin.patient_alerts(policy), patient_alerts(twin.scores(), policy)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    assert set(got["signal"]) <= {"patient"}
