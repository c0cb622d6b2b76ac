"""A per-patient Bayesian changepoint posterior over all signals: P(a deterioration began in the last W hours).

The noisy-OR detector (``detector``) combines per-signal drift probabilities as if the signals were
independent, over one 72-h comparison for every signal; it is not a probability of deterioration. This
module asks the question directly, with one model per patient:

1. **Evidence.** Each reading's one-step predictive PIT under the twin (``tail_prob`` and the side of
   ``pred_mean`` in the score table) becomes a standardised innovation ``z = Phi^-1(F)``, N(0, 1) and
   independent over readings when the twin's model holds. ``z`` is clipped to ``+-z_clip`` (artefacts), and
   the readings of one signal in one ``bin_h``-hour bin are summed into one evidence unit
   ``u = sum(z) / sqrt(n)`` (N(0, 1) under the model whatever the sampling rate), clipped to ``+-u_clip``
   so that one exercise bout -- a burst of large innovations in one bin -- counts as at most one unit.
2. **Changepoint model.** At most one change in the trailing window of ``window_h`` hours; a change begins
   at the start of any given bin with prior probability ``hazard`` (per bin). Before the change every
   signal's units have mean 0; from the change on, each signal is affected independently with probability
   ``p_affected`` and an affected signal's units have mean ``mu_s``: ``mu_s ~ N(0, sigma^2)`` for a signal
   whose deterioration can go either way (direction 0) or the half-normal on the side of deterioration
   (direction +1: heart rate, respiration, temperature, weight up; -1: SpO2 down). The marginal likelihood
   ratio of a signal's units after a change at bin ``tau`` (``n`` units summing to ``S``) is closed-form::

       a = 1 + n sigma^2
       BF(S, n) = a^-1/2 exp(sigma^2 S^2 / (2 a))                          (direction 0)
       BF(S, n) = 2 a^-1/2 exp(sigma^2 S^2 / (2 a)) Phi(d sigma S / sqrt a)  (direction d = +-1)

   and the patient's likelihood ratio of "change at tau" is ``prod_s (1 - q + q BF_s)``.

   **Ramps** (``shape="ramp"``): the simulated and clinical deteriorations are mostly ramps (sepsis over
   ~12 h, a hypertensive crisis over ~48 h, heart failure over ~72 h), so an affected signal's units may
   instead have mean ``beta x`` with ``x`` the bins from the change to the bin's midpoint and
   ``beta ~ N(0, slope_sigma^2)`` (half-normal on the side of deterioration): the same closed form with
   ``S = sum x u`` and ``n = sum x^2``. ``shape="either"`` gives each affected signal a step or a ramp with
   probability 1/2 (``BF = (BF_step + BF_ramp) / 2``). The sums over every candidate change come from
   cumulative sums of ``u``, ``i u``, ``1``, ``i``, ``i^2`` (``i`` the bin index), still one vectorised pass.
3. **Posterior.** Over the candidate change bins of the window with at least ``min_h`` hours of data after
   them, ``P(change) = sum_tau h L(tau) / (1 - K h + sum_tau h L(tau))`` (``K`` candidates), evaluated at
   the end of every bin -- a calibrated probability of the model's own question, in float64 (log space).

Alerts raise on that probability with the hysteresis and per-patient de-duplication of
``alerts.raised_indices``. Everything is vectorised over patients, signals, bins and candidate change
times (numpy; no loop over readings); the only loop is the alerting per patient.

Examples
--------
>>> s = pd.DataFrame({"patient": "A", "signal": "heart_rate", "kind": "drift",
...                   "time_h": np.arange(48.0, 60.0, 0.5), "tail_prob": 0.01,
...                   "value": 100.0, "pred_mean": 80.0})
>>> p = changepoint_probability(s, ChangepointPolicy(window_h=12.0))
>>> bool(p["probability"].iloc[-1] > 0.99), bool(p["probability"].iloc[0] < 0.5)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy.special import log_ndtr, ndtri

from bayestwin.exceptions import InputError
from bayestwin.monitor.alerts import raised_indices

__all__ = ["DETERIORATION_DIRECTIONS", "ChangepointPolicy", "changepoint_alerts", "changepoint_posterior",
           "changepoint_probability", "evidence_units", "innovations"]

#: signal -> side of deterioration (+1 up, -1 down, 0 either): sepsis lowers SBP, a hypertensive crisis raises it.
DETERIORATION_DIRECTIONS: Mapping[str, int] = MappingProxyType({
    "heart_rate": 1, "resp_rate": 1, "spo2": -1, "temperature": 1, "weight": 1, "sbp": 0,
})  # fmt: skip


@dataclass(frozen=True)
class ChangepointPolicy:
    """Settings of the changepoint posterior and of its alerts (see the module docstring).

    >>> ChangepointPolicy().clear_level
    0.25
    """

    level: float = 0.5
    window_h: float = 72.0
    min_h: float = 2.0
    bin_h: float = 1.0
    hazard: float = 1e-3
    sigma: float = 1.0
    p_affected: float = 0.5
    z_clip: float = 4.0
    u_clip: float = 3.0
    directions: Mapping[str, int] = field(default_factory=lambda: dict(DETERIORATION_DIRECTIONS))
    dedup_h: float = 12.0
    clear_fraction: float = 0.5
    shape: str = "step"
    slope_sigma: float = 0.05

    def __post_init__(self) -> None:
        bad = []
        if not 0.0 < self.level <= 1.0:
            bad.append(f"level {self.level} must lie in (0, 1]")
        if not 0.0 < self.bin_h <= self.min_h <= self.window_h:
            bad.append(f"need 0 < bin_h ({self.bin_h}) <= min_h ({self.min_h}) <= window_h ({self.window_h})")
        if not 0.0 < self.hazard * self.window_h / self.bin_h < 1.0:
            bad.append(f"hazard {self.hazard} per bin x {self.window_h / self.bin_h:g} bins must lie in (0, 1)")
        if self.sigma <= 0 or not 0.0 < self.p_affected <= 1.0 or min(self.z_clip, self.u_clip) <= 0:
            bad.append(f"sigma {self.sigma}, z_clip {self.z_clip}, u_clip {self.u_clip} must be > 0 and "
                       f"p_affected {self.p_affected} in (0, 1]")
        if any(d not in (-1, 0, 1) for d in self.directions.values()):
            bad.append(f"directions {dict(self.directions)} must be -1, 0 or +1")
        if self.dedup_h < 0 or not 0.0 <= self.clear_fraction <= 1.0:
            bad.append(f"dedup_h {self.dedup_h} must be >= 0 and clear_fraction {self.clear_fraction} in [0, 1]")
        if self.shape not in ("step", "ramp", "either") or self.slope_sigma <= 0:
            bad.append(f"shape {self.shape!r} must be 'step', 'ramp' or 'either' and slope_sigma "
                       f"{self.slope_sigma} > 0 (prior SD of a ramp's slope, units per hour)")
        if bad:
            raise InputError("ChangepointPolicy: " + "; ".join(bad))

    @property
    def clear_level(self) -> float:
        """The probability below which an active episode clears."""
        return self.level * self.clear_fraction


def innovations(scores: pd.DataFrame, *, z_clip: float = 4.0) -> pd.DataFrame:
    """One row per scored reading: ``patient``, ``signal``, ``time_h`` and its standardised innovation ``z``.

    ``z = Phi^-1(F)`` with ``F`` the predictive CDF at the reading, recovered from the two-sided
    ``tail_prob`` and the side of ``pred_mean`` the value fell on; clipped to ``+-z_clip``. A reading that
    appears under several kinds (drift and crossing rows) counts once.

    >>> s = pd.DataFrame({"patient": "A", "signal": "spo2", "kind": "drift", "time_h": [1.0, 2.0],
    ...                   "tail_prob": [0.0455, 1.0], "value": [90.0, 96.0], "pred_mean": [94.0, 96.0]})
    >>> innovations(s)["z"].round(3).tolist()
    [-2.0, 0.0]
    """
    missing = {"patient", "signal", "time_h", "tail_prob", "value", "pred_mean"} - set(scores.columns)
    if missing:
        raise InputError(f"innovations: the score table lacks columns {sorted(missing)}; score with MonitorTwin "
                         "(its scores() table has them)")
    rows = scores.drop_duplicates(["patient", "signal", "time_h"]).dropna(subset=["tail_prob", "value"])
    tail = np.clip(rows["tail_prob"].to_numpy(float), 0.0, 1.0)
    side = np.sign(rows["value"].to_numpy(float) - rows["pred_mean"].to_numpy(float))
    with np.errstate(divide="ignore"):
        z = np.clip(side * -ndtri(tail / 2.0), -z_clip, z_clip) + 0.0  # no -0.0
    return pd.DataFrame({"patient": rows["patient"].astype(str).to_numpy(), "signal": rows["signal"].to_numpy(),
                         "time_h": rows["time_h"].to_numpy(float), "z": z})


def evidence_units(z: pd.DataFrame, signals: list[str], *, bin_h: float = 1.0, u_clip: float = 3.0,
                   start_h: float | None = None) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin the innovations: per (patient, signal, bin) the unit ``u = sum z / sqrt n`` (clipped) and ``n > 0``.

    Returns (patients, bin end times, units (patient, signal, bin), has-data mask, last bin with data per
    patient). Bins start at `start_h` (default: the first innovation's time, floored to a whole bin).

    >>> z = pd.DataFrame({"patient": "A", "signal": "hr", "time_h": [0.2, 0.7, 1.5], "z": [1.0, 1.0, 9.0]})
    >>> pats, ends, u, has, last = evidence_units(z, ["hr"], u_clip=3.0, start_h=0.0)
    >>> ends.tolist(), u[0, 0].round(4).tolist(), has[0, 0].tolist()
    ([1.0, 2.0], [1.4142, 3.0], [True, True])
    """
    z = z[z["signal"].isin(signals)]
    if z.empty:
        raise InputError(f"evidence_units: no innovations of the signals {signals}")
    start = float(np.floor(z["time_h"].min() / bin_h) * bin_h) if start_h is None else float(start_h)
    b = np.floor((z["time_h"].to_numpy(float) - start) / bin_h).astype(int)
    if b.min() < 0:
        raise InputError(f"evidence_units: readings before start_h {start} (first at {z['time_h'].min()} h)")
    pats = sorted(z["patient"].unique())
    pi = pd.Categorical(z["patient"], categories=pats).codes
    si = pd.Categorical(z["signal"], categories=signals).codes
    shape = (len(pats), len(signals), int(b.max()) + 1)
    total, count = np.zeros(shape), np.zeros(shape)
    np.add.at(total, (pi, si, b), z["z"].to_numpy(float))
    np.add.at(count, (pi, si, b), 1.0)
    has = count > 0
    u = np.clip(np.where(has, total / np.sqrt(np.maximum(count, 1.0)), 0.0), -u_clip, u_clip)
    last = np.zeros(len(pats), int)
    np.maximum.at(last, pi, b)
    return pats, start + bin_h * (np.arange(shape[2]) + 1.0), u, has, last


