"""Scoring alert tables against known deteriorations: detection delay, sensitivity, false alarms per patient-day.

Every detector -- the twin, the fixed-threshold rule, anything that writes an alert table with ``patient``,
``signal`` and ``time_h`` -- goes through the same code, on the same streams and truth table.

Definitions (``by="patient"``, the default; ``by="signal"`` does the same per (patient, signal)):

* an **event** is a patient with an onset in ``truth`` (its earliest ``onset_h``);
* an event is **detected** when an alert falls in ``[onset - tolerance_h, onset + window_h]``; the **delay** is
  the first such alert's time minus the onset (negative if it came before the nominal onset);
* **sensitivity** is detected events / events, with a Wilson 95 % interval;
* a **false alarm** is an alert outside ``[onset - tolerance_h, onset + window_h]`` of a true event (every alert
  of a patient without an event). With ``after_window="ignore"``, alerts after ``onset + window_h`` are
  neither true nor false and the time after ``onset - tolerance_h`` leaves the exposure;
* **false alarms per patient-day** divide the false alarms by the monitored time at risk: per patient the span
  of its usable observations, minus the event window (``after_window="false_alarm"``) or everything from
  ``onset - tolerance_h`` on (``"ignore"``), in days.

Examples
--------
>>> truth = pd.DataFrame({"patient": ["a", "b"], "signal": "heart_rate", "onset_h": [50.0, np.nan],
...                       "kind": ["sepsis", "none"], "magnitude": [30.0, 0.0]})
>>> streams = pd.DataFrame({"patient": ["a", "a", "b", "b"], "time_h": [0.0, 96.0, 0.0, 96.0], "status": "ok"})
>>> alerts = pd.DataFrame({"patient": ["a", "a", "b"], "signal": "heart_rate", "time_h": [10.0, 53.0, 30.0]})
>>> ev = evaluate_alerts(alerts, truth, streams, tolerance_h=6.0, window_h=24.0)
>>> ev.sensitivity, ev.median_delay_h, ev.n_false, round(ev.false_alarms_per_patient_day, 4)
(1.0, 3.0, 2, 0.2963)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayestwin.exceptions import InputError

__all__ = ["AlertEvaluation", "evaluate_alerts", "matched_reduction", "operating_curve", "summary_table",
           "wilson_interval"]  # fmt: skip


def wilson_interval(successes: int, n: int, *, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default); ``(nan, nan)`` when ``n == 0``.

    Examples
    --------
    >>> tuple(round(x, 3) for x in wilson_interval(8, 10))
    (0.49, 0.943)
    """
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


@dataclass(frozen=True)
class AlertEvaluation:
    """The score of one alert table.

    Attributes
    ----------
    events : pandas.DataFrame
        One row per event: ``patient`` (and ``signal`` when ``by="signal"``), ``kind``, ``onset_h``,
        ``window_h``, ``detected``, ``first_alert_h``, ``delay_h``.
    alerts : pandas.DataFrame
        The input alerts with ``outcome``: ``"true"`` (in an event window), ``"false"`` or ``"ignored"``.
    sensitivity, sensitivity_ci, median_delay_h, mean_delay_h : float, tuple, float, float
        Detected / events (Wilson 95 % interval) and the delay of detected events (h).
    n_events, n_detected, n_false : int
    patient_days : float
        Monitored time at risk of a false alarm (days).
    false_alarms_per_patient_day : float
    chance_sensitivity : float
        The sensitivity that alerts at the same false-alarm rate would reach by chance (a Poisson process:
        mean over events of ``1 - exp(-rate x window length)``); a sensitivity near it is no detection.
    """

    events: pd.DataFrame
    alerts: pd.DataFrame
    n_events: int
    n_detected: int
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    median_delay_h: float
    mean_delay_h: float
    n_false: int
    patient_days: float
    false_alarms_per_patient_day: float
    chance_sensitivity: float

    def summary(self) -> dict[str, float]:
        """The headline numbers as a flat dict (one row of ``summary_table``)."""
        return {"n_events": self.n_events, "n_detected": self.n_detected, "sensitivity": self.sensitivity,
                "sensitivity_lo": self.sensitivity_ci[0], "sensitivity_hi": self.sensitivity_ci[1],
                "median_delay_h": self.median_delay_h, "mean_delay_h": self.mean_delay_h,
                "n_alerts": len(self.alerts), "n_false": self.n_false, "patient_days": self.patient_days,
                "false_alarms_per_patient_day": self.false_alarms_per_patient_day,
                "chance_sensitivity": self.chance_sensitivity}  # fmt: skip


