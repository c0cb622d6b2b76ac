"""Small synthetic streams drawn from the monitoring model itself (exact OU transitions), for the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayestwin.monitor.kalman import OUParams


def simulate_patient(p: OUParams, t: np.ndarray, dev: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values of one series with scalar parameters `p` at times `t` (hours) measured by devices `dev`."""
    x = rng.normal(0.0, p.sd)
    out = np.empty(len(t))
    last = t[0]
    for k, tk in enumerate(t):
        phi = np.exp(-p.rate * (tk - last))
        x = phi * x + rng.normal(0.0, p.sd * np.sqrt(1.0 - phi**2))
        last = tk
        mean = p.baseline + p.cos * np.cos(2 * np.pi * tk / 24) + p.sin * np.sin(2 * np.pi * tk / 24)
        out[k] = mean + x + rng.normal(0.0, p.noise[dev[k]])
    return out


def cohort_frame(params: list[OUParams], n_obs: int, *, signal: str = "heart_rate", seed: int = 0,
                 devices: tuple[str, ...] = ("watch", "cuff")) -> pd.DataFrame:
    """Canonical-stream-like frame: irregular times (exponential gaps, mean 1 h), random device per row."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, p in enumerate(params):
        t = np.cumsum(rng.exponential(1.0, n_obs))
        dev = rng.integers(0, len(devices), n_obs)
        y = simulate_patient(p, t, dev, rng)
        rows.append(pd.DataFrame({"patient": f"P{i:03d}", "signal": signal, "time_h": t, "value": y,
                                  "device": np.asarray(devices)[dev], "status": "ok"}))
    return pd.concat(rows, ignore_index=True)
