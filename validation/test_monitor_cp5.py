"""MON5's evaluation plumbing (``make validate``; a few seconds): the failed-fit rule and pooling.

A signal whose fit fails its gate after the refit leaves BOTH detectors (``exclude_failed_signals``): its rows
leave the twin's scores and the frame the rule alarms on, while the events and monitored spans stay.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monitor_cp_eval import _by_kind, exclude_failed_signals, pooled, rule_curves
from monitor_eval import CP5_DECLARED, FIT_H

from bayestwin.monitor.simulate import simulate_cohort


def _cohort(failed: tuple[str, ...]) -> dict:  # type: ignore[type-arg]
    c = simulate_cohort(n_patients=6, days=6.0, seed=3)
    f = c.frame
    rows = f[(f["status"] == "ok") & (f["time_h"] >= FIT_H)].drop_duplicates(["patient", "signal", "time_h"])
    scores = rows.assign(kind="drift", tail_prob=0.5, pred_mean=rows["value"])[
        ["patient", "signal", "kind", "time_h", "tail_prob", "value", "pred_mean"]]
    return {"frame": f, "truth": c.truth, "scores": {1.0: scores}, "failed": failed, "valid": not failed}


def test_failed_signal_leaves_both_detectors_and_nothing_else() -> None:
    ev = _cohort(("heart_rate",))
    out = exclude_failed_signals(ev)
    assert "heart_rate" not in set(out["scores"][1.0]["signal"])
    assert "heart_rate" not in set(out["rule_frame"]["signal"])
    assert out["frame"] is ev["frame"] and out["truth"] is ev["truth"]
    assert set(ev["scores"][1.0]["signal"]) - set(out["scores"][1.0]["signal"]) == {"heart_rate"}
    assert exclude_failed_signals(_cohort(())).get("rule_frame") is None  # no failed fit: unchanged
    # the rule computed without heart rate differs from the full rule (fewer alerts at some level)
    full, _ = rule_curves(ev["frame"], ev["truth"])
    less, _ = rule_curves(out["frame"], out["truth"], out["rule_frame"])
    assert (less["n_alerts"] <= full["n_alerts"]).all() and (less["n_alerts"] < full["n_alerts"]).any()


def test_pooling_prefixes_patients_and_carries_the_rule_frame() -> None:
    a, b = exclude_failed_signals(_cohort(("heart_rate",))), _cohort(())
    pool = pooled({1: a, 2: b})
    assert pool["rule_frame"]["patient"].str.startswith(("1:", "2:")).all()
    hr = pool["rule_frame"][pool["rule_frame"]["signal"] == "heart_rate"]
    assert hr["patient"].str.startswith("2:").all() and len(hr) > 0
    kinds = _by_kind({"frame": b["frame"], "truth": b["truth"], "scores": b["scores"][1.0]}, CP5_DECLARED)
    assert {"changepoint", "rule", "rule per patient"} <= set(kinds.columns)