def _events(truth: pd.DataFrame, by: str) -> pd.DataFrame:
    need = {"patient", "onset_h"} | ({"signal"} if by == "signal" else set())
    if not need <= set(truth.columns):
        raise InputError(f"truth table lacks column(s) {sorted(need - set(truth.columns))}; it needs patient, "
                         "signal, onset_h (NaN for no event) and kind (see monitor.simulate).")
    t = truth.assign(patient=truth["patient"].astype(str))
    if "kind" not in t.columns:
        t = t.assign(kind="")
    t = t[np.isfinite(t["onset_h"].to_numpy(dtype=float))]
    keys = ["patient", "signal"] if by == "signal" else ["patient"]
    ev = t.sort_values("onset_h", kind="stable").groupby(keys, as_index=False).agg(
        onset_h=("onset_h", "first"), kind=("kind", "first"))
    return ev


def _spans(streams: pd.DataFrame) -> pd.DataFrame:
    if not {"patient", "time_h"} <= set(streams.columns):
        raise InputError("streams must be a canonical stream frame with patient and time_h columns.")
    s = streams[streams["status"] == "ok"] if "status" in streams.columns else streams
    spans = s.assign(patient=s["patient"].astype(str)).groupby("patient")["time_h"].agg(["min", "max"])
    return spans.rename(columns={"min": "start_h", "max": "end_h"})