def _log_bf(s: np.ndarray, n: np.ndarray, sigma: float, direction: np.ndarray) -> np.ndarray:
    """Log marginal likelihood ratio (mean shift vs none) of n N(mu, 1) units summing to s (per direction)."""
    a = 1.0 + n * sigma**2
    out = -0.5 * np.log(a) + sigma**2 * s**2 / (2.0 * a)
    d = np.broadcast_to(direction, s.shape)
    side = np.where(d != 0, np.log(2.0) + log_ndtr(d * sigma * s / np.sqrt(a)), 0.0)
    return out + side


def changepoint_posterior(u: np.ndarray, has: np.ndarray, directions: np.ndarray, *, window: int, min_bins: int,
                          hazard: float, sigma: float, p_affected: float, shape: str = "step",
                          slope_sigma: float = 0.05) -> np.ndarray:
    """P(a change began within the trailing `window` bins), at the end of every bin (patient, bin); float64.

    `u` and `has` are (patient, signal, bin) (units, and whether the bin has data); `directions` (signal,).
    Candidate change bins ``tau`` run from ``t - window + 1`` to ``t - min_bins + 1`` (at least `min_bins`
    bins from the change to now); bins before the first have no data. `shape` is the form of an affected
    signal's mean after the change: ``"step"`` (a shift ``mu``), ``"ramp"`` (``beta x``, ``x`` the bins
    from the change to the bin's midpoint, ``beta`` with prior SD `slope_sigma` per bin) or ``"either"``
    (each affected signal a step or a ramp with probability 1/2).

    >>> u = np.array([[[0.1, -0.2, 3.0, 3.0, 3.0]]])
    >>> p = changepoint_posterior(u, np.ones_like(u, bool), np.array([1]), window=4, min_bins=1, hazard=0.01,
    ...                           sigma=1.0, p_affected=1.0)
    >>> p.round(3).tolist()
    [[0.03, 0.023, 0.19, 0.857, 0.997]]
    >>> r = changepoint_posterior(np.array([[[0.0, 0.0, 0.5, 1.0, 1.5]]]), np.ones((1, 1, 5), bool), np.array([1]),
    ...                           window=4, min_bins=1, hazard=0.01, sigma=1.0, p_affected=1.0, shape="ramp",
    ...                           slope_sigma=0.5)
    >>> bool(r[0, -1] > r[0, 1])
    True
    """
    if shape not in ("step", "ramp", "either"):
        raise InputError(f"changepoint_posterior: shape={shape!r}; use 'step', 'ramp' or 'either'")
    u = np.where(has, np.asarray(u, float), 0.0)
    n_b = u.shape[-1]
    lags = np.arange(min_bins - 1, window)  # t - tau
    # cumulative sums with `window` + 1 empty bins in front: C[..., window + 1 + t] = sum over bins <= t
    pad = ((0, 0), (0, 0), (window + 1, 0))
    up, hp = np.pad(u, pad), np.pad(has.astype(float), pad)
    now = np.arange(n_b) + window + 1  # index of bin t in the padded arrays
    before = now[:, None] - lags[None, :] - 1  # (bin, lag): index of bin tau - 1

    def windowed(x: np.ndarray) -> np.ndarray:  # (patient, signal, bin, lag): sum of x over bins tau..t
        c = np.cumsum(x, axis=-1)
        return c[..., now][..., None] - c[..., before]

    d = np.asarray(directions, float)[None, :, None, None]
    log_bf = step = _log_bf(windowed(up), windowed(hp), sigma, d)
    if shape != "step":
        # regressor x = (bin - tau + 1/2) = idx - c with c = index of tau - 1/2; sums via sum idx^k x
        idx = np.arange(up.shape[-1], dtype=float)
        c = (before + 0.5)[None, None]
        s1, n0, n1, n2 = windowed(up * idx), windowed(hp), windowed(hp * idx), windowed(hp * idx**2)
        s_r = s1 - c * windowed(up)
        q_r = np.maximum(n2 - 2.0 * c * n1 + c**2 * n0, 0.0)
        ramp = _log_bf(s_r, q_r, slope_sigma, d)
        log_bf = ramp if shape == "ramp" else np.logaddexp(step, ramp) - np.log(2.0)
    if p_affected < 1.0:
        log_l = np.logaddexp(np.log1p(-p_affected), np.log(p_affected) + log_bf).sum(axis=1)
    else:
        log_l = log_bf.sum(axis=1)  # (patient, bin, lag)
    log_num = np.log(hazard) + np.logaddexp.reduce(log_l, axis=-1)
    log_null = np.log1p(-hazard * lags.size)
    return np.exp(log_num - np.logaddexp(log_null, log_num))


