"""MonitorTwin(filter="particle"): the particle filter (Student-t noise, SpO2 censoring) wired into the twin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_signals_alerts import _chunks, _known_fit, stream  # noqa: F401  (fixture)

from bayestwin.exceptions import InputError
from bayestwin.monitor.alerts import AlertPolicy
from bayestwin.monitor.particle import Measurement
from bayestwin.monitor.scoring import Crossing, Drift
from bayestwin.monitor.twin import MonitorTwin


def _twin(**kw: object) -> MonitorTwin:
    return MonitorTwin(signals=("spo2",), crossings=[Crossing("spo2", 90.0, above=False, horizon_h=4.0)],
                       drifts=[Drift("spo2", -3.0, window_h=12.0, smooth_h=2.0)], n_draws=4, n_paths=8,
                       policy=AlertPolicy(0.5, 0.25, 24.0), **kw)  # type: ignore[arg-type]


def test_particle_twin_matches_kalman_in_the_gaussian_limit_and_resists_a_spike(stream: pd.DataFrame) -> None:  # noqa: F811
    fits = {"spo2": _known_fit(["P000", "P001", "P002"])}
    chunks = _chunks(stream)
    kalman = _twin().fit(chunks[0], fits=fits)
    gauss = _twin(filter="particle", n_particles=256, measurement={"spo2": Measurement(nu=1e6)}).fit(chunks[0],
                                                                                                      fits=fits)
    for c in chunks[1:2]:
        kalman.observe(c)
        gauss.observe(c)
    a, b = (t.scores().sort_values(["patient", "kind", "time_h"]).reset_index(drop=True) for t in (kalman, gauss))
    assert len(a) == len(b) > 60
    # filtered latent value: posterior SD ~0.5; 256 particles: MC SD ~0.03 per draw, 4 draws averaged
    assert np.max(np.abs(b["now"] - a["now"])) < 0.15
    # a -12 % artefact in one reading (~10 noise SDs): the Student-t twin barely moves, the Kalman twin follows it
    spike = chunks[2].copy()
    row = spike.index[spike["patient"] == "P000"][0]
    spike.loc[row, "value"] = float(spike.loc[row, "value"]) - 12.0
    t_spike = float(spike.loc[row, "time_h"])
    robust = _twin(filter="particle", n_particles=256).fit(chunks[0], fits=fits)
    for c in chunks[1:2]:
        robust.observe(c)
    moved = {}
    for name, twin in (("kalman", kalman), ("robust", robust)):
        twin.observe(spike)
        s = twin.scores()
        s = s[(s["patient"] == "P000") & (s["kind"] == "crossing")].sort_values("time_h")
        k = int(np.flatnonzero(s["time_h"].to_numpy() == t_spike)[0])
        moved[name] = float(s["now"].iloc[k] - s["now"].iloc[k - 1])  # the jump of the filtered value
    assert moved["kalman"] < -2.0 and abs(moved["robust"]) < abs(moved["kalman"]) / 4, moved


def test_unknown_filter_is_named() -> None:
    with pytest.raises(InputError, match="kalman"):
        MonitorTwin(filter="ukf")