def evaluate_alerts(
    alerts: pd.DataFrame,
    truth: pd.DataFrame,
    streams: pd.DataFrame,
    *,
    tolerance_h: float = 6.0,
    window_h: float | Mapping[str, float] = 48.0,
    by: str = "patient",
    after_window: str = "false_alarm",
) -> AlertEvaluation:
    """Score an alert table against the truth: sensitivity, detection delay, false alarms per patient-day.

    Parameters
    ----------
    alerts : pandas.DataFrame
        At least ``patient``, ``signal``, ``time_h`` (one row per raised alert, after de-duplication).
    truth : pandas.DataFrame
        ``patient``, ``signal``, ``onset_h`` (NaN: no event), ``kind`` -- as ``simulate_cohort`` returns.
    streams : pandas.DataFrame
        The canonical stream frame the alerts were computed on (its usable rows give the monitored spans).
    tolerance_h, window_h : float, float or mapping
        The event window is ``[onset - tolerance_h, onset + window_h]``; ``window_h`` may map each event
        ``kind`` to its own window (e.g. ``{"sepsis": 24, "hypertensive": 48, "heart_failure": 72}``).
    by : {"patient", "signal"}
        Events per patient (any alert counts) or per (patient, signal) (alerts must name the signal).
    after_window : {"false_alarm", "ignore"}
        How alerts after an event's window count (see the module docstring).

    Examples
    --------
    >>> truth = pd.DataFrame({"patient": ["a"], "signal": "sbp", "onset_h": [10.0], "kind": "hypertensive"})
    >>> streams = pd.DataFrame({"patient": "a", "time_h": [0.0, 48.0], "status": "ok"})
    >>> evaluate_alerts(pd.DataFrame(columns=["patient", "signal", "time_h"]), truth, streams).sensitivity
    0.0
    """
    if by not in ("patient", "signal"):
        raise InputError(f"by={by!r}; use 'patient' or 'signal'.")
    if after_window not in ("false_alarm", "ignore"):
        raise InputError(f"after_window={after_window!r}; use 'false_alarm' or 'ignore'.")
    windows = dict(window_h) if isinstance(window_h, Mapping) else {}
    if tolerance_h < 0 or min([*windows.values(), 0.0 if windows else float(window_h)]) < 0:  # type: ignore[arg-type]
        raise InputError(f"tolerance_h ({tolerance_h}) and window_h ({window_h}) must be >= 0 (hours).")
    missing = {"patient", "signal", "time_h"} - set(alerts.columns)
    if missing:
        raise InputError(f"alert table lacks column(s) {sorted(missing)}; it needs patient, signal, time_h.")
    spans = _spans(streams)
    a = alerts.assign(patient=alerts["patient"].astype(str)).reset_index(drop=True)
    unknown = sorted(set(a["patient"]) - set(spans.index))
    if unknown:
        raise InputError(f"alerts name patient(s) {unknown[:10]} with no usable observation in the streams; "
                         "score alerts against the streams they were computed on.")
    events = _events(truth, by)
    if windows:
        unknown_kinds = sorted(set(events["kind"]) - set(windows))
        if unknown_kinds:
            raise InputError(f"window_h has no window for event kind(s) {unknown_kinds}; give one per kind.")
        events["window_h"] = events["kind"].map(windows).astype(float)
    else:
        events["window_h"] = float(window_h)  # type: ignore[arg-type]
    keys = ["patient", "signal"] if by == "signal" else ["patient"]
    joined = a.merge(events, on=keys, how="left")  # one event per key, so rows stay aligned with a
    t, onset = joined["time_h"].to_numpy(dtype=float), joined["onset_h"].to_numpy(dtype=float)
    win = joined["window_h"].to_numpy(dtype=float)
    in_window = (t >= onset - tolerance_h) & (t <= onset + win)
    after = t > onset + win
    outcome = np.where(in_window, "true", np.where(after & (after_window == "ignore"), "ignored", "false"))
    a["outcome"] = outcome
    hits = joined[in_window].groupby(keys)["time_h"].min().rename("first_alert_h")
    events = events.merge(hits.reset_index(), on=keys, how="left")
    events["detected"] = events["first_alert_h"].notna()
    events["delay_h"] = events["first_alert_h"] - events["onset_h"]
    n_events, n_det = len(events), int(events["detected"].sum())
    delays = events.loc[events["detected"], "delay_h"].to_numpy(dtype=float)
    # time at risk of a false alarm, per patient
    first = events.sort_values("onset_h", kind="stable").groupby("patient")[["onset_h", "window_h"]].first()
    risk = 0.0
    for patient, (start, end) in spans.iterrows():
        span = max(0.0, end - start)
        if patient in first.index:
            onset, win = first.at[patient, "onset_h"], first.at[patient, "window_h"]
            lo, hi = onset - tolerance_h, (onset + win if after_window == "false_alarm" else np.inf)
            span -= max(0.0, min(end, hi) - max(start, lo))
        risk += span
    days = risk / 24.0
    n_false = int((outcome == "false").sum())
    rate = n_false / days if days > 0 else float("nan")
    chance = 1.0 - np.exp(-rate * (tolerance_h + events["window_h"].to_numpy(dtype=float)) / 24.0)
    return AlertEvaluation(
        events=events[[*keys, "kind", "onset_h", "window_h", "detected", "first_alert_h", "delay_h"]], alerts=a,
        n_events=n_events, n_detected=n_det, sensitivity=n_det / n_events if n_events else float("nan"),
        sensitivity_ci=wilson_interval(n_det, n_events),
        median_delay_h=float(np.median(delays)) if delays.size else float("nan"),
        mean_delay_h=float(np.mean(delays)) if delays.size else float("nan"),
        n_false=n_false, patient_days=float(days),
        false_alarms_per_patient_day=float(rate),
        chance_sensitivity=float(chance.mean()) if n_events else float("nan"),
    )  # fmt: skip


