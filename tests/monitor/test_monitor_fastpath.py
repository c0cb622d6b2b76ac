"""The end-to-end online path of ``MonitorTwin`` (issue 8 speed-up) gives the same scores as before.

The reference (``_monitor_reference``: the scoring and history code as it was, per-patient eager JAX
calls, one random key per observation for the crossing Monte Carlo) and the current code run the same
simulated cohort, batch by batch, with the same seeds: the drift and surprise values, baselines and
windows agree to rounding (1e-12; the element-wise kernels are now compiled as one call). The crossing
probabilities now share one table of normals per call (``scoring.crossing_grid``), so they agree with the
reference within Monte Carlo error, checked here per row and, with many paths, per (observation, draw).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from _monitor_reference import observe_reference, score_arrays_reference, with_history_reference

from bayestwin.monitor import twin as twin_module
from bayestwin.monitor.alerts import AlertPolicy
from bayestwin.monitor.kalman import FilterOutput, FilterState, OUParams
from bayestwin.monitor.model import SignalFit, assumed_fit
from bayestwin.monitor.scoring import crossing_grid
from bayestwin.monitor.signals import crossing_probability_draws
from bayestwin.monitor.simulate import simulate_cohort
from bayestwin.monitor.twin import MonitorTwin

SIGNALS = ("spo2",)


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, dict[str, SignalFit]]:
    frame = simulate_cohort(n_patients=3, days=5.0, seed=11).frame
    hist = frame[frame["time_h"] < 48.0]
    return frame, {s: assumed_fit(hist, s) for s in SIGNALS}


def _run(frame: pd.DataFrame, fits: dict[str, SignalFit]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    twin = MonitorTwin(signals=SIGNALS, n_draws=8, n_paths=8, seed=5, policy=AlertPolicy(0.3, 0.15, 6.0))
    twin.fit(frame[frame["time_h"] < 48.0], fits=fits)
    rest = frame[frame["time_h"] >= 48.0]
    raised = [twin.observe(rest[(rest["time_h"] >= h) & (rest["time_h"] < h + 24)]) for h in range(48, 96, 24)]
    return twin.scores(), twin.alerts(), pd.concat(raised, ignore_index=True)


def test_online_scores_equal_the_previous_implementation(cohort, monkeypatch: pytest.MonkeyPatch) -> None:
    frame, fits = cohort
    new_scores, new_alerts, new_raised = _run(frame, fits)
    monkeypatch.setattr(twin_module, "score_arrays", score_arrays_reference)
    monkeypatch.setattr(twin_module.MonitorTwin, "_with_history", with_history_reference)
    monkeypatch.setattr(twin_module.MonitorTwin, "observe", observe_reference)
    old_scores, old_alerts, old_raised = _run(frame, fits)
    assert len(new_scores) == len(old_scores) > 500
    assert set(new_scores["kind"]) == {"crossing", "drift"}
    pd.testing.assert_frame_equal(new_scores[["patient", "signal", "kind", "horizon_h"]],
                                  old_scores[["patient", "signal", "kind", "horizon_h"]])
    for col in ("time_h", "baseline", "now", "value", "tail_prob", "log_score", "window_start_h"):
        np.testing.assert_allclose(new_scores[col], old_scores[col], rtol=1e-12, atol=1e-14, err_msg=col)
    crossing = (new_scores["kind"] == "crossing").to_numpy()
    for col in ("probability", "lower", "upper"):  # drift: exact
        np.testing.assert_allclose(new_scores.loc[~crossing, col], old_scores.loc[~crossing, col], rtol=1e-12,
                                   atol=1e-14, err_msg=col)
    new_p, old_p = new_scores.loc[crossing, "probability"], old_scores.loc[crossing, "probability"].to_numpy()
    assert new_p.between(0.01, 0.99).sum() > 10  # the Monte Carlo is exercised
    # each row: a mean over 8 draws x 8 paths in both; binomial SE of the difference (upper bound: the
    # draws' probabilities differ, which lowers the variance of their mean)
    se = np.sqrt((new_p * (1 - new_p) + old_p * (1 - old_p)) / 64 + 1e-4)
    assert np.mean(np.abs(new_p - old_p) > 4 * se) < 0.01
    assert abs(float(np.mean(new_p - old_p))) < 0.02
    assert new_scores.loc[~crossing, "probability"].notna().sum() > 50  # so is the drift
    drift_only = [(a[a["kind"] == "drift"].reset_index(drop=True)) for a in (new_alerts, old_alerts, new_raised,
                                                                           old_raised)]
    assert len(drift_only[0]) > 0
    # the reference predates the predictive-band columns (pred_mean, pred_lower, pred_upper): compare its columns
    pd.testing.assert_frame_equal(drift_only[0][drift_only[1].columns], drift_only[1])
    pd.testing.assert_frame_equal(drift_only[2][drift_only[3].columns], drift_only[3])  # what observe() returned


def test_crossing_grid_agrees_with_the_per_observation_monte_carlo() -> None:
    """Shared normals (``crossing_grid``) vs fresh normals per observation (``crossing_probability_draws``):
    every (observation, draw) within 4.5 binomial SE with 4,000 paths each (48 comparisons)."""
    rng = np.random.default_rng(7)
    n_obs, draws, paths = 6, 8, 4000
    p = OUParams(*(rng.normal(v, s, (1, draws)) for v, s in ((118.0, 3.0), (3.0, 1.0), (-2.0, 1.0))),
                 rate=np.exp(rng.normal(np.log(0.3), 0.6, (1, draws))),
                 sd=np.exp(rng.normal(np.log(5), 0.3, (1, draws))),
                 noise=np.ones((1, draws, 1)))
    fm, fv = rng.normal(4.0, 4.0, (1, draws, n_obs)), np.exp(rng.normal(0.0, 1.0, (1, draws, n_obs)))
    out = FilterOutput(fm, fv, fm, fv, np.zeros_like(fm))
    t = np.sort(rng.uniform(0.0, 24.0, (1, n_obs)), axis=1)
    new = np.asarray(crossing_grid(p, out, t, jax.random.PRNGKey(3), threshold=128.0, above=True, horizon=6.0,
                                   step=0.5, n_paths=paths))[0]
    p0 = OUParams(*(np.asarray(a)[0] for a in p))
    old = np.stack([np.asarray(crossing_probability_draws(
        p0, FilterState(fm[0, :, k], fv[0, :, k], np.full(draws, t[0, k])), jax.random.PRNGKey(100 + k), t0=t[0, k],
        threshold=128.0, above=True, horizon=6.0, n_paths=paths)) for k in range(n_obs)])
    assert 0.05 < new.mean() < 0.95
    se = np.sqrt((new * (1 - new) + old * (1 - old)) / paths) + 1e-9
    assert np.all(np.abs(new - old) < 4.5 * se), np.abs(new - old).max()
