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
        Observations (columns ``time``, ``dv``, and ``output`` when there are several outputs) the twin was
        fitted to, and later ones it was not.
    probs : sequence of float
        Central interval probabilities to shade.
    title : str, optional
        Figure title.
    path : path, optional
        Save the figure there (PNG/PDF by suffix).
    ax : matplotlib Axes, optional
        Draw into this axes (single-output forecasts; otherwise one panel per output is made).

    Returns
    -------
    matplotlib.figure.Figure
    """
    mpl = require("matplotlib", extra="plot")
    mpl.use("Agg", force=False) if path is not None and ax is None else None
    plt = require("matplotlib.pyplot", extra="plot")
    outputs = forecast.outputs
    if ax is None:
        fig, axes = plt.subplots(len(outputs), 1, figsize=(7, 4.2 * len(outputs)), squeeze=False)
        axes = list(axes[:, 0])
    elif len(outputs) == 1:
        fig, axes = ax.figure, [ax]
    else:
        raise ValueError(f"the forecast has {len(outputs)} outputs {outputs}; pass ax=None to get one panel each")
    for out, panel in zip(outputs, axes, strict=True):
        _draw(panel, forecast, out, _only(used, out), _only(held_out, out), probs)
    axes[0].set_title(title or f"patient {forecast.metadata.get('patient')}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _only(frame: pd.DataFrame | None, output: str) -> pd.DataFrame | None:
    if frame is None or "output" not in frame.columns:
        return frame
    return frame[frame["output"] == output]


def _draw(ax: Any, forecast: Forecast, output: str, used: pd.DataFrame | None, held_out: pd.DataFrame | None,
          probs: Sequence[float]) -> None:
    for prob, alpha in zip(sorted(probs, reverse=True), np.linspace(0.15, 0.45, len(probs)), strict=True):
        band = forecast.interval(prob)
        band = band[band["output"] == output]
        ax.fill_between(band["time"], band["lower"], band["upper"], color="tab:blue", alpha=float(alpha), lw=0,
                        label=f"{prob:.0%} interval, new measurement")
    med = forecast.interval(0.5, quantity="ipred")
    med = med[med["output"] == output]
    ax.plot(med["time"], med["median"], color="tab:blue", lw=1.8, label="median prediction (IPRED)")
    if used is not None and len(used):
        ax.plot(used["time"], used["dv"], "o", color="black", label="observed, used by the twin")
    if held_out is not None and len(held_out):
        ax.plot(held_out["time"], held_out["dv"], "o", mfc="white", color="tab:red", label="observed later (held out)")
    ax.set_xlabel(f"time ({forecast.time_unit})")
    ax.set_ylabel(f"{output} ({forecast.unit(output)})")
    ax.legend(fontsize=8, frameon=False)