def operating_curve(
    make_alerts: Callable[[float], pd.DataFrame],
    levels: Iterable[float],
    truth: pd.DataFrame,
    streams: pd.DataFrame,
    *,
    detector: str = "",
    **options: object,
) -> pd.DataFrame:
    """Sweep an alert level: one ``evaluate_alerts`` summary per level, as a tidy frame.

    ``make_alerts(level)`` returns the alert table at that level (e.g. ``lambda L: threshold_alerts(frame,
    L)`` or the twin's alerts at a probability level); ``options`` go to ``evaluate_alerts``.

    Examples
    --------
    >>> truth = pd.DataFrame({"patient": ["a", "b"], "signal": "sbp", "onset_h": [30.0, np.nan], "kind": "x"})
    >>> streams = pd.DataFrame({"patient": ["a", "a", "b", "b"], "time_h": [0.0, 96.0, 0.0, 96.0], "status": "ok"})
    >>> scores = pd.DataFrame({"patient": ["a", "a", "b"], "signal": "sbp", "time_h": [5.0, 33.0, 50.0],
    ...                        "p": [0.3, 0.9, 0.6]})
    >>> curve = operating_curve(lambda L: scores[scores["p"] >= L], [0.2, 0.5, 0.95], truth, streams)
    >>> curve[["level", "sensitivity", "n_false"]].values.tolist()
    [[0.2, 1.0, 2.0], [0.5, 1.0, 1.0], [0.95, 0.0, 0.0]]
    """
    rows = []
    for level in levels:
        ev = evaluate_alerts(make_alerts(level), truth, streams, **options)  # type: ignore[arg-type]
        rows.append({"detector": detector, "level": float(level), **ev.summary()})
    return pd.DataFrame(rows)


def summary_table(results: Mapping[str, AlertEvaluation]) -> pd.DataFrame:
    """One row per detector (the mapping's keys) with the headline numbers.

    Examples
    --------
    >>> truth = pd.DataFrame({"patient": ["a"], "signal": "sbp", "onset_h": [10.0], "kind": "x"})
    >>> streams = pd.DataFrame({"patient": "a", "time_h": [0.0, 48.0], "status": "ok"})
    >>> ev = evaluate_alerts(pd.DataFrame({"patient": ["a"], "signal": ["sbp"], "time_h": [12.0]}), truth, streams)
    >>> summary_table({"rule": ev})[["detector", "sensitivity", "median_delay_h"]].values.tolist()
    [['rule', 1.0, 2.0]]
    """
    return pd.DataFrame([{"detector": name, **ev.summary()} for name, ev in results.items()])


def matched_reduction(candidate: pd.DataFrame, baseline: pd.DataFrame, *, delay_slack_h: float = 0.0) -> pd.DataFrame:
    """For each baseline operating point, the candidate's fewest false alarms at equal or better sensitivity and delay.

    Both frames are ``operating_curve`` outputs. For every baseline level, candidate points with
    ``sensitivity >= `` the baseline's and ``median_delay_h <=`` the baseline's (+ ``delay_slack_h``) are
    eligible; the one with the lowest false-alarm rate is matched and ``reduction = 1 - fa_candidate /
    fa_baseline`` (NaN where no candidate point qualifies). The issue's target is a reduction >= 0.3.

    Examples
    --------
    >>> base = pd.DataFrame({"level": [5.0], "sensitivity": [0.8], "median_delay_h": [6.0],
    ...                      "false_alarms_per_patient_day": [1.0]})
    >>> cand = pd.DataFrame({"level": [0.9, 0.5], "sensitivity": [0.8, 0.9], "median_delay_h": [5.0, 4.0],
    ...                      "false_alarms_per_patient_day": [0.4, 0.6]})
    >>> matched_reduction(cand, base)[["baseline_level", "candidate_level", "reduction"]].values.tolist()
    [[5.0, 0.9, 0.6]]
    """
    rows = []
    fa = "false_alarms_per_patient_day"
    for _, b in baseline.iterrows():
        ok = candidate[(candidate["sensitivity"] >= b["sensitivity"])
                       & (candidate["median_delay_h"] <= b["median_delay_h"] + delay_slack_h)]
        best = ok.loc[ok[fa].idxmin()] if len(ok) else None
        rows.append({
            "baseline_level": b["level"], "baseline_sensitivity": b["sensitivity"],
            "baseline_delay_h": b["median_delay_h"], "baseline_fa": b[fa],
            "candidate_level": np.nan if best is None else best["level"],
            "candidate_sensitivity": np.nan if best is None else best["sensitivity"],
            "candidate_delay_h": np.nan if best is None else best["median_delay_h"],
            "candidate_fa": np.nan if best is None else best[fa],
            "reduction": np.nan if best is None or b[fa] == 0 else 1.0 - best[fa] / b[fa],
        })  # fmt: skip
    return pd.DataFrame(rows)
