"""Quality checks of a canonical stream frame: plausibility rules, duplicates, late arrivals, ordering.

Every check *marks* rows (``status``, ``reason``, ``late``) and never removes one: ``len(frame)`` is the number
of input observations before and after. The checks are recomputed from the values on every call, so running
them again on a merged frame (``append_observations``) gives the same answer as running them once on all rows.

* ``RULES``: the physiological-range rule table (one ``RangeRule`` per signal, limits from
  ``bayestwin.monitor.loinc.SIGNALS``). A value outside is ``implausible``; the reason names the rule and its
  limits. Implausible values are kept (raw record) and excluded from the model (``usable``).
* Duplicates: rows with the same patient, signal, timestamp, device and value (to 1e-9 in the canonical unit)
  are one observation sent more than once; the first received is kept, the others are ``duplicate`` with the
  kept row's source in the reason.
* Late arrivals: a usable row is ``late`` when a row of the same patient and signal with a *later* time had
  been received before it; a filter that already moved past its time must re-process from there.

Examples
--------
>>> [rule.name for rule in RULES][:3]
['heart_rate_range', 'sbp_range', 'dbp_range']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayestwin.monitor.loinc import SIGNALS

__all__ = ["RULES", "STATUSES", "RangeRule", "apply_rules", "finalise", "mark_duplicates", "mark_late"]

#: Every status a row can have; ``ok`` rows alone enter a model.
STATUSES = ("ok", "duplicate", "implausible", "unit_error", "missing", "unknown_code", "retracted")
# Statuses that depend only on the row's value and its neighbours: recomputed on every call.
_DERIVED = ("ok", "duplicate", "implausible")


@dataclass(frozen=True)
class RangeRule:
    """A signal's value must lie in ``[low, high]`` (canonical unit), else the row is ``implausible``.

    Examples
    --------
    >>> RangeRule("spo2_range", "spo2", 50.0, 100.0).explain(130.0)
    'rule spo2_range: 130 % is outside the physiologically possible range [50, 100] %'
    """

    name: str
    signal: str
    low: float
    high: float

    def explain(self, value: float) -> str:
        """The reason written on a row that breaks the rule."""
        unit = SIGNALS[self.signal].unit
        return (f"rule {self.name}: {value:g} {unit} is outside the physiologically possible range "
                f"[{self.low:g}, {self.high:g}] {unit}")


#: The plausibility rule table: one range rule per signal.
RULES: tuple[RangeRule, ...] = tuple(RangeRule(f"{s.name}_range", s.name, s.low, s.high) for s in SIGNALS.values())


def apply_rules(frame: pd.DataFrame, rules: tuple[RangeRule, ...] = RULES) -> pd.DataFrame:
    """Mark ``ok`` rows that break a rule as ``implausible`` (in place on a copy; returns the copy).

    Examples
    --------
    >>> f = pd.DataFrame({"signal": ["spo2", "spo2"], "value": [97.0, 130.0], "status": "ok", "reason": ""})
    >>> apply_rules(f)["status"].tolist()
    ['ok', 'implausible']
    """
    out = frame.copy()
    status, reason = out["status"].to_numpy(dtype=object).copy(), out["reason"].to_numpy(dtype=object).copy()
    values, signals = out["value"].to_numpy(dtype=float), out["signal"].to_numpy(dtype=object)
    for rule in rules:
        bad = np.flatnonzero((status == "ok") & (signals == rule.signal) & ((values < rule.low) | (values > rule.high)))
        for i in bad:
            status[i], reason[i] = "implausible", rule.explain(float(values[i]))
    out["status"], out["reason"] = status, reason
    return out


def mark_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Mark repeated ``ok`` observations as ``duplicate``, keeping the first received (ties: smallest source).

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-01", tz="UTC")
    >>> f = pd.DataFrame({"patient": "p", "signal": "heart_rate", "timestamp": [t, t], "device": "watch",
    ...                   "value": [70.0, 70.0], "received_h": [0.5, 0.1], "source": ["a", "b"],
    ...                   "status": "ok", "reason": ""})
    >>> mark_duplicates(f)[["source", "status", "reason"]].values.tolist()
    [['a', 'duplicate', 'duplicate of b (same patient, signal, time, device and value)'], ['b', 'ok', '']]
    """
    out = frame.copy()
    ok = out["status"].to_numpy(dtype=object) == "ok"
    if not ok.any():
        return out
    sub = out.loc[ok, ["patient", "signal", "timestamp", "device", "value", "received_h", "source"]].copy()
    sub["_v"] = sub["value"].round(9)
    sub = sub.sort_values(["received_h", "source"], kind="stable")
    key = ["patient", "signal", "timestamp", "device", "_v"]
    first = sub.groupby(key, sort=False, dropna=False)["source"].transform("first")
    dup = sub.duplicated(key, keep="first")
    idx = sub.index[dup.to_numpy()]
    out.loc[idx, "status"] = "duplicate"
    out.loc[idx, "reason"] = [f"duplicate of {s} (same patient, signal, time, device and value)" for s in first[dup]]
    return out