def changepoint_probability(scores: pd.DataFrame, policy: ChangepointPolicy | None = None, *,
                            start_h: float | None = None) -> pd.DataFrame:
    """Per patient and bin end (up to its last reading): ``probability`` of a change in the window, and ``top``.

    ``top`` names the signal with the largest evidence in the window (the explanation of an alert). Signals
    are those of the score table that `policy.directions` names (others are ignored).
    """
    policy = policy or ChangepointPolicy()
    z = innovations(scores, z_clip=policy.z_clip)
    signals = [s for s in policy.directions if s in set(z["signal"])]
    pats, ends, u, has, last = evidence_units(z, signals, bin_h=policy.bin_h, u_clip=policy.u_clip, start_h=start_h)
    window = round(policy.window_h / policy.bin_h)
    prob = changepoint_posterior(u, has, np.array([policy.directions[s] for s in signals]), window=window,
                                 min_bins=round(policy.min_h / policy.bin_h), hazard=policy.hazard,
                                 sigma=policy.sigma, p_affected=policy.p_affected, shape=policy.shape,
                                 slope_sigma=policy.slope_sigma * policy.bin_h)
    # the signal with the largest windowed |sum u| (sign-aware where a direction is set)
    d = np.array([policy.directions[s] for s in signals], float)[None, :, None]
    cs = np.cumsum(np.pad(u, ((0, 0), (0, 0), (window, 0))), axis=-1)
    windowed = (cs[..., window:] - cs[..., :-window]) * np.where(d != 0, d, 1.0)
    windowed = np.where(d != 0, windowed, np.abs(windowed))
    top = np.asarray(signals, dtype=object)[windowed.argmax(axis=1)]
    keep = np.arange(ends.size)[None, :] <= last[:, None]
    pi, bi = np.nonzero(keep)
    return pd.DataFrame({"patient": np.asarray(pats, dtype=object)[pi], "time_h": ends[bi],
                         "probability": prob[pi, bi], "top": top[pi, bi]})


