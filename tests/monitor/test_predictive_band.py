"""The score table's predictive band of each reading: exact mixture quantiles, and calibrated under the true model."""

from __future__ import annotations

import numpy as np
import pytest
from ou_synth import simulate_patient
from scipy import optimize, stats

from bayestwin.monitor.kalman import OUParams, filter_cohort, initial_state
from bayestwin.monitor.scoring import score_arrays
from bayestwin.monitor.signals import mixture_quantile


def test_mixture_quantile_inverts_the_mixture_cdf() -> None:
    rng = np.random.default_rng(3)
    mean, var = rng.normal(70.0, 5.0, (7, 16)), rng.uniform(0.5, 30.0, (7, 16))
    for q in (0.05, 0.5, 0.95):
        got = np.asarray(mixture_quantile(q, mean, var))
        for i in range(7):
            def cdf(x: float, i: int = i, q: float = q) -> float:
                return float(np.mean(stats.norm.cdf(x, mean[i], np.sqrt(var[i])))) - q

            assert got[i] == pytest.approx(optimize.brentq(cdf, -1e3, 1e3, xtol=1e-12), abs=1e-9)


def test_band_covers_ninety_percent_of_readings_under_the_true_model() -> None:
    # 40 patients x 60 irregular readings from the model itself; the filter run with the true parameters
    # (one "draw"), so each reading's one-step predictive is exact and its 90 % interval must cover 90 %.
    rng = np.random.default_rng(11)
    n_pat, n_obs = 40, 60
    p1 = OUParams(baseline=75.0, cos=3.0, sin=-2.0, rate=0.4, sd=6.0, noise=np.array([2.5]))
    t = np.cumsum(rng.exponential(1.0, (n_pat, n_obs)), axis=1)
    dev = np.zeros((n_pat, n_obs), int)
    y = np.stack([simulate_patient(p1, t[i], dev[i], rng) for i in range(n_pat)])
    p = OUParams(*(np.full((n_pat, 1), v) for v in p1[:5]), noise=np.full((n_pat, 1, 1), 2.5))
    mask = np.ones((n_pat, n_obs), bool)
    _, out = filter_cohort(p, t, y, dev, mask, initial_state(p))
    table = score_arrays("heart_rate", [f"P{i}" for i in range(n_pat)], p, out, t, y, mask, [0.0] * n_pat,
                         surprise_rows=True, bands=True)
    plain = score_arrays("heart_rate", [f"P{i}" for i in range(n_pat)], p, out, t, y, mask, [0.0] * n_pat,
                         surprise_rows=True)
    assert plain[["pred_lower", "pred_upper"]].isna().all().all()  # off by default (cost)
    np.testing.assert_array_equal(plain["pred_mean"], table["pred_mean"])
    inside = (table["value"] >= table["pred_lower"]) & (table["value"] <= table["pred_upper"])
    n = len(table)
    assert n == n_pat * n_obs
    # binomial SE of the coverage at 0.9 with 2,400 readings: 0.0061; 4 SE allowed (the readings of a
    # patient are conditionally independent given the past, so the count is a martingale sum)
    assert abs(inside.mean() - 0.9) < 4 * np.sqrt(0.09 / n)
    assert (table["pred_lower"] < table["pred_mean"]).all() and (table["pred_mean"] < table["pred_upper"]).all()


def test_two_crossings_of_one_signal_are_two_alert_series() -> None:
    # glucose < 70 and > 250: interleaved rows at the same times must not share hysteresis or de-duplication
    import pandas as pd

    from bayestwin.monitor.alerts import AlertPolicy, advance_alerts, alerts_from_scores
    from bayestwin.monitor.detector import combined_probability

    t = [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    s = pd.DataFrame({"patient": "A", "signal": "glucose", "kind": "crossing", "time_h": t,
                      "threshold": [70.0, 250.0] * 3, "probability": [0.9, 0.1, 0.1, 0.9, 0.9, 0.1]})
    a = alerts_from_scores(s, AlertPolicy(0.8, 0.4, dedup_h=0.0))
    assert list(zip(a["threshold"], a["time_h"], strict=True)) == [(70.0, 0.0), (250.0, 1.0), (70.0, 2.0)]
    state: dict = {}
    b = pd.concat([advance_alerts(s.iloc[:2], AlertPolicy(0.8, 0.4, 0.0), state),
                   advance_alerts(s.iloc[2:], AlertPolicy(0.8, 0.4, 0.0), state)], ignore_index=True)
    pd.testing.assert_frame_equal(b[a.columns], a)
    assert set(combined_probability(s).columns) == {"combined", "glucose crossing 70", "glucose crossing 250"}