def mark_late(frame: pd.DataFrame) -> pd.DataFrame:
    """Set ``late`` on usable rows received after a later-timed usable row of the same patient and signal.

    Examples
    --------
    >>> f = pd.DataFrame({"patient": "p", "signal": "sbp", "time_h": [0.0, 1.0, 2.0],
    ...                   "received_h": [0.0, 3.0, 2.0], "status": "ok"})
    >>> mark_late(f)["late"].tolist()
    [False, True, False]
    """
    out = frame.copy()
    late = np.zeros(len(out), dtype=bool)
    ok = out["status"].to_numpy(dtype=object) == "ok"
    if ok.any():
        sub = out.loc[ok, ["patient", "signal", "time_h", "received_h"]]
        # earliest receipt at each distinct time, then the earliest receipt of any strictly later time
        per_time = sub.groupby(["patient", "signal", "time_h"], sort=True)["received_h"].min().reset_index()
        rev = per_time.iloc[::-1]
        groups = [rev["patient"], rev["signal"]]
        later_min = rev["received_h"].groupby(groups, sort=False).cummin().groupby(groups, sort=False).shift(1)
        per_time["_later"] = later_min.iloc[::-1].fillna(np.inf).to_numpy()
        merged = sub.reset_index().merge(per_time[["patient", "signal", "time_h", "_later"]],
                                         on=["patient", "signal", "time_h"], how="left").set_index("index")
        late_ok = (merged["received_h"] > merged["_later"]).reindex(sub.index).to_numpy()
        late[np.flatnonzero(ok)] = late_ok
    out["late"] = late
    return out


_ORDER = ["patient", "signal", "time_h", "device", "received_h", "source", "status"]


def finalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Recompute derived statuses (rules, duplicates), the ``late`` flags, and sort by patient, signal, time.

    Rows whose status comes from ingest (``unit_error``, ``missing``, ``unknown_code``, ``retracted``) keep
    it; ``ok``/``duplicate``/``implausible`` are recomputed from the values, so the result does not depend on
    the order or the batches in which rows arrived.

    Examples
    --------
    >>> t = pd.Timestamp("2024-01-01", tz="UTC")
    >>> f = pd.DataFrame({"patient": "p", "signal": "spo2", "timestamp": [t, t], "time_h": 0.0, "device": "w",
    ...                   "value": [97.0, 97.0], "received_h": 0.0, "source": ["r1", "r0"], "status": "ok",
    ...                   "reason": ""})
    >>> finalise(f)[["source", "status"]].values.tolist()
    [['r0', 'ok'], ['r1', 'duplicate']]
    """
    out = frame.copy()
    derived = out["status"].isin(_DERIVED).to_numpy()
    out.loc[derived, "status"] = "ok"
    out.loc[derived, "reason"] = ""
    out = mark_late(mark_duplicates(apply_rules(out)))
    out = out.sort_values(_ORDER, kind="stable", na_position="last").reset_index(drop=True)
    return out
