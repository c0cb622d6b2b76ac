"""``bayestwin monitor replay`` end to end on a small simulated stream, driven by typer's CliRunner.

One signal (daily weight of 3 simulated patients over 5 days: 16 readings), a tiny sampler (1 chain x 60 + 60)
whose fit cannot pass the gate (R-hat needs 2 chains): the replay must stop with exit status 3 unless
``--allow-failed-convergence``, and then every alert says its model failed. An extra crossing alert
(``--threshold weight>55``: every simulated weight lies above it) makes sure alerts are raised, written and plotted.
The CLI's persistent JAX cache is switched off (BAYESTWIN_JAX_CACHE=off) so the suite's JAX settings are untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bayestwin.cli import app
from bayestwin.cli.monitor import parse_threshold
from bayestwin.exceptions import InputError
from bayestwin.monitor.simulate import simulate_cohort

SAMPLER = ["--chains", "1", "--warmup", "60", "--draws", "60", "--no-refit", "--seed", "1"]
ENV = {"BAYESTWIN_JAX_CACHE": "off"}


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = simulate_cohort(n_patients=3, days=5.0, seed=1).frame
    weight = frame[frame["signal"] == "weight"]
    raw = weight[["patient", "timestamp", "signal", "value", "unit", "device"]].assign(received=weight["timestamp"])
    path = tmp_path_factory.mktemp("monitor-cli") / "weight.csv"
    raw.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def replayed(stream: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    folder = tmp_path_factory.mktemp("monitor-out")
    alerts, plots = folder / "alerts.jsonl", folder / "plots"
    result = CliRunner().invoke(app, ["monitor", "replay", str(stream), *SAMPLER, "--threshold", "weight>55",
                                      "--allow-failed-convergence", "--alerts-out", str(alerts), "--plot-dir",
                                      str(plots), "--json"], env=ENV, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), alerts, plots


def test_every_row_is_accounted_for(replayed, stream: Path) -> None:
    doc, _, _ = replayed
    n = len(pd.read_csv(stream))
    assert doc["rows"] == n
    assert doc["fit_rows"] + doc["replayed_rows"] + sum(doc["flagged"].values()) == n
    assert doc["replayed_rows"] > 0 and doc["fit_rows"] > 0


def test_failed_fit_is_reported_on_every_alert(replayed) -> None:
    doc, alerts, plots = replayed
    assert doc["fits_valid"] is False and [f["ok"] for f in doc["fits"]] == [False]
    records = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert len(records) == len(doc["alerts"]) > 0
    assert {r["kind"] for r in records} >= {"crossing"}
    assert all(r["fit_ok"] is False and "FAILED its convergence gate" in r["explanation"] for r in records)
    assert sorted(p.name for p in plots.iterdir()) == ["monitor_P001.png", "monitor_P002.png", "monitor_P003.png"]


def test_failed_fit_stops_the_replay_with_exit_status_3(stream: Path) -> None:
    result = CliRunner().invoke(app, ["monitor", "replay", str(stream), *SAMPLER], env=ENV)
    assert result.exit_code == 3
    assert "FAILED their convergence gate" in result.output and "--allow-failed-convergence" in result.output


def test_bad_input_names_what_to_fix(stream: Path, tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["monitor", "replay", str(tmp_path / "nope.csv")], env=ENV)
    assert missing.exit_code == 2 and "no such file" in missing.output
    wrong = CliRunner().invoke(app, ["monitor", "replay", str(stream), "--signal", "spo2"], env=ENV)
    assert wrong.exit_code == 2 and "usable signals: ['weight']" in wrong.output
    with pytest.raises(InputError, match="SIGNAL<VALUE"):
        parse_threshold("glucose =< 70")
    assert parse_threshold("glucose<70").above is False