def changepoint_alerts(scores: pd.DataFrame, policy: ChangepointPolicy | None = None, *,
                       probability: pd.DataFrame | None = None) -> pd.DataFrame:
    """Patient-level alert table (``patient``, ``signal="patient"``, ``kind="changepoint"``, ``time_h``, ...).

    `probability` reuses a ``changepoint_probability`` table (an operating curve over levels computes it once).

    >>> s = pd.DataFrame({"patient": "A", "signal": "heart_rate", "kind": "drift",
    ...                   "time_h": np.arange(48.0, 60.0, 0.5), "tail_prob": 0.01,
    ...                   "value": 100.0, "pred_mean": 80.0})
    >>> changepoint_alerts(s, ChangepointPolicy(level=0.9, window_h=12.0))[["time_h", "drivers"]].to_dict("records")
    [{'time_h': 51.0, 'drivers': 'heart_rate'}]
    """
    policy = policy or ChangepointPolicy()
    columns = ["patient", "signal", "kind", "time_h", "probability", "level", "drivers"]
    prob = changepoint_probability(scores, policy) if probability is None else probability
    out = []
    for patient, g in prob.groupby("patient", sort=True):  # one loop step per patient, not per reading
        t, p = g["time_h"].to_numpy(float), g["probability"].to_numpy(float)
        for k in raised_indices(t, p, raise_level=policy.level, clear_level=policy.clear_level,
                                dedup_h=policy.dedup_h):
            out.append((patient, "patient", "changepoint", float(t[k]), float(p[k]), policy.level,
                        str(g["top"].iloc[k])))
    return pd.DataFrame(out, columns=columns)
