"""The posterior predictive fan of one patient, with the observed data on top.

Examples
--------
>>> plot_forecast  # doctest: +ELLIPSIS
<function plot_forecast at ...>
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayestwin._extras import require
from bayestwin.forecast.forecast import Forecast

__all__ = ["plot_forecast"]


def plot_forecast(
    forecast: Forecast,
    *,
    used: pd.DataFrame | None = None,
    held_out: pd.DataFrame | None = None,
    probs: Sequence[float] = (0.5, 0.8, 0.95),
    title: str | None = None,
    path: str | Path | None = None,
    ax: Any = None,
) -> Any:
    """Fan chart of a forecast: bands of a new measurement, median IPRED, observations.

    Parameters
    ----------
    forecast : Forecast
        From ``Twin.forecast``.
    used, held_out : pandas.DataFrame, optional
        Observations (columns ``time``, ``dv``) the twin was fitted to, and later ones it was not.
    probs : sequence of float
        Central interval probabilities to shade.
    title : str, optional
        Figure title.
    path : path, optional
        Save the figure there (PNG/PDF by suffix).
    ax : matplotlib Axes, optional
        Draw into this axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    mpl = require("matplotlib", extra="plot")
    mpl.use("Agg", force=False) if path is not None and ax is None else None
    plt = require("matplotlib.pyplot", extra="plot")
    fig, ax = (plt.subplots(figsize=(7, 4.2)) if ax is None else (ax.figure, ax))
    unit = forecast.dataset["pred"].attrs["unit"]
    for prob, alpha in zip(sorted(probs, reverse=True), np.linspace(0.15, 0.45, len(probs)), strict=True):
        band = forecast.interval(prob)
        ax.fill_between(band["time"], band["lower"], band["upper"], color="tab:blue", alpha=float(alpha), lw=0,
                        label=f"{prob:.0%} interval, new measurement")
    med = forecast.interval(0.5, quantity="ipred")
    ax.plot(med["time"], med["median"], color="tab:blue", lw=1.8, label="median prediction (IPRED)")
    if used is not None and len(used):
        ax.plot(used["time"], used["dv"], "o", color="black", label="observed, used by the twin")
    if held_out is not None and len(held_out):
        ax.plot(held_out["time"], held_out["dv"], "o", mfc="white", color="tab:red", label="observed later (held out)")
    ax.set_xlabel(f"time ({forecast.time_unit})")
    ax.set_ylabel(f"{forecast.dataset['output'].to_numpy()[0]} ({unit})")
    ax.set_title(title or f"patient {forecast.metadata.get('patient')}")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
