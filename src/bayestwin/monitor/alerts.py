"""Alerts from probability series: hysteresis, de-duplication, JSON records, the alert table, the audit trail.

An alert is raised when a probability reaches ``raise_level`` while its episode is not active; the
episode stays active (no new alert) until the probability falls below ``clear_level`` (hysteresis).
After an alert, no new alert of the same (patient, signal, kind) is raised for ``dedup_h`` hours even if
the episode cleared and rose again in between (de-duplication).

Each alert is a JSON-serialisable record (schema ``bayestwin.monitor.alert/1``) with the probability and
its interval over posterior draws, baseline versus now, the horizon, the data window and a one-line
explanation. ``alert_table`` makes the table that ``bayestwin.monitor.evaluate`` consumes (one row per
alert: ``patient``, ``signal``, ``time_h``, ...). ``record_alerts`` writes records to the audit trail of
any store with the ``AlertSink`` methods (``bayestwin.store.TwinStore`` has them).

Examples
--------
>>> raised_indices([0.0, 1.0, 2.0, 3.0, 4.0], [0.1, 0.6, 0.4, 0.7, 0.2], raise_level=0.5, clear_level=0.3)
[1]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from bayestwin.exceptions import InputError

__all__ = ["ALERT_SCHEMA", "Alert", "AlertPolicy", "AlertSink", "advance_alerts", "alert_table", "alerts_from_scores",
           "raised_indices", "record_alerts", "series_label"]

ALERT_SCHEMA = "bayestwin.monitor.alert/1"
ALERT_COLUMNS = ["patient", "signal", "kind", "time_h", "probability", "lower", "upper", "level", "baseline", "now",
                 "unit", "horizon_h", "window_start_h", "window_end_h", "fit_ok", "explanation"]


@dataclass(frozen=True)
class AlertPolicy:
    """Raise at `raise_level`, clear below `clear_level` (<= raise), at most one alert per `dedup_h` hours.

    >>> AlertPolicy(0.5).clear_level
    0.25
    """

    raise_level: float
    clear_level: float | None = None
    dedup_h: float = 12.0

    def __post_init__(self) -> None:
        if self.clear_level is None:
            object.__setattr__(self, "clear_level", self.raise_level / 2)
        if not 0.0 <= self.clear_level <= self.raise_level:  # type: ignore[operator]
            raise InputError(f"AlertPolicy: clear_level {self.clear_level} must lie in [0, raise_level "
                             f"{self.raise_level}] (hysteresis clears below the level that raises)")
        if self.dedup_h < 0:
            raise InputError(f"AlertPolicy: dedup_h {self.dedup_h} must be >= 0 hours")


def raised_indices(time_h: Sequence[float], probability: Sequence[float], *, raise_level: float,
                   clear_level: float | None = None, dedup_h: float = 0.0) -> list[int]:
    """Positions in one (patient, signal, kind) series, ordered by time, at which an alert is raised.

    NaN probabilities (no signal yet) neither raise nor clear. See the module example; with
    de-duplication a second episode within `dedup_h` hours of the last alert raises nothing:

    >>> raised_indices([0, 1, 2, 3], [0.6, 0.1, 0.6, 0.1], raise_level=0.5, dedup_h=2.5)
    [0]
    >>> raised_indices([0, 1, 2, 3], [0.6, 0.1, 0.6, 0.1], raise_level=0.5, dedup_h=1.0)
    [0, 2]
    """
    clear = raise_level / 2 if clear_level is None else clear_level
    t, p = np.asarray(time_h, float), np.asarray(probability, float)
    if np.any(np.diff(t) < 0):
        raise InputError("raised_indices: times must be non-decreasing (sort the series by time_h)")
    out: list[int] = []
    active, last = False, -np.inf
    for k in range(len(p)):
        if np.isnan(p[k]):
            continue
        if active and p[k] < clear:
            active = False
        elif not active and p[k] >= raise_level:
            active = True
            if t[k] - last >= dedup_h or not out:
                out.append(k)
                last = t[k]
    return out


@dataclass(frozen=True)
class Alert:
    """One alert record (JSON-serialisable with ``to_json``)."""

    patient: str
    signal: str
    kind: str
    time_h: float
    probability: float
    lower: float
    upper: float
    level: float
    baseline: float
    now: float
    unit: str
    horizon_h: float
    window_start_h: float
    window_end_h: float
    fit_ok: bool
    explanation: str
    details: dict[str, Any] = field(default_factory=dict)
    schema: str = ALERT_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dictionary (NaN written as None).

        >>> a = Alert("P1", "spo2", "crossing", 10.0, 0.6, 0.4, 0.8, 0.5, 97.0, 91.5, "%", 6.0, 0.0, 10.0, True, "x")
        >>> a.to_dict()["probability"], Alert.from_dict(a.to_dict()) == a
        (0.6, True)
        """
        out = asdict(self)
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}

    def to_json(self) -> str:
        """The record as one line of JSON."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """Rebuild from ``to_dict`` output (None read back as NaN)."""
        return cls(**{k: (float("nan") if v is None and k not in ("details", "schema") else v)
                      for k, v in data.items()})


def alert_table(alerts: Sequence[Alert]) -> pd.DataFrame:
    """One row per alert: patient, signal, kind, time_h, probability and its interval, ... (empty with columns).

    >>> alert_table([]).columns[:3].tolist()
    ['patient', 'signal', 'kind']
    """
    rows = [{k: getattr(a, k) for k in ALERT_COLUMNS} for a in alerts]
    table = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    return table.sort_values(["patient", "signal", "time_h"], kind="stable").reset_index(drop=True)


def series_label(scores: pd.DataFrame) -> np.ndarray:
    """Which alert series each score row belongs to within its (patient, signal): kind, and a crossing's threshold.

    ``"crossing 70"``: two crossings of one signal (glucose < 70 and > 250) keep separate hysteresis and
    de-duplication. Tables without a ``threshold`` column: the kind.

    >>> s = pd.DataFrame({"kind": ["crossing", "crossing", "drift"], "threshold": [70.0, 250.0, float("nan")]})
    >>> series_label(s).tolist()
    ['crossing 70', 'crossing 250', 'drift']
    """
    kind = scores["kind"].astype(str).to_numpy(object)
    if "threshold" not in scores.columns:
        return kind
    thr = scores["threshold"].to_numpy(float)
    return np.array([k if np.isnan(v) else f"{k} {v:g}" for k, v in zip(kind, thr, strict=True)], dtype=object)


def alerts_from_scores(scores: pd.DataFrame, policy: AlertPolicy | dict[str, AlertPolicy]) -> pd.DataFrame:
    """Alert table from a long score table (one row per patient, signal, kind and time, with ``probability``).

    `policy` is one ``AlertPolicy`` for every kind or one per kind (kinds without a policy raise nothing).
    The result keeps every column of the score rows that raised, so it is an alert table.

    >>> s = pd.DataFrame({"patient": "A", "signal": "spo2", "kind": "crossing", "time_h": [0.0, 1.0, 2.0],
    ...                   "probability": [0.2, 0.7, 0.9]})
    >>> alerts_from_scores(s, AlertPolicy(0.5))[["patient", "time_h"]].to_dict("records")
    [{'patient': 'A', 'time_h': 1.0}]
    """
    missing = {"patient", "signal", "kind", "time_h", "probability"} - set(scores.columns)
    if missing:
        raise InputError(f"alerts_from_scores: the score table lacks columns {sorted(missing)}")
    ordered = scores.assign(_series=series_label(scores)).sort_values(["patient", "signal", "_series", "time_h"],
                                                                        kind="stable")
    picked: list[np.ndarray] = []
    for _, g in ordered.groupby(["patient", "signal", "_series"], sort=False):
        kind = g["kind"].iloc[0]
        pol = policy.get(kind) if isinstance(policy, dict) else policy
        if pol is None:
            continue
        idx = raised_indices(g["time_h"].to_numpy(), g["probability"].to_numpy(), raise_level=pol.raise_level,
                             clear_level=pol.clear_level, dedup_h=pol.dedup_h)
        picked.append(g.index.to_numpy()[idx])
    index = np.concatenate(picked) if picked else np.array([], int)
    out = ordered.loc[index].drop(columns="_series")
    if isinstance(policy, AlertPolicy):
        out = out.assign(level=policy.raise_level)
    return out.sort_values(["patient", "signal", "time_h"], kind="stable").reset_index(drop=True)


def advance_alerts(scores: pd.DataFrame, policy: AlertPolicy | dict[str, AlertPolicy],
                   state: dict[tuple[str, str, str], tuple[bool, float]]) -> pd.DataFrame:
    """Alerts raised by new score rows, continuing each series' hysteresis from `state` (updated in place).

    `state` maps (patient, signal, series) to (active, time of the last alert) (series: ``series_label``, the
    kind, with the threshold for a crossing); a series not in it starts
    inactive with no alert. Feeding a score table in consecutive time batches gives the alerts of
    ``alerts_from_scores`` on the whole table (rows of a batch must be later than the series' earlier
    rows). A series whose new probabilities cannot change its state (inactive and all below the raise
    level, or active and none below the clear level) is skipped without a Python loop.

    >>> s = pd.DataFrame({"patient": "A", "signal": "spo2", "kind": "crossing", "time_h": [0.0, 1.0, 2.0, 3.0],
    ...                   "probability": [0.2, 0.7, 0.1, 0.9]})
    >>> state = {}
    >>> a = advance_alerts(s.iloc[:2], AlertPolicy(0.5, dedup_h=0.0), state)
    >>> b = advance_alerts(s.iloc[2:], AlertPolicy(0.5, dedup_h=0.0), state)
    >>> a["time_h"].tolist(), b["time_h"].tolist(), state
    ([1.0], [3.0], {('A', 'spo2', 'crossing'): (True, 3.0)})
    """
    if scores.empty:
        return scores.iloc[:0].assign(level=np.nan) if isinstance(policy, AlertPolicy) else scores.iloc[:0]
    ordered = scores.assign(_series=series_label(scores)).sort_values(["patient", "signal", "_series", "time_h"],
                                                                        kind="stable")
    cols = [ordered[c].astype(str).to_numpy(object) for c in ("patient", "signal", "_series")]
    kinds = ordered["kind"].astype(str).to_numpy(object)
    ordered = ordered.drop(columns="_series")
    change = np.zeros(len(ordered), bool)
    change[0] = True
    for c in cols:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    ends = np.r_[starts[1:], len(ordered)]
    prob = ordered["probability"].to_numpy(float)
    times = ordered["time_h"].to_numpy(float)
    filled = np.where(np.isnan(prob), -np.inf, prob)
    hi = np.maximum.reduceat(filled, starts)
    lo = np.minimum.reduceat(np.where(np.isnan(prob), np.inf, prob), starts)
    picked: list[int] = []
    for g, (a, b) in enumerate(zip(starts, ends, strict=True)):
        key = (cols[0][a], cols[1][a], cols[2][a])
        pol = policy.get(kinds[a]) if isinstance(policy, dict) else policy
        if pol is None:
            continue
        active, last = state.get(key, (False, -np.inf))
        if (not active and hi[g] < pol.raise_level) or (active and lo[g] >= pol.clear_level):
            continue
        for k in range(a, b):
            if np.isnan(prob[k]):
                continue
            if active and prob[k] < pol.clear_level:  # type: ignore[operator]
                active = False
            elif not active and prob[k] >= pol.raise_level:
                active = True
                if times[k] - last >= pol.dedup_h:
                    picked.append(k)
                    last = float(times[k])
        state[key] = (active, last)  # type: ignore[assignment]
    out = ordered.iloc[picked]
    if isinstance(policy, AlertPolicy):
        out = out.assign(level=policy.raise_level)
    return out.sort_values(["patient", "signal", "time_h"], kind="stable").reset_index(drop=True)


class AlertSink(Protocol):
    """What ``record_alerts`` needs from a store (``bayestwin.store.TwinStore`` provides it)."""

    def head(self, patient: object) -> int | None:
        """Latest version of the patient's twin, None if none."""

    def add_record(self, patient: object, version: int, kind: str, payload: Any) -> int:
        """Append a JSON record to a version (audited); return its id."""


