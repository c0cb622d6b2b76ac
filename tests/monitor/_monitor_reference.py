"""The monitoring twin's scoring as it was before the end-to-end speed-up (issue 8): the reference of
``test_monitor_fastpath.py``. Copied verbatim (per-patient loops, eager JAX calls, the crossing Monte Carlo
with one random key per observation: ``crossing_grid_reference``); do not optimise.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayestwin.dynamics.events import bucket_size
from bayestwin.monitor.kalman import FilterOutput, FilterState, OUParams, seasonal
from bayestwin.monitor.model import circadian_offset
from bayestwin.monitor.scoring import Crossing, Drift, _interval, _smoothed
from bayestwin.monitor.signals import crossing_probability_draws, level_change_probability, surprise
from bayestwin.monitor.twin import _keep, _usable


@functools.partial(jax.jit, static_argnames=("horizon", "step", "n_paths"))
def crossing_grid_reference(p: OUParams, out: FilterOutput, t: jax.Array, key: jax.Array, *, threshold: float,
                            above: bool, horizon: float, step: float, n_paths: int) -> jax.Array:
    """The previous ``scoring.crossing_grid``: one random key (and fresh normals) per observation."""
    n_pat, n_obs = t.shape
    keys = jax.random.split(key, n_pat * n_obs).reshape(n_pat, n_obs, -1)

    def patient(args: tuple) -> jax.Array:  # type: ignore[type-arg]
        pi, fm, fv, ti, ki = args

        def obs(fm_k: jax.Array, fv_k: jax.Array, t_k: jax.Array, k: jax.Array) -> jax.Array:
            state = FilterState(fm_k, fv_k, jnp.broadcast_to(t_k, fm_k.shape))
            return crossing_probability_draws(pi, state, k, t0=t_k, threshold=threshold, above=above,
                                              horizon=horizon, step=step, n_paths=n_paths)

        return jax.vmap(obs, in_axes=(1, 1, 0, 0))(fm, fv, ti, ki)

    return jax.lax.map(patient, (p, out.filt_mean, out.filt_var, t, keys))


def score_arrays_reference(signal: str, patients: Sequence[str], p: OUParams, out: FilterOutput, t: np.ndarray,
                 y: np.ndarray, mask: np.ndarray, offsets: Sequence[float], *, emit: np.ndarray | None = None,
                 time_h: np.ndarray | None = None, crossings: Sequence[Crossing] = (), drifts: Sequence[Drift] = (),
                 key: jax.Array | None = None, step_h: float = 0.5, n_paths: int = 16,
                 surprise_rows: bool = False, bands: bool = False) -> pd.DataFrame:
    """The long score table of one signal (see the module docstring); `bands` (added later) is ignored.

    `t` is the model clock (``time_h`` + the patient's circadian `offsets`); ``time_h`` in the table is
    the stream's (`time_h`, default ``t - offsets``). Rows with `mask` True are the data (history for the
    drift windows); rows with `emit` True (default: `mask`) are scored and returned -- the crossing
    probability, the costly part, is computed for these rows only (online: the new observations).

    """
    key = jax.random.PRNGKey(0) if key is None else key
    pn = OUParams(*(np.asarray(v) for v in p))
    tail, log_score = (np.asarray(a) for a in surprise(jnp.asarray(y), jnp.moveaxis(out.pred_mean, 1, -1),
                                                         jnp.moveaxis(out.pred_var, 1, -1)))
    fm, fv = np.asarray(out.filt_mean), np.asarray(out.filt_var)  # (patient, draw, obs)
    expected = np.asarray(seasonal(OUParams(*(np.asarray(v)[..., None] for v in pn[:5]), noise=pn.noise),
                                   jnp.asarray(t)[:, None, :]))  # (patient, draw, obs)
    base_now = expected.mean(axis=1)
    now = (expected + fm).mean(axis=1)
    offsets = np.asarray(offsets, float)[:, None]
    time_h = t - offsets if time_h is None else np.asarray(time_h, float)
    emit = mask if emit is None else emit & mask
    rows = []

    def table(kind: str, prob: np.ndarray, lo: np.ndarray, hi: np.ndarray, horizon: float,
              start: np.ndarray) -> pd.DataFrame:
        i, k = np.nonzero(emit)
        return pd.DataFrame({"patient": np.asarray(patients, dtype=object)[i], "signal": signal, "kind": kind,
                             "time_h": time_h[i, k], "probability": prob[i, k], "lower": lo[i, k], "upper": hi[i, k],
                             "baseline": base_now[i, k], "now": now[i, k], "value": y[i, k], "tail_prob": tail[i, k],
                             "log_score": log_score[i, k], "horizon_h": horizon, "window_start_h": start[i, k]})

    first = np.where(mask.any(axis=1), time_h[:, 0], np.nan)[:, None] * np.ones_like(time_h)
    for c in crossings:
        if c.signal != signal:
            continue
        # gather the emitted rows left-aligned (padded to a size bucket: one compilation per bucket)
        counts = emit.sum(axis=1)
        width = bucket_size(int(counts.max()))
        idx = np.zeros((t.shape[0], width), int)
        for i in range(t.shape[0]):
            e = np.flatnonzero(emit[i])
            idx[i, :e.size], idx[i, e.size:] = e, (e[-1] if e.size else 0)
        sub = FilterOutput(*(np.take_along_axis(np.asarray(a), idx[:, None, :], axis=2) for a in out))
        t_sub = jnp.asarray(np.take_along_axis(t, idx, axis=1))
        per_sub = np.asarray(crossing_grid_reference(p, sub, t_sub, key, threshold=float(c.threshold), above=c.above,
                                           horizon=float(c.horizon_h), step=step_h, n_paths=n_paths))
        per = np.full((*t.shape, per_sub.shape[-1]), np.nan)
        for i in range(t.shape[0]):
            per[i, idx[i, :counts[i]]] = per_sub[i, :counts[i]]
        rows.append(table("crossing", *_interval(per), c.horizon_h, first))
    for d in drifts:
        if d.signal != signal:
            continue
        prob, lo, hi = (np.full(t.shape, np.nan) for _ in range(3))
        start = np.full(t.shape, np.nan)
        for i in range(t.shape[0]):
            n = int(mask[i].sum())
            if n == 0:
                continue
            ti = t[i, :n]
            sm, sv = _smoothed(ti, fm[i, :, :n].T, fv[i, :, :n].T, d.smooth_h)  # (obs, draw)
            j = np.searchsorted(ti, ti - d.window_h, side="right") - 1
            ok = j >= 0
            if not ok.any():
                continue
            per = np.asarray(level_change_probability(sm[ok], sv[ok], sm[j[ok]], sv[j[ok]], d.delta))
            idx = np.flatnonzero(ok)
            prob[i, idx], lo[i, idx], hi[i, idx] = _interval(per)
            start[i, idx] = ti[j[ok]] - offsets[i, 0]
        rows.append(table("drift", prob, lo, hi, d.window_h, start))
    if surprise_rows:
        rows.append(table("surprise", 1.0 - tail, 1.0 - tail, 1.0 - tail, 0.0, time_h))
    if not rows:
        return table("surprise", 1.0 - tail, 1.0 - tail, 1.0 - tail, 0.0, time_h).iloc[:0]
    return pd.concat(rows, ignore_index=True)


def with_history_reference(self: Any, sig: str, st: Any, out: FilterOutput, t: np.ndarray, y: np.ndarray,
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


def observe_reference(self: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """Filter and score new canonical rows (usable ones); return the alerts they raise (alert table rows).

    Rows of signals the twin does not model are ignored. Patients not seen before start from the
    population. The whole batch of a signal is one compiled call (patients x padded rows).
    """
    self._check()
    before = self.alerts()
    new = _usable(rows)
    self.offsets_ |= {p: o for p, o in circadian_offset(new).items() if p not in self.offsets_}
    for sig, st in self.states_.items():
        batch = new[new["signal"] == sig]
        if batch.empty:
            continue
        self._observe_signal(sig, st, batch)
    after = self.alerts()
    if before.empty:
        return after
    key = ["patient", "signal", "kind", "time_h"]
    merged = after.merge(before[key], on=key, how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge").reset_index(drop=True)
