"""MonitorTwin: fit the state-space model on history, filter new observations online, raise alerts.

``MonitorTwin(...).fit(history)`` fits one hierarchical model per signal (``model.fit_signal``, NUTS,
convergence gate) and filters each patient's history to its current state. ``observe(rows)`` runs the
O(1)-per-observation Kalman update for the new rows of every patient at once (``kalman.filter_cohort``,
vmapped over patients and posterior draws, padded to size buckets: a batch of the same padded size does
not recompile), scores them (``scoring``) and returns the alerts they raise. A patient the fit has not
seen starts from the population. A row earlier than its patient's latest filtered time (late arrival,
out of order) makes the twin refilter that patient's signal from its whole history, so the state and
scores are those of time order. Alerts follow from the complete score history by the same hysteresis
and de-duplication as offline (``alerts.alerts_from_scores``).

Examples
--------
>>> MonitorTwin(signals=("heart_rate",))
MonitorTwin(signals=('heart_rate',)) -- not fitted; call .fit(history)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayestwin.diagnostics import ConvergenceGate
from bayestwin.dynamics.events import bucket_size
from bayestwin.exceptions import InputError, NotFittedError
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.monitor.alerts import Alert, AlertPolicy, advance_alerts, alerts_from_scores
from bayestwin.monitor.detector import PatientPolicy, patient_alerts
from bayestwin.monitor.kalman import FilterOutput, FilterState, OUParams, filter_cohort, initial_state
from bayestwin.monitor.model import SignalFit, circadian_offset, fit_signal, signal_arrays
from bayestwin.monitor.particle import Measurement, ParticleState, initial_particles, particle_filter_cohort
from bayestwin.monitor.scoring import DEFAULT_CROSSINGS, DEFAULT_DRIFTS, Crossing, Drift, score_arrays

__all__ = ["MonitorTwin"]

log = logging.getLogger(__name__)


@dataclass
class _SignalState:
    fit: SignalFit
    patients: list[str]
    params: OUParams
    parts: list[pd.DataFrame]  # usable rows seen so far (canonical columns), one frame per batch
    state: FilterState | ParticleState | None = None  # (slot, draw[, particle])
    filtered: dict[str, list[np.ndarray]] = field(default_factory=dict)  # per patient: last window's outputs
    last_time: dict[str, float] = field(default_factory=dict)  # per patient: latest time_h filtered
    unit: str = ""

    @property
    def history(self) -> pd.DataFrame:
        """Every usable row seen so far, in time order per patient (concatenated when asked: late rows)."""
        if len(self.parts) != 1:
            self.parts = [pd.concat(self.parts).sort_values(["patient", "time_h"], kind="stable")]
        return self.parts[0]

    @history.setter
    def history(self, frame: pd.DataFrame) -> None:
        self.parts = [frame]


def _keep(t: np.ndarray, t_ref: float, window: float, smooth: float) -> np.ndarray:
    """Rows a drift at `t_ref` needs: from the last one at or before ``t_ref - window``, less `smooth` hours."""
    j = int(np.searchsorted(t, t_ref - window, side="right")) - 1
    return np.ones(t.size, bool) if j < 0 else t >= t[j] - smooth


def _usable(frame: pd.DataFrame) -> pd.DataFrame:
    """The usable rows, without ``attrs``.

    pandas deep-copies ``attrs`` on every operation: with a stream origin per patient that copy cost more
    than the whole filter.
    """
    out = frame[frame["status"] == "ok"] if "status" in frame.columns else frame.copy(deep=False)
    out.attrs = {}
    return out


class MonitorTwin:
    """Remote-monitoring twin of a cohort: one state-space model per signal, online filter, alerts.

    Parameters
    ----------
    signals : sequence of str, optional
        Signals to model (default: every signal in the history passed to ``fit``).
    crossings, drifts : sequences of ``Crossing`` / ``Drift``
        Alert signals (default ``scoring.DEFAULT_CROSSINGS`` -- the fixed rule's thresholds -- and
        ``DEFAULT_DRIFTS``).
    policy : AlertPolicy or dict of kind -> AlertPolicy
        Hysteresis and de-duplication (default: raise at 0.8, clear below 0.4, 12 h).
    sampler, gate :
        NUTS settings and convergence gate of the fits.
    n_draws, n_paths, step_h :
        Posterior draws carried by the filter, Monte Carlo paths per draw and grid step (h) of the
        crossing probability.
    filter : {"kalman", "particle"}
        ``"kalman"`` (default): the exact Gaussian filter. ``"particle"``: ``monitor.particle`` with the
        robust measurement model of each signal (`measurement`; default Student-t ``nu = 4`` for every
        signal, SpO2 censored at 100 %), `n_particles` per (patient, draw). The static parameters are those
        of the Gaussian fit; the scores read the particle filter's predictive and filtered mean and
        variance (surprise and crossing then use their Gaussian moments: an approximation of the
        particle posterior, exact in the Gaussian limit).
    bands : bool
        Score each reading's 90 % predictive interval too (``pred_lower``, ``pred_upper``; for
        ``plotting.plot_monitor`` and ``bayestwin monitor replay``). Off by default: the exact mixture
        quantiles cost more than the rest of the scoring (see ``scoring.score_arrays``).
    """

    def __init__(self, signals: Sequence[str] | None = None, *, crossings: Sequence[Crossing] = DEFAULT_CROSSINGS,
                 drifts: Sequence[Drift] = DEFAULT_DRIFTS, policy: AlertPolicy | dict[str, AlertPolicy] | None = None,
                 sampler: SamplerConfig | None = None, gate: ConvergenceGate | None = None, n_draws: int = 32,
                 n_paths: int = 16, step_h: float = 0.5, seed: int = 0, filter: str = "kalman",
                 measurement: dict[str, Measurement] | None = None, n_particles: int = 128,
                 bands: bool = False) -> None:
        if filter not in ("kalman", "particle"):
            raise InputError(f"MonitorTwin: filter={filter!r}; use 'kalman' (exact, Gaussian) or 'particle' "
                             "(Student-t noise, SpO2 censoring)")
        self.signals = None if signals is None else tuple(signals)
        self.crossings = tuple(crossings)
        self.drifts = tuple(drifts)
        self.policy = policy if policy is not None else AlertPolicy(0.8, 0.4, 12.0)
        self.sampler = sampler
        self.gate = gate
        self.n_draws = n_draws
        self.n_paths = n_paths
        self.step_h = step_h
        self.seed = seed
        self.filter = filter
        self.measurement = {"spo2": Measurement(nu=4.0, upper=100.0)} | dict(measurement or {})
        self.n_particles = n_particles
        self.bands = bands

    @property
    def scores_(self) -> pd.DataFrame:
        """Every score row so far (unsorted; ``scores()`` sorts), concatenated from the batches when asked."""
        if len(self._score_parts) != 1:
            self._score_parts = [pd.concat(self._score_parts, ignore_index=True) if self._score_parts
                                 else pd.DataFrame()]
        return self._score_parts[0]

    @scores_.setter
    def scores_(self, table: pd.DataFrame) -> None:
        self._score_parts = [table]
        self._n_scores = len(table)

    def __repr__(self) -> str:
        head = f"MonitorTwin(signals={self.signals!r})"
        if not hasattr(self, "states_"):
            return head + " -- not fitted; call .fit(history)"
        gates = ", ".join(f"{s}: {'OK' if st.fit.ok else 'FAILED'}" for s, st in self.states_.items())
        return f"{head} -- fitted ({gates}); {len(self.scores_)} scored rows, {len(self.alerts())} alerts"

    # ------------------------------------------------------------------ fitting
    def fit(self, history: pd.DataFrame, fits: dict[str, SignalFit] | None = None) -> MonitorTwin:
        """Fit each signal's model on `history` (canonical stream frame), then score the history.

        `fits` reuses already fitted ``SignalFit`` objects (no sampling for those signals).
        """
        usable = _usable(history)
        signals = self.signals or tuple(sorted(usable["signal"].unique()))
        fits = dict(fits or {})
        self.states_: dict[str, _SignalState] = {}
        self.offsets_: dict[str, float] = circadian_offset(usable)
        self.scores_ = pd.DataFrame()
        self._new_scores: list[pd.DataFrame] = []  # this observe() call's score tables
        self._late = False  # this observe() call refiltered late rows
        self._alert_parts: list[pd.DataFrame] = []  # the alerts raised so far (policy self._alert_policy)
        self._alert_state: dict[tuple[str, str, str], tuple[bool, float]] = {}
        for sig in signals:
            fit = fits.get(sig) or fit_signal(usable, sig, sampler=self.sampler, gate=self.gate)
            self.states_[sig] = _SignalState(fit, [], fit.params([], self.n_draws), [usable.iloc[:0]])
        self.observe(usable)
        return self

    @property
    def fits_(self) -> dict[str, SignalFit]:
        """The fitted model of each signal."""
        self._check()
        return {s: st.fit for s, st in self.states_.items()}

    def _check(self) -> None:
        if not hasattr(self, "states_"):
            raise NotFittedError("MonitorTwin is not fitted; call .fit(history) first")

    # ------------------------------------------------------------------ online
    def observe(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Filter and score new canonical rows (usable ones); return the alerts they raise (alert table rows).

        Rows of signals the twin does not model are ignored. Patients not seen before start from the
        population. The whole batch of a signal is one compiled call (patients x padded rows).
        """
        self._check()
        new = _usable(rows)
        self.offsets_ |= {p: o for p, o in circadian_offset(new).items() if p not in self.offsets_}
        fresh = getattr(self, "_alert_policy", None) is self.policy  # the hysteresis state is this policy's
        before = None if fresh else self.alerts()
        self._new_scores, self._late = [], False
        for sig, st in self.states_.items():
            batch = new[new["signal"] == sig]
            if batch.empty:
                continue
            self._observe_signal(sig, st, batch)
        if fresh and not self._late:  # continue each series' hysteresis with the new scores only
            added = [s for s in self._new_scores if len(s)]
            table = pd.concat(added, ignore_index=True) if added else self.scores_.iloc[:0]
            raised = advance_alerts(table, self.policy, self._alert_state) if len(table) else self.alerts().iloc[:0]
            self._alert_parts.append(raised)
            return raised
        # refiltered (late rows) or a new policy: all alerts from the whole score history, report the new ones
        if before is None:
            before = pd.concat(self._alert_parts, ignore_index=True)
        self._alert_state = {}
        after = advance_alerts(self.scores_, self.policy, self._alert_state) if len(self.scores_) else self.alerts()
        self._alert_policy = self.policy
        self._alert_parts = [after]
        if before.empty:
            return after.copy()
        key = ["patient", "signal", "kind", "time_h", *(["threshold"] if "threshold" in before else [])]
        merged = after.merge(before[key], on=key, how="left", indicator=True)
        return merged[merged["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)

    def _observe_signal(self, sig: str, st: _SignalState, batch: pd.DataFrame) -> None:
        fit = st.fit
        patients = sorted(map(str, batch["patient"].unique()))
        last = st.last_time
        grouped = batch["time_h"].groupby(batch["patient"].astype(str))
        first_new, last_new = grouped.min(), grouped.max()
        late = [p for p in patients if p in last and first_new[p] < last[p]]
        st.parts.append(batch)
        for p, v in last_new.items():
            last[p] = max(v, last.get(p, -np.inf))
        if not st.unit and "unit" in batch.columns:
            st.unit = str(batch["unit"].iloc[0])
        for p in patients:
            if p not in st.patients:
                st.patients.append(p)
        capacity = bucket_size(len(st.patients), minimum=4)
        names = st.patients + [f"__pad{i}" for i in range(capacity - len(st.patients))]
        if st.params.rate.shape[0] != capacity:  # a new capacity bucket: parameters for every slot
            st.params = fit.params(names, self.n_draws, seed=self.seed)
            old = st.state
            state = self._initial(st.params, capacity)
            if old is not None:
                n = old.time.shape[0]
                state = type(state)(*(np.concatenate([np.asarray(o), np.asarray(s)[n:]]) for o, s in zip(old, state,
                                                                                                          strict=True)))
            st.state = state
        state = st.state
        if late:  # refilter the late patients from their whole history: reset their state, replay all rows
            self._late = True
            log.info("signal %s: late rows for %s; refiltering their history", sig, late)
            fresh = self._initial(st.params, capacity + self._n_scores)  # new random numbers (particles)
            reset = np.isin(names, late)
            state = type(state)(*(np.where(reset.reshape(-1, *[1] * (np.ndim(s) - 1)), np.asarray(f), np.asarray(s))
                                  for f, s in zip(fresh, state, strict=True)))
            if len(self.scores_):
                drop = (self.scores_["signal"] == sig) & self.scores_["patient"].isin(late)
                self.scores_ = self.scores_[~drop]
            replay = st.history[st.history["patient"].astype(str).isin(late)]
            batch = pd.concat([batch[~batch["patient"].astype(str).isin(late)], replay])
        if late:
            for p in late:
                st.filtered.pop(p, None)
        work = batch.assign(patient=batch["patient"].astype(str)).drop(columns="timestamp", errors="ignore")
        data = signal_arrays(work, sig, devices=fit.devices, center=fit.center, scale=fit.scale)
        slot = {p: i for i, p in enumerate(names)}
        rows = [slot[p] for p in data.patients]
        offsets = np.array([self.offsets_.get(n, 0.0) for n in names])
        t = np.repeat(np.asarray(state.time)[:, :1], data.t.shape[1], axis=1)
        y, dev, mask = np.zeros_like(t), np.zeros(t.shape, np.int64), np.zeros(t.shape, bool)
        t[rows] = data.t + offsets[rows, None]
        y[rows], dev[rows], mask[rows] = data.y, data.dev, data.mask
        if self.filter == "particle":
            new_state, pout = particle_filter_cohort(st.params, self.measurement.get(sig, Measurement()), t, y, dev,
                                                     mask, jax.random.key(0), n_particles=self.n_particles,
                                                     state=state)
            out = FilterOutput(pout.pred_mean, pout.pred_var, pout.filt_mean, pout.filt_var, pout.loglik)
        else:
            new_state, out = filter_cohort(st.params, t, y, dev, mask, state)
        st.state = new_state
        hist_out, hist_t, hist_y, hist_time, hist_mask, emit = self._with_history(sig, st, out, t, y, mask, names,
                                                                                  offsets)
        key = jax.random.fold_in(jax.random.PRNGKey(self.seed), self._n_scores)
        scores = score_arrays(sig, names, st.params, hist_out, hist_t, hist_y, hist_mask, offsets, emit=emit,
                              time_h=hist_time, crossings=self.crossings, drifts=self.drifts, key=key,
                              step_h=self.step_h, n_paths=self.n_paths, bands=self.bands)
        self._score_parts.append(scores)
        self._n_scores += len(scores)
        self._new_scores.append(scores)

    def _initial(self, p: OUParams, salt: int) -> FilterState | ParticleState:
        """Every slot's state before any observation: stationary N(0, sd^2), or particles drawn from it."""
        if self.filter == "kalman":
            return initial_state(p)
        keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(self.seed), salt), p.sd.shape)
        n = self.n_particles
        return jax.vmap(jax.vmap(lambda sd, k: initial_particles(OUParams(0.0, 0.0, 0.0, 1.0, sd, None), k, n)))(
            jnp.asarray(p.sd), keys)

    def _with_history(self, sig: str, st: _SignalState, out: FilterOutput, t: np.ndarray, y: np.ndarray,
                      mask: np.ndarray, names: list[str], offsets: np.ndarray) -> tuple[Any, ...]:
        """Prepend each patient's stored filter outputs (the last drift window's worth) to this batch's."""
        window = max([d.window_h for d in self.drifts if d.signal == sig], default=0.0)
        smooth = max([d.smooth_h for d in self.drifts if d.signal == sig], default=0.0)
        parts, new_counts = [], []
        for i, name in enumerate(names):
            k = int(mask[i].sum())
            cur = [np.asarray(a)[i, :, :k] for a in out] + [t[i, :k], y[i, :k]]
            prev = st.filtered.get(name)
            if prev is not None:
                cur = [np.concatenate([a, b], axis=-1) for a, b in zip(prev, cur, strict=True)]
            if k:  # score with what the drift windows of this batch need; store what the next batch needs
                cur = [a[..., _keep(cur[5], cur[5][cur[5].size - k], window, smooth)] for a in cur]
                st.filtered[name] = [a[..., _keep(cur[5], cur[5][-1], window, smooth)] for a in cur]
            parts.append(cur)
            new_counts.append(k)
        n = bucket_size(max(p[5].size for p in parts))
        arrays = [np.zeros((len(names), self.n_draws, n)) for _ in range(5)]
        tt, yy = np.zeros((len(names), n)), np.zeros((len(names), n))
        mm, emit = np.zeros((len(names), n), bool), np.zeros((len(names), n), bool)
        for i, p in enumerate(parts):
            k = p[5].size
            for a, src in zip(arrays, p[:5], strict=True):
                a[i, :, :k] = src
            tt[i, :k], tt[i, k:], yy[i, :k], mm[i, :k] = p[5], (p[5][-1] if k else 0.0), p[6], True
            emit[i, k - new_counts[i]:k] = True
        return FilterOutput(*arrays), tt, yy, tt - offsets[:, None], mm, emit

    # ------------------------------------------------------------------ outputs
    def scores(self) -> pd.DataFrame:
        """Every scored observation and kind so far (the long score table of ``scoring``)."""
        self._check()
        return self.scores_.sort_values(["patient", "signal", "kind", "time_h"], kind="stable").reset_index(drop=True)

    def alerts(self, policy: AlertPolicy | dict[str, AlertPolicy] | None = None) -> pd.DataFrame:
        """The alert table (patient, signal, kind, time_h, probability, ...) from all scores so far."""
        self._check()
        if self.scores_.empty:
            return pd.DataFrame(columns=["patient", "signal", "kind", "time_h", "probability"])
        return alerts_from_scores(self.scores_, self.policy if policy is None else policy)

    def patient_alerts(self, policy: PatientPolicy) -> pd.DataFrame:
        """One combined alert stream per patient from all scores so far (``detector.patient_alerts``)."""
        self._check()
        if self.scores_.empty:
            return pd.DataFrame(columns=["patient", "signal", "kind", "time_h", "probability", "level", "drivers"])
        return patient_alerts(self.scores_, policy)

    def alert_records(self, policy: AlertPolicy | dict[str, AlertPolicy] | None = None) -> list[Alert]:
        """The alerts as JSON-serialisable ``Alert`` records with a one-line explanation each."""
        table = self.alerts(policy)
        units = {s: st.unit for s, st in self.states_.items()}
        records = []
        for _, r in table.iterrows():
            st = self.states_[r["signal"]]
            unit = units[r["signal"]]
            what = self._describe(r["signal"], r["kind"], unit, r.get("threshold", float("nan")))
            gate = "" if st.fit.ok else " [model FAILED its convergence gate]"
            text = (f"{r['signal']}: P({what}) = {r['probability']:.2f} (90 % {r['lower']:.2f}-{r['upper']:.2f}); "
                    f"expected {r['baseline']:.4g} {unit}, now {r['now']:.4g} {unit} (last value {r['value']:.4g})"
                    f"{gate}")
            level = r["level"] if "level" in r else float("nan")
            records.append(Alert(patient=str(r["patient"]), signal=r["signal"], kind=r["kind"],
                                 time_h=float(r["time_h"]), probability=float(r["probability"]),
                                 lower=float(r["lower"]), upper=float(r["upper"]), level=float(level),
                                 baseline=float(r["baseline"]), now=float(r["now"]), unit=unit,
                                 horizon_h=float(r["horizon_h"]), window_start_h=float(r["window_start_h"]),
                                 window_end_h=float(r["time_h"]), fit_ok=bool(st.fit.ok), explanation=text,
                                 details={"value": float(r["value"]), "tail_prob": float(r["tail_prob"])}))
        return records

    def _describe(self, signal: str, kind: str, unit: str, threshold: float = float("nan")) -> str:
        items: list[Any] = list(self.crossings if kind == "crossing" else self.drifts)
        match = [c for c in items if c.signal == signal
                 and (kind != "crossing" or np.isnan(threshold) or c.threshold == threshold)]
        return match[0].describe(unit) if match else kind