def record_alerts(sink: AlertSink, alerts: Sequence[Alert]) -> list[int]:
    """Write each alert as a ``"monitor_alert"`` record of its patient's latest twin version; return record ids.

    The store pseudonymises the patient and appends to its hash-chained audit log. A patient with no
    version in the store is an error (commit the patient's twin first): nothing is written then.

    Examples
    --------
    >>> class Memory:
    ...     def __init__(self): self.rows = []
    ...     def head(self, patient): return 1
    ...     def add_record(self, patient, version, kind, payload):
    ...         self.rows.append((patient, version, kind, payload)); return len(self.rows)
    >>> a = Alert("P1", "spo2", "crossing", 10.0, 0.6, 0.4, 0.8, 0.5, 97.0, 91.5, "%", 6.0, 0.0, 10.0, True, "x")
    >>> record_alerts(Memory(), [a])
    [1]
    """
    versions = {a.patient: sink.head(a.patient) for a in alerts}
    missing = sorted(p for p, v in versions.items() if v is None)
    if missing:
        raise InputError(f"record_alerts: patients {missing} have no twin version in the store; commit their "
                         "twins (store.commit_version) before recording alerts; nothing was written")
    return [sink.add_record(a.patient, versions[a.patient], "monitor_alert", a.to_dict()) for a in alerts]
