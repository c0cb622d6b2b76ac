"""``advance_alerts`` (incremental hysteresis, used by ``MonitorTwin.observe``) equals ``alerts_from_scores``."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bayestwin.monitor.alerts import AlertPolicy, advance_alerts, alerts_from_scores


def _scores(rng: np.random.Generator, n: int = 600) -> pd.DataFrame:
    p = rng.uniform(0.0, 1.0, n) ** 2
    p[rng.uniform(size=n) < 0.05] = np.nan  # no signal yet
    return pd.DataFrame({"patient": rng.choice(["A", "B", "C"], n), "signal": rng.choice(["spo2", "sbp"], n),
                         "kind": rng.choice(["crossing", "drift"], n), "time_h": np.sort(rng.uniform(0, 200, n)),
                         "probability": p})


@pytest.mark.parametrize("policy", [AlertPolicy(0.5, 0.2, 6.0), {"crossing": AlertPolicy(0.7, 0.3, 0.0)}])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batches_give_the_alerts_of_the_whole_table(policy, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = _scores(rng)
    whole = alerts_from_scores(scores, policy)
    cuts = np.r_[0, np.sort(rng.choice(np.arange(1, len(scores)), 7, replace=False)), len(scores)]
    state: dict = {}
    parts = [advance_alerts(scores.iloc[a:b], policy, state) for a, b in itertools.pairwise(cuts)]
    joined = pd.concat(parts, ignore_index=True).sort_values(["patient", "signal", "time_h"], kind="stable")
    assert len(whole) > 10
    pd.testing.assert_frame_equal(joined.reset_index(drop=True), whole)


def test_a_skipped_series_keeps_its_state() -> None:
    """An active series whose new values stay above the clear level is skipped and stays active."""
    s = pd.DataFrame({"patient": "A", "signal": "spo2", "kind": "crossing", "time_h": [0.0, 1.0, 2.0, 3.0],
                      "probability": [0.9, 0.6, 0.1, 0.95]})
    state: dict = {}
    pol = AlertPolicy(0.8, 0.4, 0.0)
    assert advance_alerts(s.iloc[:1], pol, state)["time_h"].tolist() == [0.0]
    assert advance_alerts(s.iloc[1:2], pol, state).empty and state[("A", "spo2", "crossing")][0]
    assert advance_alerts(s.iloc[2:], pol, state)["time_h"].tolist() == [3.0]
