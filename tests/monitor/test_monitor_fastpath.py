"""The end-to-end online path of ``MonitorTwin`` (issue 8 speed-up) gives the same scores as before.

The reference (``_monitor_reference``: the scoring and history code as it was, per-patient eager JAX
calls) and the current code run the same simulated cohort, batch by batch, with the same seeds: the
crossing probabilities (Monte Carlo, same random-key layout) and the drift and surprise values agree to
rounding (1e-12; the only difference is that the element-wise kernels are now compiled as one call).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _monitor_reference import observe_reference, score_arrays_reference, with_history_reference

from bayestwin.diagnostics import ConvergenceReport
from bayestwin.monitor import twin as twin_module
from bayestwin.monitor.alerts import AlertPolicy
from bayestwin.monitor.model import SignalFit, signal_arrays
from bayestwin.monitor.simulate import simulate_cohort
from bayestwin.monitor.twin import MonitorTwin

SIGNALS = ("spo2",)


def _fit(frame: pd.DataFrame, signal: str, n: int = 16) -> SignalFit:
    """A SignalFit without sampling: standardised population near the data, per-patient baselines jittered."""
    data = signal_arrays(frame, signal)
    k, rng = len(data.patients), np.random.default_rng(3)
    d = {"mu_baseline": rng.normal(0, 0.05, n), "sd_baseline": np.full(n, 0.5), "mu_cos": np.full(n, 0.2),
         "mu_sin": np.zeros(n), "sd_circadian": np.full(n, 0.05), "mu_log_rate": np.full(n, np.log(0.3)),
         "sd_log_rate": np.full(n, 0.1), "mu_log_sd": np.full(n, np.log(0.7)), "sd_log_sd": np.full(n, 0.1),
         "noise": np.full((n, len(data.devices)), 0.4)}
    d |= {"baseline": rng.normal(0, 0.3, (n, k)), "cos": np.full((n, k), 0.2), "sin": np.zeros((n, k)),
          "rate": np.exp(rng.normal(np.log(0.3), 0.1, (n, k))), "sd": np.full((n, k), 0.7)}
    report = ConvergenceReport(ok=True, table=pd.DataFrame({"r_hat": [1.0]}), divergences=0, bfmi=())
    return SignalFit(signal, data.patients, data.devices, data.center, data.scale, None, report, d,  # type: ignore[arg-type]
                     data.offsets)


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, dict[str, SignalFit]]:
    frame = simulate_cohort(n_patients=3, days=5.0, seed=11).frame
    hist = frame[frame["time_h"] < 48.0]
    return frame, {s: _fit(hist, s) for s in SIGNALS}


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
    for col in ("time_h", "probability", "lower", "upper", "baseline", "now", "value", "tail_prob", "log_score",
                "window_start_h"):
        np.testing.assert_allclose(new_scores[col], old_scores[col], rtol=1e-12, atol=1e-14, err_msg=col)
    crossing = new_scores["kind"] == "crossing"
    assert new_scores.loc[crossing, "probability"].between(0.01, 0.99).any()  # the Monte Carlo is exercised
    assert new_scores.loc[~crossing, "probability"].notna().sum() > 50  # so is the drift
    assert len(new_alerts) > 0
    pd.testing.assert_frame_equal(new_alerts, old_alerts)
    pd.testing.assert_frame_equal(new_raised, old_raised)  # what each observe() call returned
