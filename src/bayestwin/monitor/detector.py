"""One alert stream per patient: the signals' evidence combined, persistence required, de-duplicated per patient.

Per-signal alerts (``alerts.alerts_from_scores``) count one alarm per (patient, signal, kind): six signals
and two kinds give up to twelve chances of a false alarm per patient, and one confounder (an exercise
bout moves heart rate, respiration, SpO2 and blood pressure together) raises several alarms at once. The
patient-level detector instead

1. **combines** the latest probability of each selected (signal, kind) series of a patient, at every
   scored time, into the probability that at least one of them holds::

       P(any) = 1 - prod_s (1 - p_s)

   which is the posterior probability of "some signal has drifted (or will cross)" when the signals'
   posteriors are independent -- they come from separate models, so this is the model's own answer, not a
   tuned score. A series' latest probability is carried forward for ``max_age_h`` hours (a daily weight
   keeps counting until the next one) and then dropped;
2. requires **persistence**: the combined probability must have stayed at or above the level for
   ``persist_h`` hours (the minimum over that trailing window is what is compared with the level), so a
   20-60 min exercise bout does not alarm while a deterioration, which lasts, does -- at the cost of at
   most ``persist_h`` hours of delay;
3. raises with the hysteresis and **de-duplication per patient** of ``alerts.raised_indices`` (raise at
   the level, clear below ``clear_fraction`` of it, at most one alert per ``dedup_h`` hours).

The alert rows have ``signal="patient"``, ``kind="combined"``, the combined probability, and ``drivers``:
the series that contributed most at the alert (for the explanation).

Examples
--------
>>> s = pd.DataFrame({"patient": "A", "signal": ["sbp", "weight", "sbp", "sbp"], "kind": "drift",
...                   "time_h": [0.0, 0.5, 1.0, 3.0], "probability": [0.5, 0.5, 0.6, 0.7]})
>>> a = patient_alerts(s, PatientPolicy(level=0.8, persist_h=1.0, kinds=("drift",)))
>>> a[["patient", "time_h", "drivers"]].to_dict("records")
[{'patient': 'A', 'time_h': 3.0, 'drivers': 'sbp drift 0.70, weight drift 0.50'}]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayestwin.exceptions import InputError
from bayestwin.monitor.alerts import raised_indices, series_label

__all__ = ["PatientPolicy", "combined_probability", "patient_alerts"]


@dataclass(frozen=True)
class PatientPolicy:
    """Settings of the patient-level detector (see the module docstring).

    >>> PatientPolicy(0.5).clear_level
    0.25
    """

    level: float
    persist_h: float = 0.0
    dedup_h: float = 12.0
    max_age_h: float = 26.0
    clear_fraction: float = 0.5
    kinds: tuple[str, ...] = ("drift", "crossing")

    def __post_init__(self) -> None:
        if not 0.0 < self.level <= 1.0 or not 0.0 <= self.clear_fraction <= 1.0:
            raise InputError(f"PatientPolicy: level {self.level} must lie in (0, 1] and clear_fraction "
                             f"{self.clear_fraction} in [0, 1]")
        if min(self.persist_h, self.dedup_h, self.max_age_h) < 0:
            raise InputError(f"PatientPolicy: persist_h {self.persist_h}, dedup_h {self.dedup_h} and max_age_h "
                             f"{self.max_age_h} must be >= 0 hours")

    @property
    def clear_level(self) -> float:
        """The probability below which an active episode clears."""
        return self.level * self.clear_fraction


def combined_probability(scores: pd.DataFrame, *, kinds: tuple[str, ...] = ("drift", "crossing"),
                         max_age_h: float = 26.0) -> pd.DataFrame:
    """Per patient and scored time: P(any selected series holds) = 1 - prod(1 - latest p), and the series' p.

    Returns a frame indexed by (patient, time_h) with a ``combined`` column and one column per
    ``"signal kind"`` series (its latest probability at that time, NaN when none or older than `max_age_h`).

    >>> s = pd.DataFrame({"patient": "A", "signal": ["hr", "rr"], "kind": "drift", "time_h": [0.0, 1.0],
    ...                   "probability": [0.5, 0.5]})
    >>> combined_probability(s)["combined"].tolist()
    [0.5, 0.75]
    """
    missing = {"patient", "signal", "kind", "time_h", "probability"} - set(scores.columns)
    if missing:
        raise InputError(f"combined_probability: the score table lacks columns {sorted(missing)}")
    rows = scores[scores["kind"].isin(kinds)]
    rows = rows.assign(series=rows["signal"].astype(str) + " " + series_label(rows),
                       patient=rows["patient"].astype(str), seen=rows["time_h"])
    # one row per (patient, time, series): the last score at that time
    p = rows.pivot_table(index=["patient", "time_h"], columns="series", values="probability", aggfunc="last")
    seen = rows.pivot_table(index=["patient", "time_h"], columns="series", values="seen", aggfunc="last")
    p = p.reindex(seen.index)  # rows whose probabilities are all NaN (no estimate yet) are dropped by the pivot
    p, seen = p.groupby(level="patient").ffill(), seen.groupby(level="patient").ffill()
    now = p.index.get_level_values("time_h").to_numpy(float)[:, None]
    p = p.where(now - seen.to_numpy(float) <= max_age_h)
    p.columns.name = None
    p.insert(0, "combined", 1.0 - np.prod(1.0 - p.fillna(0.0).clip(0.0, 1.0).to_numpy(float), axis=1))
    return p


def patient_alerts(scores: pd.DataFrame, policy: PatientPolicy, *,
                   combined: pd.DataFrame | None = None) -> pd.DataFrame:
    """Patient-level alert table (``patient``, ``signal="patient"``, ``kind="combined"``, ``time_h``, ...).

    See the module docstring and its example. Each alert row also has ``probability`` (the combined
    probability at the alert), ``level`` and ``drivers`` (the three largest series probabilities).
    `combined` reuses a ``combined_probability`` table computed with the policy's kinds and max age (an
    operating curve over levels computes it once).
    """
    columns = ["patient", "signal", "kind", "time_h", "probability", "level", "drivers"]
    combo = (combined_probability(scores, kinds=policy.kinds, max_age_h=policy.max_age_h) if combined is None
             else combined)
    if combo.empty:
        return pd.DataFrame(columns=columns)
    series = combo.columns[1:]
    out = []
    for patient, g in combo.groupby(level="patient", sort=True):  # one loop step per patient, not per row
        t = g.index.get_level_values("time_h").to_numpy(float)
        c = g["combined"].to_numpy(float)
        held = _trailing_min(t, c, policy.persist_h)
        for k in raised_indices(t, held, raise_level=policy.level, clear_level=policy.clear_level,
                                dedup_h=policy.dedup_h):
            top = g.iloc[k][series].dropna().sort_values(ascending=False).head(3)
            out.append((patient, "patient", "combined", float(t[k]), float(held[k]), policy.level,
                        ", ".join(f"{name} {v:.2f}" for name, v in top.items())))
    return pd.DataFrame(out, columns=columns)


def _trailing_min(t: np.ndarray, x: np.ndarray, window_h: float) -> np.ndarray:
    """Minimum of `x` over the rows with time in [t - window_h, t] (times sorted); NaN until a window is full.

    >>> _trailing_min(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.9, 0.2, 0.8, 0.9]), 1.0).tolist()
    [nan, 0.2, 0.2, 0.8]
    """
    if window_h <= 0:
        return x.copy()
    s = pd.Series(x, index=pd.to_timedelta(t, unit="h"))
    out = s.rolling(pd.Timedelta(hours=window_h), closed="both").min().to_numpy(float).copy()
    out[t - t[0] < window_h] = np.nan
    return out
