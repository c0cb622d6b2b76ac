"""A documented, seeded generator of remote-monitoring cohorts with known deteriorations.

Each patient has, for every signal, a value process on a 5-minute grid (hours since ``origin``, UTC, which
is midnight so the hour of day is ``time_h % 24``)::

    y(t) = baseline + amplitude * cos(2 pi (t - peak) / 24) + sleep(t) + x(t) + exercise(t) + event(t)

* ``baseline``: drawn per patient around the population mean (``POPULATION``: mean, between-patient SD);
* circadian rhythm with a per-patient peak hour (16:00 +- 2 h) and amplitude; ``sleep``: a step during the
  patient's night (23:00 +- 1 h to 7:00 +- 1 h) -- heart rate, respiration and blood pressure dip;
* ``x``: an Ornstein-Uhlenbeck deviation (stationary SD ``ou_sd``, time constant ``ou_tau_h``), exact on the
  grid;
* ``exercise``: bouts (Poisson, ``exercise_per_day``, 08:00-21:00, 20-60 min, intensity U(0.5, 1)) raising
  heart rate (+40), respiration (+8), SBP (+25), temperature (+0.4) and lowering SpO2 (-1.5) -- the
  confounder a threshold rule alarms on;
* ``event``: the injected deterioration (below), zero before its onset.

Deteriorations (``kinds``; magnitude ``m`` ~ U(0.8, 1.2); effects reach full size linearly over the ramp and
persist to the end):

=================  ========  ======================================================================
kind               ramp      effect at full size (x m)
=================  ========  ======================================================================
``sepsis``         12 h      HR +30 /min, RR +9 /min, SpO2 -6 %, temperature +1.8 Cel, SBP -20, DBP -12
``hypertensive``   48 h      SBP +45 mm[Hg], DBP +20 mm[Hg], HR +5 /min
``heart_failure``  72 h      weight +3 kg (>= 2.4 kg in 3 days), RR +4 /min, HR +8 /min, SpO2 -2 %
=================  ========  ======================================================================

Observation process: per-signal schedules (``SCHEDULES``: wearable HR every 10 min, SpO2 and RR every
30 min, cuff BP at 08/14/20 h, temperature at 08/20 h, weight at 07 h, each jittered), per-patient device
(wearables: ``watch`` or the more precise ``patch``; a third of patients' thermometers read ``[degF]`` and
scales ``[lb_av]``, exercising unit normalisation), device noise, rounding to the device's resolution,
readings not taken (``missing``), wearable gaps (``gaps_per_day`` episodes of 1-8 h), wearable artefacts
(``artefact``: doubled heart rate or an SpO2 dropout; a tenth of them physiologically impossible),
duplicate transmissions (``duplicate``) and late batches (``late``: an hour of wearable data delivered
``late_delay_h`` later). The result goes through ``read_streams``, so the frame is canonical and flagged.

Examples
--------
>>> cohort = simulate_cohort(n_patients=4, days=5.0, seed=1)
>>> sorted(cohort.truth.columns)
['kind', 'magnitude', 'onset_h', 'patient', 'signal']
>>> bool((cohort.frame["status"] == "ok").mean() > 0.9), cohort.frame.attrs["origin"]["P001"]
(True, '2026-01-05T00:00:00+00:00')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from bayestwin.exceptions import InputError
from bayestwin.monitor.streams import read_streams

__all__ = ["EFFECTS", "POPULATION", "SCHEDULES", "CohortConfig", "SimulatedCohort", "simulate_cohort"]

_GRID_H = 5.0 / 60.0
SIMULATED = ("heart_rate", "resp_rate", "spo2", "sbp", "dbp", "temperature", "weight")
#: signal -> (mean, between-patient SD, circadian amplitude, sleep step, OU SD, OU time constant h, exercise).
POPULATION: Mapping[str, tuple[float, float, float, float, float, float, float]] = MappingProxyType({
    "heart_rate": (72.0, 9.0, 5.0, -6.0, 4.0, 1.0, 40.0),
    "resp_rate": (15.0, 2.0, 1.0, -1.5, 1.2, 2.0, 8.0),
    "spo2": (96.5, 1.0, 0.3, -0.8, 0.7, 2.0, -1.5),
    "sbp": (128.0, 12.0, 6.0, -10.0, 6.0, 6.0, 25.0),
    "dbp": (78.0, 8.0, 4.0, -6.0, 4.0, 6.0, 5.0),
    "temperature": (36.7, 0.25, 0.3, -0.2, 0.15, 4.0, 0.4),
    "weight": (78.0, 14.0, 0.3, 0.0, 0.4, 48.0, 0.0),
})  # fmt: skip
#: kind -> (ramp h, {signal: full effect in the canonical unit}).
EFFECTS: Mapping[str, tuple[float, Mapping[str, float]]] = MappingProxyType({
    "sepsis": (12.0, {"heart_rate": 30.0, "resp_rate": 9.0, "spo2": -6.0, "temperature": 1.8, "sbp": -20.0,
                      "dbp": -12.0}),
    "hypertensive": (48.0, {"sbp": 45.0, "dbp": 20.0, "heart_rate": 5.0}),
    "heart_failure": (72.0, {"weight": 3.0, "resp_rate": 4.0, "heart_rate": 8.0, "spo2": -2.0}),
})  # fmt: skip
#: signal -> (devices with their noise SD, times: interval h or hours of day, jitter SD h, resolution, unit).
SCHEDULES: Mapping[str, tuple[Mapping[str, float], float | tuple[float, ...], float, float]] = MappingProxyType({
    "heart_rate": ({"watch": 4.0, "patch": 1.5}, 1.0 / 6.0, 0.01, 1.0),
    "spo2": ({"watch": 1.2, "patch": 0.8}, 0.5, 0.03, 1.0),
    "resp_rate": ({"watch": 1.5, "patch": 0.8}, 0.5, 0.03, 1.0),
    "sbp": ({"cuff": 6.0}, (8.0, 14.0, 20.0), 0.4, 1.0),
    "dbp": ({"cuff": 4.0}, (8.0, 14.0, 20.0), 0.4, 1.0),
    "temperature": ({"thermometer": 0.15}, (8.0, 20.0), 0.4, 0.1),
    "weight": ({"scale": 0.3}, (7.0,), 0.3, 0.1),
})  # fmt: skip
_WEARABLE = ("heart_rate", "spo2", "resp_rate")
_UNITS = {"heart_rate": "/min", "spo2": "%", "resp_rate": "/min", "sbp": "mm[Hg]", "dbp": "mm[Hg]",
          "temperature": "Cel", "weight": "kg"}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class CohortConfig:
    """Settings of ``simulate_cohort`` (every random choice flows from ``seed``).

    Attributes
    ----------
    n_patients, days, seed : int, float, int
        Cohort size, monitored span (days) and the seed of ``numpy.random.default_rng``.
    fraction_deteriorating : float
        Share of patients with an injected event (the rest have none); ``kinds`` are dealt in turn, shuffled.
    onset_min_h, onset_margin_h : float
        Onsets are uniform in ``[onset_min_h, 24 * days - onset_margin_h]`` (history before, time after).
    missing, gaps_per_day, artefact, duplicate, late : float
        Rates of readings not taken, wearable gap episodes per day, wearable artefacts, duplicate sends and
        late wearable batches (per hour of data).
    late_delay_h : tuple of float
        Range of the delay of a late batch (h).
    exercise_per_day : float
        Mean number of exercise bouts per day.
    origin : str
        Start of the simulation (UTC, midnight); the frame's clock origin for every patient.
    """

    n_patients: int = 40
    days: float = 14.0
    seed: int = 0
    fraction_deteriorating: float = 0.5
    kinds: tuple[str, ...] = ("sepsis", "hypertensive", "heart_failure")
    onset_min_h: float = 72.0
    onset_margin_h: float = 36.0
    missing: float = 0.05
    gaps_per_day: float = 0.4
    artefact: float = 0.003
    duplicate: float = 0.01
    late: float = 0.03
    late_delay_h: tuple[float, float] = (1.0, 12.0)
    exercise_per_day: float = 0.8
    origin: str = "2026-01-05T00:00:00Z"

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in EFFECTS]
        if unknown:
            raise InputError(f"unknown deterioration kind(s) {unknown}; use some of {sorted(EFFECTS)}.")
        if self.n_patients < 1 or self.days * 24.0 <= self.onset_min_h + self.onset_margin_h:
            raise InputError(f"n_patients must be >= 1 and 24 * days > onset_min_h + onset_margin_h "
                             f"(got n_patients={self.n_patients}, days={self.days}, onset_min_h="
                             f"{self.onset_min_h}, onset_margin_h={self.onset_margin_h}); lengthen `days`.")
        for name in ("fraction_deteriorating", "missing", "artefact", "duplicate", "late"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name}={getattr(self, name)} must lie in [0, 1].")


@dataclass(frozen=True)
class SimulatedCohort:
    """A simulated cohort and how it was made.

    ``frame`` (canonical stream frame), ``truth`` (ground truth), ``params`` (per patient: baselines,
    amplitudes, peak hour, sleep times, device per signal) and ``config``.
    """

    frame: pd.DataFrame
    truth: pd.DataFrame
    params: pd.DataFrame
    config: CohortConfig


def _ou(rng: np.random.Generator, n: int, sd: float, tau_h: float) -> np.ndarray:
    phi = np.exp(-_GRID_H / tau_h)
    eps = rng.standard_normal(n) * sd * np.sqrt(1.0 - phi**2)
    eps[0] = rng.standard_normal() * sd  # start in the stationary law
    return lfilter([1.0], [1.0, -phi], eps)


def _obs_times(rng: np.random.Generator, spec: float | tuple[float, ...], jitter: float, span_h: float) -> np.ndarray:
    if isinstance(spec, float):
        base = np.arange(0.0, span_h, spec)
    else:
        base = np.sort(np.concatenate([np.arange(h, span_h, 24.0) for h in spec]))
    t = base + rng.normal(0.0, jitter, base.size)
    return np.sort(t[(t >= 0.0) & (t < span_h)])


def _patient(rng: np.random.Generator, cfg: CohortConfig, pid: str, event: tuple[str, float, float] | None
             ) -> tuple[list[pd.DataFrame], dict[str, object]]:
    span = cfg.days * 24.0
    grid = np.arange(0.0, span, _GRID_H)
    hour = grid % 24.0
    bed, rise = 23.0 + rng.normal(0.0, 1.0), 7.0 + rng.normal(0.0, 1.0)
    asleep = (hour >= bed) | (hour < rise) if bed < 24.0 else (hour >= bed - 24.0) & (hour < rise)
    exercise = np.zeros_like(grid)
    for day in range(int(np.ceil(cfg.days))):
        for _ in range(rng.poisson(cfg.exercise_per_day)):
            start, dur, level = day * 24.0 + rng.uniform(8.0, 21.0), rng.uniform(1 / 3, 1.0), rng.uniform(0.5, 1.0)
            after = grid - start
            bout = np.where(after < 0, 0.0, np.exp(-np.maximum(after - dur, 0.0) / 0.25))  # 15-min recovery
            exercise = np.maximum(exercise, level * bout)
    peak = 16.0 + rng.normal(0.0, 2.0)
    devices = {s: str(rng.choice(list(SCHEDULES[s][0]))) for s in SIMULATED}
    devices["dbp"] = devices["sbp"]
    us_units = rng.uniform() < 1 / 3
    gaps = [(s, s + rng.uniform(1.0, 8.0)) for s in rng.uniform(0.0, span, rng.poisson(cfg.gaps_per_day * cfg.days))]
    # late batches: an hour of wearable data (all wearable signals of that hour) arrives late_delay_h later
    late_delay = np.where(rng.uniform(size=int(np.ceil(span))) < cfg.late,
                          rng.uniform(*cfg.late_delay_h, int(np.ceil(span))), 0.0)
    params: dict[str, object] = {"patient": pid, "peak_hour": peak, "bedtime": bed % 24.0, "rise": rise,
                                 "us_units": us_units}
    frames = []
    for sig in SIMULATED:
        mean, between, amp, sleep, ou_sd, tau, ex = POPULATION[sig]
        base = mean + between * rng.standard_normal()
        a = amp * rng.uniform(0.6, 1.4)
        y = base + a * np.cos(2 * np.pi * (grid - peak) / 24.0) + sleep * asleep + _ou(rng, grid.size, ou_sd, tau)
        y = y + ex * exercise
        if event is not None and sig in EFFECTS[event[0]][1]:
            ramp_h, eff = EFFECTS[event[0]]
            y = y + event[2] * eff[sig] * np.clip((grid - event[1]) / ramp_h, 0.0, 1.0)
        params |= {f"{sig}_baseline": base, f"{sig}_amplitude": a, f"{sig}_device": devices[sig]}
        noise_by_device, spec, jitter, res = SCHEDULES[sig]
        t = _obs_times(rng, spec, jitter, span)
        t = t[rng.uniform(size=t.size) >= cfg.missing]
        if sig in _WEARABLE:
            for g0, g1 in gaps:
                t = t[(t < g0) | (t >= g1)]
        idx = np.minimum((t / _GRID_H).astype(int), grid.size - 1)
        v = y[idx] + rng.normal(0.0, noise_by_device[devices[sig]], t.size)
        if sig == "spo2":
            v = np.minimum(v, 100.0)
        if sig in _WEARABLE:  # motion artefacts, five times likelier during exercise
            p_art = cfg.artefact * (1.0 + 4.0 * (exercise[idx] > 0.1))
            art = rng.uniform(size=t.size) < p_art
            if sig == "heart_rate":
                v[art] = v[art] * rng.uniform(1.5, 2.0, art.sum())
            elif sig == "spo2":
                v[art] = v[art] - rng.uniform(8.0, 20.0, art.sum())
            impossible = art & (rng.uniform(size=t.size) < 0.1)
            v[impossible] = 0.0
        v = np.round(v / res) * res
        unit = _UNITS[sig]
        if us_units and sig == "temperature":
            v, unit = np.round((v * 9.0 / 5.0 + 32.0) * 10.0) / 10.0, "[degF]"
        elif us_units and sig == "weight":
            v, unit = np.round(v / 0.45359237 * 10.0) / 10.0, "[lb_av]"
        received = t + (rng.uniform(0.0, 0.1, t.size) if sig in _WEARABLE else 0.05)
        if sig in _WEARABLE:
            received = received + late_delay[np.minimum(np.floor(t).astype(int), late_delay.size - 1)]
        frames.append(pd.DataFrame({"patient": pid, "timestamp": t, "signal": sig, "value": v, "unit": unit,
                                    "device": devices[sig], "received": received}))
    return frames, params


def simulate_cohort(config: CohortConfig | None = None, **overrides: object) -> SimulatedCohort:
    """Simulate a cohort of monitored patients, half of them (by default) with an injected deterioration.

    Parameters
    ----------
    config : CohortConfig, optional
        All settings; ``overrides`` (e.g. ``n_patients=10, seed=3``) replace single fields.

    Returns
    -------
    SimulatedCohort
        ``frame`` (canonical stream frame, origin ``config.origin`` for every patient), ``truth`` (one row per
        patient and signal: ``onset_h`` -- NaN where the signal is not affected or the patient has no event --,
        ``kind`` -- ``"none"`` for patients without an event --, ``magnitude`` -- the full effect in the
        signal's canonical unit, 0 where unaffected), ``params`` and ``config``.

    Examples
    --------
    >>> c = simulate_cohort(n_patients=6, days=5.0, seed=2)
    >>> c.truth.groupby("patient")["kind"].first().isin(["none", "sepsis", "hypertensive", "heart_failure"]).all()
    np.True_
    >>> simulate_cohort(n_patients=6, days=5.0, seed=2).frame.equals(c.frame)
    True
    """
    cfg = dataclasses.replace(config or CohortConfig(), **overrides)  # type: ignore[arg-type]
    rng = np.random.default_rng(cfg.seed)
    n_events = round(cfg.fraction_deteriorating * cfg.n_patients)
    has_event = np.zeros(cfg.n_patients, dtype=bool)
    has_event[rng.choice(cfg.n_patients, n_events, replace=False)] = True
    kinds = iter(rng.permutation(np.resize(np.asarray(cfg.kinds), n_events)))  # kinds as balanced as n allows
    frames, params, truth = [], [], []
    for i in range(cfg.n_patients):
        pid = f"P{i + 1:03d}"
        event = None
        if has_event[i]:
            kind = str(next(kinds))
            event = (kind, float(rng.uniform(cfg.onset_min_h, cfg.days * 24.0 - cfg.onset_margin_h)),
                     float(rng.uniform(0.8, 1.2)))
        pframes, p = _patient(rng, cfg, pid, event)
        frames += pframes
        params.append(p)
        effects = EFFECTS[event[0]][1] if event else {}
        for sig in SIMULATED:
            hit = event is not None and sig in effects
            truth.append({"patient": pid, "signal": sig, "onset_h": event[1] if hit else np.nan,
                          "kind": event[0] if event else "none",
                          "magnitude": event[2] * effects[sig] if hit else 0.0})
    raw = pd.concat(frames, ignore_index=True)
    dup = raw[rng.uniform(size=len(raw)) < cfg.duplicate].copy()
    dup["received"] = dup["received"] + rng.uniform(0.0, 0.5, len(dup))
    raw = pd.concat([raw, dup]).sort_values(["patient", "timestamp", "signal"], kind="stable").reset_index(drop=True)
    origin = pd.Timestamp(cfg.origin)
    frame = read_streams(raw, origin=origin, epoch=origin, name="simulated")
    return SimulatedCohort(frame=frame, truth=pd.DataFrame(truth), params=pd.DataFrame(params), config=cfg)
