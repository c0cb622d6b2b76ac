"""The fixed-threshold baseline: a NEWS2-style aggregate score plus single-parameter thresholds.

What clinics use today, run on the same canonical streams as the twin and producing the same alert table
(``patient``, ``signal``, ``time_h``, ...), so ``bayestwin.monitor.evaluate`` compares the two by the same code.

* **NEWS2 aggregate** (Royal College of Physicians 2017, scale 1 for SpO2, patient on air, alert): at every
  usable observation of heart rate, respiratory rate, SpO2, systolic pressure or temperature, each of the five
  parameters is scored on its latest value (``NEWS2_BANDS``; a value older than ``max_age_h`` scores 0) and
  the scores are summed. An alert (``signal="news2"``) is raised when the sum reaches ``level`` -- the knob
  swept for the operating curve -- or, with ``red_score=True``, when any one parameter scores 3.
* **Single-parameter thresholds** (``THRESHOLDS``: SpO2 < 90 %, SBP > 180 mm[Hg], HR > 130 /min, RR > 30 /min),
  checked on each observation; and **weight gain**: weight at least ``weight_gain_kg`` above the lowest
  weight of the previous ``weight_window_h`` (heart-failure telemonitoring: 2 kg in 3 days).
* **Hysteresis and de-duplication** (``deduplicate``), the semantics of the twin's alerts
  (``bayestwin.monitor.alerts.raised_indices`` with a 0/1 probability): an *episode* of a (patient, signal)
  starts when its condition becomes true and lasts until it is false at an evaluation; an episode raises one
  alert at its start, unless an alert for that pair was raised in the previous ``window_h`` hours (12 h, the
  twin's default ``AlertPolicy.dedup_h``), in which case it raises none.

Examples
--------
>>> news2_subscores({"heart_rate": [135.0], "resp_rate": [22.0], "spo2": [95.0], "sbp": [100.0],
...                  "temperature": [38.5]})["total"].tolist()
[9]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import pandas as pd

from bayestwin.exceptions import InputError
from bayestwin.monitor.loinc import SIGNALS

__all__ = ["DEFAULT_WINDOW_H", "NEWS2_BANDS", "THRESHOLDS", "deduplicate", "news2_scores", "news2_subscores",
           "threshold_alerts"]  # fmt: skip

#: Default de-duplication window (h) of alerts for one (patient, signal): the twin's ``AlertPolicy.dedup_h``.
DEFAULT_WINDOW_H = 12.0
#: NEWS2 bands: signal -> (upper bounds of successive bands, score of each band; the last band is open).
#: E.g. heart rate <= 40: 3, <= 50: 1, <= 90: 0, <= 110: 1, <= 130: 2, above: 3.
NEWS2_BANDS: Mapping[str, tuple[tuple[float, ...], tuple[int, ...]]] = MappingProxyType({
    "resp_rate": ((8.0, 11.0, 20.0, 24.0), (3, 1, 0, 2, 3)),
    "spo2": ((91.0, 93.0, 95.0), (3, 2, 1, 0)),
    "sbp": ((90.0, 100.0, 110.0, 219.0), (3, 2, 1, 0, 3)),
    "heart_rate": ((40.0, 50.0, 90.0, 110.0, 130.0), (3, 1, 0, 1, 2, 3)),
    "temperature": ((35.0, 36.0, 38.0, 39.0), (3, 1, 0, 1, 2)),
})  # fmt: skip
#: Single-parameter alert thresholds: (signal, ">" or "<", limit in the canonical unit).
THRESHOLDS: tuple[tuple[str, str, float], ...] = (
    ("spo2", "<", 90.0), ("sbp", ">", 180.0), ("heart_rate", ">", 130.0), ("resp_rate", ">", 30.0),
)  # fmt: skip
ALERT_COLUMNS = ("patient", "signal", "time_h", "rule", "value", "level", "explanation")


def _band_score(values: np.ndarray, signal: str) -> np.ndarray:
    bounds, scores = NEWS2_BANDS[signal]
    # a value <= bound[k] (and above bound[k-1]) falls in band k; values between integers (37.95 Cel) go up
    idx = np.searchsorted(np.asarray(bounds), values, side="left")
    out = np.asarray(scores)[idx]
    return np.where(np.isnan(values), 0, out)


def news2_subscores(latest: Mapping[str, Sequence[float] | np.ndarray]) -> pd.DataFrame:
    """NEWS2 score of each parameter and their ``total`` from arrays of latest values (NaN scores 0).

    Examples
    --------
    >>> news2_subscores({"heart_rate": [50.0, 51.0], "spo2": [np.nan, 91.5]}).values.tolist()
    [[1, 0, 1], [0, 2, 2]]
    """
    cols = {}
    for signal, values in latest.items():
        if signal not in NEWS2_BANDS:
            raise InputError(f"{signal!r} is not a NEWS2 parameter; use some of {sorted(NEWS2_BANDS)}.")
        cols[signal] = _band_score(np.asarray(values, dtype=float), signal)
    frame = pd.DataFrame(cols)
    frame["total"] = frame.sum(axis=1).astype(int)
    return frame


def news2_scores(frame: pd.DataFrame, *, max_age_h: float = 12.0) -> pd.DataFrame:
    """NEWS2 at every usable observation of a NEWS2 parameter, on each parameter's latest value.

    Returns one row per evaluation (``patient``, ``time_h``) with the latest value of each parameter (NaN
    when none within ``max_age_h``), its subscore (``<signal>_score``), ``total`` and ``red`` (some
    parameter scores 3).

    Examples
    --------
    >>> f = pd.DataFrame({"patient": "p", "signal": ["heart_rate", "spo2", "heart_rate"],
    ...                   "time_h": [0.0, 1.0, 20.0], "value": [120.0, 93.0, 80.0], "status": "ok"})
    >>> news2_scores(f)[["time_h", "total", "red"]].values.tolist()
    [[0.0, 2, False], [1.0, 4, False], [20.0, 0, False]]
    """
    ok = frame[(frame["status"] == "ok") & frame["signal"].isin(list(NEWS2_BANDS))]
    ok = ok[["patient", "signal", "time_h", "value"]].astype({"patient": str})
    times = ok[["patient", "time_h"]].drop_duplicates().sort_values(["time_h", "patient"], kind="stable")
    out = times.reset_index(drop=True)
    for signal in NEWS2_BANDS:
        obs = ok[ok["signal"] == signal].sort_values(["time_h", "patient"], kind="stable")
        obs = obs.groupby(["patient", "time_h"], as_index=False)["value"].last().sort_values("time_h", kind="stable")
        merged = pd.merge_asof(out[["patient", "time_h"]], obs.rename(columns={"value": signal}), on="time_h",
                               by="patient", direction="backward", tolerance=max_age_h)
        out[signal] = merged[signal].to_numpy(dtype=float)
    sub = news2_subscores({s: out[s].to_numpy() for s in NEWS2_BANDS})
    for signal in NEWS2_BANDS:
        out[f"{signal}_score"] = sub[signal].to_numpy()
    out["total"] = sub["total"].to_numpy()
    out["red"] = (sub[list(NEWS2_BANDS)] >= 3).any(axis=1).to_numpy()
    return out.sort_values(["patient", "time_h"], kind="stable").reset_index(drop=True)


def deduplicate(candidates: pd.DataFrame, *, window_h: float = DEFAULT_WINDOW_H, rearm: bool = True) -> pd.DataFrame:
    """Turn evaluations into alerts: one alert per episode, none within ``window_h`` of the last alert.

    ``candidates`` has one row per evaluation with ``patient``, ``signal``, ``time_h`` and ``active`` (the
    condition holds). Per (patient, signal), in time order, an episode starts at an active evaluation after an
    inactive one (or the first) and raises an alert if no alert was raised in the previous ``window_h`` hours;
    a suppressed episode still has to clear before the next can raise (as ``alerts.raised_indices``).
    ``rearm=False`` drops the episodes: any active evaluation at least ``window_h`` after the last alert raises.
    Returns the alert rows (without ``active``).

    Examples
    --------
    >>> c = pd.DataFrame({"patient": "p", "signal": "news2", "time_h": [0.0, 1.0, 2.0, 3.0, 9.0],
    ...                   "active": [True, True, True, True, True]})
    >>> deduplicate(c, window_h=6.0)["time_h"].tolist(), deduplicate(c, window_h=6.0, rearm=False)["time_h"].tolist()
    ([0.0], [0.0, 9.0])
    >>> deduplicate(c.assign(active=[True, True, False, False, True]), window_h=6.0)["time_h"].tolist()
    [0.0, 9.0]
    """
    if window_h < 0:
        raise InputError(f"window_h={window_h} must be >= 0 (hours).")
    c = candidates.sort_values(["patient", "signal", "time_h"], kind="stable")
    keep = np.zeros(len(c), dtype=bool)
    pats, sigs = c["patient"].to_numpy(), c["signal"].to_numpy()
    times, active = c["time_h"].to_numpy(dtype=float), c["active"].to_numpy(dtype=bool)
    last, in_episode, key = -np.inf, False, None
    for i in range(len(c)):  # sequential by nature (state per pair); O(n), n = evaluations
        if (pats[i], sigs[i]) != key:
            key, last, in_episode = (pats[i], sigs[i]), -np.inf, False
        if not active[i]:
            in_episode = False
            continue
        starts = not in_episode or not rearm
        in_episode = True
        if starts and times[i] - last >= window_h:  # last = -inf before the first alert
            keep[i], last = True, times[i]
    return c[keep].drop(columns="active").reset_index(drop=True)


def _single(frame: pd.DataFrame, thresholds: Sequence[tuple[str, str, float]]) -> pd.DataFrame:
    parts = []
    for signal, op, limit in thresholds:
        if signal not in SIGNALS or op not in ("<", ">"):
            raise InputError(f"threshold {(signal, op, limit)} must be (signal, '<' or '>', limit) with a signal "
                             f"in {sorted(SIGNALS)}.")
        obs = frame[(frame["status"] == "ok") & (frame["signal"] == signal)]
        active = obs["value"] < limit if op == "<" else obs["value"] > limit
        unit = SIGNALS[signal].unit
        parts.append(pd.DataFrame({
            "patient": obs["patient"].astype(str), "signal": signal, "time_h": obs["time_h"], "active": active,
            "rule": f"{signal} {op} {limit:g}", "value": obs["value"], "level": limit,
            "explanation": [f"{SIGNALS[signal].label} {v:g} {unit} {op} {limit:g} {unit}" for v in obs["value"]],
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*ALERT_COLUMNS, "active"])


def _weight_gain(frame: pd.DataFrame, gain_kg: float, window_h: float) -> pd.DataFrame:
    w = frame[(frame["status"] == "ok") & (frame["signal"] == "weight")].sort_values(["patient", "time_h"])
    if w.empty:
        return pd.DataFrame(columns=[*ALERT_COLUMNS, "active"])
    lows = []
    for _, g in w.groupby("patient", sort=False):
        t, v = g["time_h"].to_numpy(), g["value"].to_numpy()
        start = np.searchsorted(t, t - window_h, side="left")
        lows.append(np.array([v[s:i + 1].min() for i, s in enumerate(start)]))
    gain = w["value"].to_numpy() - np.concatenate(lows)
    return pd.DataFrame({
        "patient": w["patient"].astype(str), "signal": "weight", "time_h": w["time_h"], "active": gain >= gain_kg,
        "rule": f"weight gain >= {gain_kg:g} kg in {window_h:g} h", "value": gain, "level": gain_kg,
        "explanation": [f"weight up {x:.1f} kg on the lowest of the previous {window_h:g} h" for x in gain],
    })  # fmt: skip


def threshold_alerts(
    frame: pd.DataFrame,
    level: float = 5.0,
    *,
    red_score: bool = True,
    thresholds: Sequence[tuple[str, str, float]] = THRESHOLDS,
    weight_gain_kg: float | None = 2.0,
    weight_window_h: float = 72.0,
    max_age_h: float = 12.0,
    window_h: float = DEFAULT_WINDOW_H,
    rearm: bool = True,
) -> pd.DataFrame:
    """Alerts of the fixed-threshold baseline on a canonical stream frame (usable rows only).

    Parameters
    ----------
    frame : pandas.DataFrame
        Canonical stream frame (``bayestwin.monitor.streams``).
    level : float
        NEWS2 aggregate score that raises an alert (clinical: 5 "urgent review", 7 "emergency"); the knob
        swept by ``evaluate.operating_curve``.
    red_score : bool
        Also alert when one NEWS2 parameter scores 3.
    thresholds, weight_gain_kg, weight_window_h
        Single-parameter thresholds and the weight-gain rule (``weight_gain_kg=None`` turns it off).
    max_age_h, window_h, rearm
        Latest-value age limit for NEWS2; de-duplication window and hysteresis (``deduplicate``).

    Returns
    -------
    pandas.DataFrame
        One row per alert: ``patient``, ``signal`` (``"news2"`` or the parameter), ``time_h``, ``rule``,
        ``value`` (score, value or gain), ``level``, ``explanation``; sorted by patient and time.

    Examples
    --------
    >>> f = pd.DataFrame({"patient": "p", "signal": ["heart_rate", "resp_rate", "heart_rate", "spo2"],
    ...                   "time_h": [0.0, 0.5, 1.0, 1.5], "value": [128.0, 23.0, 135.0, 88.0], "status": "ok"})
    >>> a = threshold_alerts(f, level=5)
    >>> a[["signal", "time_h", "rule"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [['heart_rate', 1.0, 'heart_rate > 130'], ['news2', 1.0, 'NEWS2 >= 5 or a parameter scoring 3'],
     ['spo2', 1.5, 'spo2 < 90']]
    >>> a["explanation"][1]
    'NEWS2 5: respiratory rate 23 (2), heart rate 135 (3)'
    """
    scores = news2_scores(frame, max_age_h=max_age_h)
    active = (scores["total"] >= level) | (scores["red"] if red_score else False)
    news = scores.assign(signal="news2", active=active.to_numpy(), value=scores["total"].astype(float),
                         rule=f"NEWS2 >= {level:g}" + (" or a parameter scoring 3" if red_score else ""),
                         level=float(level), explanation="")
    parts = [news, _single(frame, thresholds)]
    if weight_gain_kg is not None:
        parts.append(_weight_gain(frame, weight_gain_kg, weight_window_h))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(ALERT_COLUMNS))
    alerts = deduplicate(pd.concat(parts, ignore_index=True), window_h=window_h, rearm=rearm)
    is_news = (alerts["signal"] == "news2").to_numpy()
    alerts.loc[is_news, "explanation"] = [_explain_news2(row) for _, row in alerts[is_news].iterrows()]
    alerts = alerts[list(ALERT_COLUMNS)].sort_values(["patient", "time_h", "signal"], kind="stable")
    return alerts.reset_index(drop=True)


def _explain_news2(row: pd.Series) -> str:
    parts = [f"{SIGNALS[s].label} {row[s]:g} ({int(row[f'{s}_score'])})" for s in NEWS2_BANDS
             if not np.isnan(row[s]) and row[f"{s}_score"] > 0]
    return f"NEWS2 {int(row['value'])}" + (": " + ", ".join(parts) if parts else "")
