"""Changepoint posterior: brute-force enumeration, calibration on data from its own prior, step vs flat, inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from bayestwin.exceptions import InputError
from bayestwin.monitor.changepoint import (
    ChangepointPolicy,
    changepoint_alerts,
    changepoint_posterior,
    changepoint_probability,
    evidence_units,
    innovations,
)


def _brute(u: np.ndarray, has: np.ndarray, dirs: np.ndarray, window: int, min_bins: int, hazard: float,
           sigma: float, q: float) -> np.ndarray:
    """Enumerate every candidate change bin and every subset of affected signals; integrate each shift numerically."""
    n_p, n_s, n_b = u.shape
    out = np.zeros((n_p, n_b))
    for p in range(n_p):
        for t in range(n_b):
            taus = [t - k for k in range(min_bins - 1, window)]
            num = 0.0
            for tau in taus:
                bf = []
                for s in range(n_s):
                    xs = [u[p, s, b] for b in range(max(tau, 0), t + 1) if has[p, s, b]]
                    tot, n = float(np.sum(xs)), len(xs)
                    lo, hi = {1: (0.0, np.inf), -1: (-np.inf, 0.0), 0: (-np.inf, np.inf)}[int(dirs[s])]
                    w = (1.0 if dirs[s] == 0 else 2.0) / (sigma * math.sqrt(2 * math.pi))

                    def f(m: float, tot: float = tot, n: int = n, w: float = w) -> float:
                        # prior density x prod_i N(x_i - m) / N(x_i)
                        return w * math.exp(-m * m / (2 * sigma**2) + m * tot - n * m * m / 2)

                    bf.append(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-12)[0])
                for affected in itertools.product((False, True), repeat=n_s):
                    weight = np.prod([q if a else 1 - q for a in affected])
                    num += hazard * weight * np.prod([b for b, a in zip(bf, affected, strict=True) if a])
            out[p, t] = num / (1 - hazard * len(taus) + num)
    return out


def test_posterior_matches_brute_force_enumeration() -> None:
    rng = np.random.default_rng(0)
    u = rng.normal(size=(2, 3, 7))
    u[0, 0, 3:] += 2.0
    has = rng.uniform(size=u.shape) > 0.25
    dirs = np.array([1, -1, 0])
    got = changepoint_posterior(u, has, dirs, window=4, min_bins=2, hazard=0.05, sigma=0.8, p_affected=0.6)
    want = _brute(u, has, dirs, 4, 2, 0.05, 0.8, 0.6)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert want.max() > 0.5 and want.min() < 0.15  # the case is not degenerate


def test_posterior_is_calibrated_on_data_from_its_own_prior() -> None:
    """Simulated from the model (one change in the window with prior hK, shifts from their priors): E[P] = freq."""
    rng = np.random.default_rng(1)
    n, n_s, window, min_bins, h, sigma, q = 4000, 3, 12, 2, 0.03, 1.0, 0.5
    dirs = np.array([1, -1, 0])
    k = window - min_bins + 1  # candidate change bins at the last bin
    change = rng.uniform(size=n) < h * k
    tau = window - 1 - rng.integers(min_bins - 1, window, size=n)  # change bin among the candidates
    mu = np.abs(rng.normal(0, sigma, size=(n, n_s))) * np.where(dirs == 0, rng.choice([-1, 1], (n, n_s)), dirs)
    mu *= rng.uniform(size=(n, n_s)) < q
    after = np.arange(window)[None, :] >= tau[:, None]
    u = rng.normal(size=(n, n_s, window)) + (change[:, None, None] & after[:, None, :]) * mu[:, :, None]
    p = changepoint_posterior(u, np.ones(u.shape, bool), dirs, window=window, min_bins=min_bins, hazard=h,
                              sigma=sigma, p_affected=q)[:, -1]
    # E[P(change | data)] = P(change); within bins of P, the frequency of changes matches the mean P
    se = np.sqrt(p.var() / n + change.var() / n)
    assert abs(p.mean() - change.mean()) < 4 * se
    for lo, hi in ((0.0, 0.2), (0.2, 0.8), (0.8, 1.0)):
        sel = (p >= lo) & (p < hi)
        assert sel.sum() > 100
        freq = change[sel].mean()
        assert abs(freq - p[sel].mean()) < 4 * np.sqrt(freq * (1 - freq) / sel.sum()) + 1e-3


def _table(t: np.ndarray, z: np.ndarray, signal: str = "heart_rate", patient: str = "A") -> pd.DataFrame:
    """Score rows whose tail_prob / side encode the innovations `z` exactly."""
    return pd.DataFrame({"patient": patient, "signal": signal, "kind": "drift", "time_h": t,
                         "tail_prob": 2 * stats.norm.sf(np.abs(z)), "value": z, "pred_mean": 0.0})


def test_step_change_is_detected_and_flat_series_is_not() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(48.0, 240.0, 1.0 / 6.0)  # heart rate every 10 min for 8 days
    flat = rng.normal(size=t.size)
    step = flat + np.where(t >= 150.0, 0.6, 0.0)  # a modest persistent shift of the innovations
    policy = ChangepointPolicy(level=0.9, window_h=48.0)
    pf = changepoint_probability(_table(t, flat), policy, start_h=48.0)
    ps = changepoint_probability(_table(t, step), policy, start_h=48.0)
    assert pf["probability"].max() < 0.5
    before, after = ps[ps["time_h"] <= 150.0], ps[ps["time_h"] >= 160.0]
    assert before["probability"].max() < 0.5 and after["probability"].min() > 0.99
    alerts = changepoint_alerts(_table(t, step), policy)
    assert len(alerts) == 1 and 150.0 < alerts["time_h"].iloc[0] <= 160.0
    assert alerts["drivers"].iloc[0] == "heart_rate" and alerts["kind"].iloc[0] == "changepoint"
    # a shift against the deterioration side (heart rate down) is not evidence of deterioration
    down = changepoint_probability(_table(t, flat - np.where(t >= 150.0, 0.6, 0.0)), policy, start_h=48.0)
    assert down["probability"].max() < 0.5


def test_one_burst_counts_as_one_clipped_unit() -> None:
    """A 40-min exercise bout: six huge innovations in one bin, then nothing: no alert at 0.9."""
    rng = np.random.default_rng(3)
    t = np.arange(48.0, 120.0, 1.0 / 6.0)
    z = rng.normal(size=t.size) * 0.5
    z[(t >= 80.0) & (t < 80.7)] = 6.0
    p = changepoint_probability(_table(t, z), ChangepointPolicy(window_h=24.0, min_h=2.0), start_h=48.0)
    assert p["probability"].max() < 0.9
    _, _, u, has, _ = evidence_units(innovations(_table(t, z)), ["heart_rate"], start_h=48.0)
    assert u.max() == pytest.approx(3.0) and has.all()


def test_inputs_are_checked() -> None:
    with pytest.raises(InputError, match="lacks columns"):
        innovations(pd.DataFrame({"patient": ["A"], "signal": ["hr"], "time_h": [1.0]}))
    with pytest.raises(InputError, match="min_h"):
        ChangepointPolicy(window_h=2.0, min_h=3.0)
    with pytest.raises(InputError, match="hazard"):
        ChangepointPolicy(hazard=0.1, window_h=72.0)
    with pytest.raises(InputError, match="directions"):
        ChangepointPolicy(directions={"heart_rate": 2})
    with pytest.raises(InputError, match="before start_h"):
        evidence_units(pd.DataFrame({"patient": "A", "signal": "hr", "time_h": [1.0], "z": [0.0]}), ["hr"],
                       start_h=2.0)
