"""Fixed-threshold baseline (NEWS2 bands, thresholds, hysteresis) and alert evaluation on known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayestwin.exceptions import InputError
from bayestwin.monitor.evaluate import (
    evaluate_alerts,
    matched_reduction,
    operating_curve,
    summary_table,
    wilson_interval,
)
from bayestwin.monitor.rules import deduplicate, news2_scores, news2_subscores, threshold_alerts
from bayestwin.monitor.simulate import SimulatedCohort, simulate_cohort

# NEWS2 chart (RCP 2017), each band edge: value -> score
NEWS2_EDGES = {
    "resp_rate": {8: 3, 9: 1, 11: 1, 12: 0, 20: 0, 21: 2, 24: 2, 25: 3},
    "spo2": {91: 3, 92: 2, 93: 2, 94: 1, 95: 1, 96: 0, 100: 0},
    "sbp": {90: 3, 91: 2, 100: 2, 101: 1, 110: 1, 111: 0, 219: 0, 220: 3},
    "heart_rate": {40: 3, 41: 1, 50: 1, 51: 0, 90: 0, 91: 1, 110: 1, 111: 2, 130: 2, 131: 3},
    "temperature": {35.0: 3, 35.1: 1, 36.0: 1, 36.1: 0, 38.0: 0, 38.1: 1, 39.0: 1, 39.1: 2},
}


@pytest.mark.parametrize("signal", sorted(NEWS2_EDGES))
def test_news2_band_edges_match_the_chart(signal: str) -> None:
    values, scores = zip(*NEWS2_EDGES[signal].items(), strict=True)
    got = news2_subscores({signal: np.array(values, dtype=float)})[signal].tolist()
    assert got == list(scores)


def test_news2_uses_the_latest_value_of_each_parameter_within_max_age() -> None:
    f = pd.DataFrame({"patient": ["p"] * 5 + ["q"],
                      "signal": ["heart_rate", "resp_rate", "spo2", "heart_rate", "spo2", "heart_rate"],
                      "time_h": [0.0, 1.0, 2.0, 3.0, 20.0, 2.0], "value": [115.0, 26.0, 93.0, 60.0, 90.0, 135.0],
                      "status": ["ok", "ok", "ok", "ok", "ok", "implausible"]})
    s = news2_scores(f, max_age_h=12.0)
    assert s[["patient", "time_h", "total", "red"]].values.tolist() == [
        ["p", 0.0, 2, False],    # HR 115 -> 2
        ["p", 1.0, 5, True],     # + RR 26 -> 3 (red)
        ["p", 2.0, 7, True],     # + SpO2 93 -> 2
        ["p", 3.0, 5, True],     # HR now 60 -> 0
        ["p", 20.0, 3, True],    # HR and RR older than 12 h drop out; SpO2 90 -> 3
    ]  # the implausible row of q is not evaluated


def test_deduplicate_window_and_hysteresis() -> None:
    c = pd.DataFrame({"patient": "p", "signal": "news2", "time_h": [0.0, 1.0, 2.0, 3.0, 7.0, 8.0, 20.0],
                      "active": [True, True, False, True, True, False, True]})
    # window 6 h: episode at 0 raises; episode 3-7 starts inside the window: none (7 is the same episode);
    # episode at 20 raises. Without episodes: 0, then 7 (>= 6 h after 0), then 20.
    assert deduplicate(c, window_h=6.0)["time_h"].tolist() == [0.0, 20.0]
    assert deduplicate(c, window_h=6.0, rearm=False)["time_h"].tolist() == [0.0, 7.0, 20.0]
    assert deduplicate(c, window_h=0.0)["time_h"].tolist() == [0.0, 3.0, 20.0]
    assert deduplicate(c, window_h=0.0, rearm=False)["time_h"].tolist() == [0.0, 1.0, 3.0, 7.0, 20.0]
    two = pd.concat([c, c.assign(signal="spo2")])
    assert len(deduplicate(two, window_h=6.0)) == 4  # each (patient, signal) on its own
    with pytest.raises(InputError, match="window_h=-1"):
        deduplicate(c, window_h=-1.0)


def test_threshold_alerts_single_parameters_and_weight_gain() -> None:
    weights = [80.0, 80.5, 81.2, 82.1, 82.0, 79.0, 79.5]
    f = pd.DataFrame({
        "patient": "p", "signal": ["weight"] * 7 + ["sbp", "sbp", "spo2"],
        "time_h": [0.0, 24.0, 48.0, 72.0, 96.0, 120.0, 200.0, 10.0, 11.0, 12.0],
        "value": [*weights, 185.0, 190.0, 89.0], "status": "ok"})
    a = threshold_alerts(f, level=99, red_score=False)
    assert a[["signal", "time_h", "rule"]].values.tolist() == [
        ["sbp", 10.0, "sbp > 180"], ["spo2", 12.0, "spo2 < 90"],
        ["weight", 72.0, "weight gain >= 2 kg in 72 h"]]  # 82.1 - 80.0; at 96 h: 82.0 - 80.5 < 2
    assert a.loc[a["signal"] == "weight", "value"].round(6).tolist() == [2.1]
    none = threshold_alerts(f, level=99, red_score=False, thresholds=(), weight_gain_kg=None)
    assert none.empty and list(none.columns) == ["patient", "signal", "time_h", "rule", "value", "level",
                                                 "explanation"]
    with pytest.raises(InputError, match="must be \\(signal, '<' or '>', limit\\)"):
        threshold_alerts(f, thresholds=(("sbp", ">=", 180.0),))


@pytest.fixture(scope="module")
def small_cohort() -> SimulatedCohort:
    return simulate_cohort(n_patients=8, days=6.0, seed=5)


def test_rule_alerts_on_a_simulated_cohort_respect_the_window(small_cohort: SimulatedCohort) -> None:
    a = threshold_alerts(small_cohort.frame, level=5, window_h=6.0)
    assert len(a) > 0 and set(a["signal"]) <= {"news2", "spo2", "sbp", "heart_rate", "resp_rate", "weight"}
    assert len(threshold_alerts(small_cohort.frame, level=5)) <= len(a)  # the default window is 12 h
    gaps = a.sort_values("time_h").groupby(["patient", "signal"])["time_h"].diff().dropna()
    assert (gaps >= 6.0).all()
    assert (a["explanation"] != "").all()


# ---- evaluation on hand-made alert tables ---------------------------------------------------------------------

TRUTH = pd.DataFrame({
    "patient": ["a", "a", "b", "c", "d"], "signal": ["heart_rate", "spo2", "sbp", "sbp", "weight"],
    "onset_h": [50.0, 52.0, 100.0, np.nan, 30.0], "kind": ["sepsis", "sepsis", "hypertensive", "none", "heart_failure"],
    "magnitude": [30.0, -6.0, 45.0, 0.0, 3.0]})  # fmt: skip
STREAMS = pd.DataFrame({"patient": list("aabbccdd"), "time_h": [0.0, 120.0, 0.0, 120.0, 0.0, 96.0, 0.0, 120.0],
                        "status": "ok"})
ALERTS = pd.DataFrame({
    "patient": ["a", "a", "a", "b", "c", "c", "d"],
    "signal": ["heart_rate", "spo2", "heart_rate", "sbp", "sbp", "sbp", "weight"],
    "time_h": [10.0, 47.0, 60.0, 170.0 - 100.0, 5.0, 50.0, 110.0]})  # fmt: skip


def test_evaluate_alerts_known_answer() -> None:
    ev = evaluate_alerts(ALERTS, TRUTH, STREAMS, tolerance_h=6.0, window_h=24.0)
    # events: a (onset 50: first in-window alert 47 -> delay -3), b (onset 100: alert at 70 is early, missed),
    # d (onset 30: alert at 110 is after 54, missed)
    assert ev.events[["patient", "detected", "delay_h"]].fillna(-99).values.tolist() == [
        ["a", True, -3.0], ["b", False, -99], ["d", False, -99]]
    assert (ev.n_events, ev.n_detected, ev.sensitivity, ev.median_delay_h) == (3, 1, 1 / 3, -3.0)
    assert ev.alerts["outcome"].tolist() == ["false", "true", "true", "false", "false", "false", "false"]
    # time at risk: a 120 - 30 (44..74), b 120 - 30 (94..120 clipped: 26) -> 94, c 96, d 120 - 30 (24..54)
    risk_h = (120 - 30) + (120 - 26) + 96 + (120 - 30)
    assert ev.patient_days == pytest.approx(risk_h / 24.0)
    assert ev.n_false == 5 and ev.false_alarms_per_patient_day == pytest.approx(5 / (risk_h / 24.0))
    assert ev.sensitivity_ci == pytest.approx(wilson_interval(1, 3))
    rate_per_h = 5 / risk_h
    assert ev.chance_sensitivity == pytest.approx(1.0 - np.exp(-rate_per_h * 30.0))  # every window 6 + 24 h


def test_evaluate_alerts_after_window_ignore_by_signal_and_kind_windows() -> None:
    ign = evaluate_alerts(ALERTS, TRUTH, STREAMS, tolerance_h=6.0, window_h=24.0, after_window="ignore")
    assert ign.alerts["outcome"].tolist() == ["false", "true", "true", "false", "false", "false", "ignored"]
    assert ign.patient_days == pytest.approx((44 + 94 + 96 + 24) / 24.0) and ign.n_false == 4
    per_signal = evaluate_alerts(ALERTS, TRUTH, STREAMS, tolerance_h=6.0, window_h=24.0, by="signal")
    assert per_signal.events[["patient", "signal", "detected"]].values.tolist() == [
        ["a", "heart_rate", True], ["a", "spo2", True], ["b", "sbp", False], ["d", "weight", False]]
    assert per_signal.events["delay_h"].tolist()[:2] == [10.0, -5.0]
    kinds = evaluate_alerts(ALERTS, TRUTH, STREAMS, tolerance_h=6.0,
                            window_h={"sepsis": 24.0, "hypertensive": 48.0, "heart_failure": 80.0})
    assert kinds.events["detected"].tolist() == [True, False, True]  # d: 110 <= 30 + 80
    with pytest.raises(InputError, match=r"no window for event kind\(s\) \['heart_failure'\]"):
        evaluate_alerts(ALERTS, TRUTH, STREAMS, window_h={"sepsis": 24.0, "hypertensive": 48.0})


def test_evaluate_alerts_refuses_mismatched_inputs() -> None:
    with pytest.raises(InputError, match=r"patient\(s\) \['zz'\] with no usable observation"):
        evaluate_alerts(pd.DataFrame({"patient": ["zz"], "signal": ["sbp"], "time_h": [1.0]}), TRUTH, STREAMS)
    with pytest.raises(InputError, match=r"lacks column\(s\) \['signal'\]"):
        evaluate_alerts(ALERTS.drop(columns="signal"), TRUTH, STREAMS)
    with pytest.raises(InputError, match="by='x'"):
        evaluate_alerts(ALERTS, TRUTH, STREAMS, by="x")


def test_operating_curve_summary_and_matched_reduction() -> None:
    scored = ALERTS.assign(p=[0.2, 0.9, 0.95, 0.5, 0.3, 0.6, 0.4])
    curve = operating_curve(lambda level: scored[scored["p"] >= level], [0.0, 0.55, 0.92, 1.0], TRUTH, STREAMS,
                            detector="twin", tolerance_h=6.0, window_h=24.0)
    assert curve["detector"].eq("twin").all()
    assert curve[["level", "n_alerts", "n_detected", "n_false"]].values.tolist() == [
        [0.0, 7, 1, 5], [0.55, 3, 1, 1], [0.92, 1, 1, 0], [1.0, 0, 0, 0]]
    assert curve.loc[2, "median_delay_h"] == 10.0  # only the 60 h alert is left for a
    base = operating_curve(lambda level: ALERTS, [5.0], TRUTH, STREAMS, detector="rule", tolerance_h=6.0,
                           window_h=24.0)
    m = matched_reduction(curve, base, delay_slack_h=20.0)
    # eligible: sensitivity >= 1/3 and delay <= -3 + 20; the fewest false alarms: level 0.92 (none)
    assert m[["candidate_level", "reduction"]].values.tolist() == [[0.92, 1.0]]
    # without slack only level 0.55 (a detected at 47 h, delay -3, 1 false alarm) is as early as the rule
    m0 = matched_reduction(curve, base)
    assert m0[["candidate_level", "reduction"]].values.tolist() == [[0.55, pytest.approx(0.8)]]
    assert np.isnan(matched_reduction(curve[curve["level"] > 0.6], base)["reduction"].iloc[0])
    ev = evaluate_alerts(ALERTS, TRUTH, STREAMS, tolerance_h=6.0, window_h=24.0)
    table = summary_table({"rule": ev})
    assert table.loc[0, "detector"] == "rule" and table.loc[0, "n_false"] == 5


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)  # 3.84 / 13.84
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert all(np.isnan(wilson_interval(0, 0)))
