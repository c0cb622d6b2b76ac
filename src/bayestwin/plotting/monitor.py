"""One patient's monitored signals: readings, the twin's predictive band and filtered level, flags and alerts.

Examples
--------
>>> plot_monitor  # doctest: +ELLIPSIS
<function plot_monitor at ...>
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayestwin._extras import require
from bayestwin.exceptions import InputError

__all__ = ["plot_monitor", "reading_bands"]

#: colour of each alert kind's marker
_KIND_COLOURS = {"crossing": "tab:red", "drift": "tab:orange", "patient": "tab:purple"}  # patient: detector


def reading_bands(scores: pd.DataFrame, patient: str) -> pd.DataFrame:
    """One row per scored reading of `patient`: signal, time_h, value, pred_mean, pred_lower, pred_upper, now.

    The score table has one row per (reading, kind); the predictive band and the filtered level are the
    same for every kind of a reading, so the first row of each reading is kept.

    Examples
    --------
    >>> scores = pd.DataFrame({"patient": "A", "signal": "spo2", "kind": ["crossing", "drift"],
    ...                        "time_h": 50.0, "value": 95.0, "pred_mean": 96.0, "pred_lower": 93.0,
    ...                        "pred_upper": 99.0, "now": 95.5})
    >>> reading_bands(scores, "A")[["signal", "time_h", "pred_lower", "pred_upper"]].values.tolist()
    [['spo2', 50.0, 93.0, 99.0]]
    """
    needed = ["patient", "signal", "time_h", "value", "pred_mean", "pred_lower", "pred_upper", "now"]
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise InputError(f"reading_bands: the score table lacks columns {missing}; pass MonitorTwin.scores() "
                         "(its scores carry each reading's predictive band)")
    if scores[["pred_lower", "pred_upper"]].isna().all().all() and len(scores):
        raise InputError("reading_bands: the scores have no predictive band (pred_lower/pred_upper are NaN); "
                         "score with MonitorTwin(bands=True)")
    rows = scores[scores["patient"].astype(str) == str(patient)]
    return (rows.drop_duplicates(["signal", "time_h"])[needed[1:]]
            .sort_values(["signal", "time_h"], kind="stable").reset_index(drop=True))


def plot_monitor(
    scores: pd.DataFrame,
    patient: str,
    *,
    stream: pd.DataFrame | None = None,
    alerts: pd.DataFrame | None = None,
    signals: Sequence[str] | None = None,
    fit_hours: float | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Any:
    """Plot each signal of `patient`: readings, 90 % predictive band, filtered level, flagged rows, alerts.

    Parameters
    ----------
    scores : pandas.DataFrame
        ``MonitorTwin(bands=True).scores()`` (one row per reading and kind, with ``pred_lower``/``pred_upper``: the
        reading's one-step predictive 90 % interval before it was seen, and ``now``: the filtered level).
    patient : str
        Patient id.
    stream : pandas.DataFrame, optional
        The canonical stream frame (``monitor.streams.read_streams``): its readings before the first scored
        one are drawn in grey (the fit window), and its flagged rows (``status`` other than ``ok``: duplicates,
        implausible values, unit errors) as crosses, so artefacts are visible, not silently gone.
    alerts : pandas.DataFrame, optional
        Alert table (``MonitorTwin.alerts()`` or ``MonitorTwin.patient_alerts``): a vertical line per alert,
        coloured by kind, on its signal's panel (on every panel for a patient-level alert, ``signal="patient"``).
    signals : sequence of str, optional
        Panels to draw (default: every signal scored for the patient).
    fit_hours : float, optional
        End of the window the models were fitted on (shaded grey): alerts before it come from the twin
        re-scoring its own training data.
    title : str, optional
        Figure title (default: the patient id).
    path : path, optional
        Save the figure there (PNG/PDF by suffix).

    Returns
    -------
    matplotlib.figure.Figure
    """
    mpl = require("matplotlib", extra="plot")
    if path is not None:
        mpl.use("Agg", force=False)
    plt = require("matplotlib.pyplot", extra="plot")
    bands = reading_bands(scores, patient)
    names = list(signals) if signals is not None else sorted(bands["signal"].unique())
    if not names:
        raise InputError(f"plot_monitor: no scored readings for patient {patient!r}; the twin scores a signal "
                         "only if it has a crossing or drift of that signal (MonitorTwin(crossings=, drifts=))")
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 2.3 * len(names) + 0.6), sharex=True, squeeze=False)
    own_stream = None
    if stream is not None:
        own_stream = stream[stream["patient"].astype(str) == str(patient)]
    for ax, sig in zip(axes[:, 0], names, strict=True):
        b = bands[bands["signal"] == sig]
        unit = ""
        if own_stream is not None:
            s = own_stream[own_stream["signal"] == sig]
            unit = str(s["unit"].iloc[0]) if len(s) and "unit" in s else ""
            first = b["time_h"].min() if len(b) else np.inf
            fit = s[(s["status"] == "ok") & (s["time_h"] < first)]
            ax.plot(fit["time_h"], fit["value"], ".", ms=2.5, color="0.6", label="not scored")
            bad = s[s["status"] != "ok"]
            if len(bad):
                ax.plot(bad["time_h"], bad["value"], "x", ms=5, color="black",
                        label=f"flagged ({', '.join(sorted(bad['status'].unique()))})")
        if len(b):
            ax.fill_between(b["time_h"], b["pred_lower"], b["pred_upper"], alpha=0.25, color="tab:blue", lw=0,
                            label="90 % predictive")
            ax.plot(b["time_h"], b["now"], "-", lw=1.0, color="tab:blue", label="filtered level")
            ax.plot(b["time_h"], b["value"], ".", ms=3, color="black", label="reading")
        if alerts is not None and len(alerts):
            own = alerts[alerts["patient"].astype(str) == str(patient)]
            here = own[own["signal"].isin([sig, "patient"])]  # patient-level alerts: signal "patient"
            for kind, group in here.groupby(np.where(here["signal"] == "patient", "patient", here["kind"])):
                for i, t in enumerate(group["time_h"]):
                    ax.axvline(t, color=_KIND_COLOURS.get(str(kind), "tab:red"), lw=1.2, ls="--",
                               label=f"{kind} alert" if i == 0 else None)
        if fit_hours is not None:
            ax.axvspan(min(0.0, float(b["time_h"].min()) if len(b) else 0.0), fit_hours, color="0.92", zorder=0,
                       label="fit window")
        ax.set_ylabel(f"{sig}\n[{unit}]" if unit else sig)
        ax.legend(loc="upper left", fontsize=7, ncol=3, frameon=False)
    axes[-1, 0].set_xlabel("time (h since the stream origin)")
    fig.suptitle(title or f"patient {patient}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
