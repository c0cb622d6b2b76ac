"""Real recordings as canonical streams: beat-to-beat RR intervals -> a per-minute heart-rate stream.

The bundled ``hr_nsrdb`` file (``bayestwin.data.dataset_path("hr_nsrdb")``; provenance in
``datasets/PROVENANCE.md``) holds NN intervals of two ambulatory ECG series of the MIT-BIH Normal Sinus
Rhythm Database (via pyhrv 0.5.0): ``nsrdb_long`` (60 min, 4,684 beats) and ``nsrdb_short`` (5 min, 337
beats). ``heart_rate_from_rr`` turns beats into one heart rate per bin (60000 / mean RR of the beats ending
in the bin, so every beat counts once); ``rr_artefacts`` lists beats whose interval differs from the
previous one by more than 20 % (ectopic or missed beats, which the source did not remove) -- reported, never
filtered out.

Examples
--------
>>> hr = load_nsrdb_heart_rate()
>>> hr.groupby("patient").size().to_dict()
{'nsrdb_long': 60, 'nsrdb_short': 5}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayestwin.data.datasets import dataset_path
from bayestwin.exceptions import InputError
from bayestwin.monitor.streams import DEFAULT_EPOCH, read_streams

__all__ = ["heart_rate_from_rr", "load_nsrdb_heart_rate", "load_nsrdb_rr", "rr_artefacts"]


def load_nsrdb_rr(path: str | Path | None = None) -> pd.DataFrame:
    """The bundled NSRDB RR intervals: ``subject``, ``time_s`` (end of the interval), ``rr_ms``.

    Raises
    ------
    InputError
        If a ``time_s`` or ``rr_ms`` is not a positive number (naming the file line and subject).

    Examples
    --------
    >>> load_nsrdb_rr().groupby("subject").size().to_dict()
    {'nsrdb_long': 4684, 'nsrdb_short': 337}
    """
    src = Path(path) if path is not None else dataset_path("hr_nsrdb")
    raw = pd.read_csv(src, dtype=str, keep_default_na=False)
    raw.index = raw.index + 2  # line in the file, header = line 1
    for col in ("time_s", "rr_ms"):
        values = pd.to_numeric(raw[col], errors="coerce")
        bad = raw.index[~(values > 0)]
        if len(bad):
            rows = "; ".join(f"line {i} (subject {raw.at[i, 'subject']}): {raw.at[i, col]!r}" for i in bad[:10])
            raise InputError(f"{len(bad)} row(s) of column {col} in {src.name!r} are not a positive number: {rows}.")
        raw[col] = values.astype(float)
    return raw.reset_index(drop=True)


def rr_artefacts(rr: pd.DataFrame, *, threshold: float = 0.2) -> pd.DataFrame:
    """Beats whose RR interval differs from the previous beat's by more than ``threshold`` (relative).

    Examples
    --------
    >>> rr = pd.DataFrame({"subject": "s", "time_s": [0.8, 1.6, 2.0, 3.0], "rr_ms": [800.0, 800.0, 400.0, 1000.0]})
    >>> rr_artefacts(rr)[["time_s", "change"]].values.tolist()
    [[2.0, -0.5], [3.0, 1.5]]
    """
    prev = rr.groupby("subject", sort=False)["rr_ms"].shift(1)
    change = rr["rr_ms"] / prev - 1.0
    out = rr.assign(change=change)
    return out[change.abs() > threshold].reset_index(drop=True)


def heart_rate_from_rr(
    rr: pd.DataFrame, *, bin_s: float = 60.0, origin: pd.Timestamp = DEFAULT_EPOCH, device: str = "holter_ecg"
) -> pd.DataFrame:
    """A canonical heart-rate stream, one value per ``bin_s`` of beats: 60000 / mean RR (ms) in the bin.

    Each subject becomes a patient whose clock starts at ``origin``; the value's time is the bin's midpoint.
    Bins without a beat give no row (a gap, not a zero).

    Examples
    --------
    >>> rr = pd.DataFrame({"subject": "s", "time_s": [0.5, 1.5, 61.0], "rr_ms": [500.0, 1000.0, 1000.0]})
    >>> heart_rate_from_rr(rr)[["time_h", "value"]].round(4).values.tolist()
    [[0.0083, 80.0], [0.025, 60.0]]
    """
    if bin_s <= 0:
        raise InputError(f"bin_s={bin_s} must be a positive number of seconds.")
    b = np.floor(rr["time_s"].to_numpy(dtype=float) / bin_s).astype(int)
    per = rr.assign(bin=b).groupby(["subject", "bin"], sort=True)["rr_ms"].agg(["mean", "size"]).reset_index()
    mid_h = (per["bin"] + 0.5) * bin_s / 3600.0
    frame = pd.DataFrame({
        "patient": per["subject"].astype(str), "timestamp": mid_h, "signal": "heart_rate",
        "value": 60000.0 / per["mean"], "unit": "/min", "device": device, "loinc": "8867-4",
    })  # fmt: skip
    out = read_streams(frame, origin=origin, epoch=origin, name="nsrdb")
    return out


def load_nsrdb_heart_rate(*, bin_s: float = 60.0) -> pd.DataFrame:
    """The bundled NSRDB recordings as a per-minute (``bin_s``) heart-rate stream (see the module docstring).

    Examples
    --------
    >>> hr = load_nsrdb_heart_rate()
    >>> hr.loc[hr["patient"] == "nsrdb_long", "value"].between(60, 100).all()
    np.True_
    """
    return heart_rate_from_rr(load_nsrdb_rr(), bin_s=bin_s)
