"""Plots of a plan comparison: a forecast fan per plan, probabilities with MCSE bars, time-to-threshold curves.

Examples
--------
>>> plot_plan_probabilities  # doctest: +ELLIPSIS
<function plot_plan_probabilities at ...>
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayestwin._extras import require
from bayestwin.decision.result import PlanComparison

__all__ = ["plot_plan_fans", "plot_plan_probabilities", "plot_time_to_threshold"]


def _pyplot(path: str | Path | None, ax: Any) -> Any:
    mpl = require("matplotlib", extra="plot")
    if path is not None and ax is None:
        mpl.use("Agg", force=False)
    return require("matplotlib.pyplot", extra="plot")


def _save(fig: Any, path: str | Path | None) -> Any:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_plan_fans(comparison: PlanComparison, *, plans: Sequence[str] | None = None, output: str | None = None,
                   quantity: str = "pred", lines: Sequence[float] = (), path: str | Path | None = None) -> Any:
    """One panel per plan: the median and the central intervals of `quantity` over time.

    Parameters
    ----------
    comparison : PlanComparison
        From ``compare_plans``.
    plans : sequence of str, optional
        Plan names to draw (default: all, at most 12).
    output : str, optional
        Which observed output (default the first).
    quantity : {"pred", "ipred"}
        A new measurement or the latent value.
    lines : sequence of float
        Horizontal reference lines (a therapeutic window, a toxic level), in the output's unit.
    path : path, optional
        Save the figure there.

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot(path, None)
    table = comparison.intervals(quantity)
    out = output or str(table["output"].iloc[0])
    names = list(plans) if plans is not None else [p.name for p in comparison.plans][:12]
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True)
    tcol = f"time ({comparison.time_unit})"
    probs = sorted(comparison.meta["interval_probs"], reverse=True)
    for ax, name in zip(axes.ravel(), names, strict=False):
        sub = table[(table["plan"] == name) & (table["output"] == out)]
        for prob, alpha in zip(probs, np.linspace(0.15, 0.4, len(probs)), strict=True):
            band = sub[sub["prob"] == prob]
            ax.fill_between(band[tcol], band["lower"], band["upper"], alpha=float(alpha), color="tab:blue", lw=0,
                            label=f"{prob:.0%} interval")
        med = sub[sub["prob"] == probs[0]]
        ax.plot(med[tcol], med["median"], color="tab:blue", lw=1.5, label="median")
        for y in lines:
            ax.axhline(y, color="tab:red", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(tcol)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel(f"{out} ({comparison.meta['units'].get(out, '')})")
    axes[0, 0].legend(fontsize=7, frameon=False)
    return _save(fig, path)


def plot_plan_probabilities(comparison: PlanComparison, *, targets: Sequence[str] | None = None, z: float = 2.0,
                            path: str | Path | None = None) -> Any:
    """Each target's estimate per plan with ``z`` x MCSE error bars (one panel per target)."""
    plt = _pyplot(path, None)
    s = comparison.summary()
    names = list(targets) if targets is not None else [t.name for t in comparison.targets]
    fig, axes = plt.subplots(1, len(names), figsize=(4.0 * len(names), 0.35 * len(comparison.plans) + 1.8),
                             squeeze=False, sharey=True)
    plans = [p.name for p in comparison.plans]
    y = np.arange(len(plans))
    for ax, name in zip(axes[0], names, strict=True):
        sub = s[s["target"] == name].set_index("plan").loc[plans]
        ax.errorbar(sub["estimate"], y, xerr=z * np.nan_to_num(sub["mcse"].to_numpy()), fmt="o", ms=4, capsize=3)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"estimate (bars: {z:g} MCSE)")
    axes[0, 0].set_yticks(y, plans, fontsize=8)
    axes[0, 0].invert_yaxis()
    return _save(fig, path)


def plot_time_to_threshold(comparison: PlanComparison, target: str, *, path: str | Path | None = None,
                           ax: Any = None) -> Any:
    """Survival-style curves: P(not yet crossed by t) per plan, censored at the end of the grid."""
    plt = _pyplot(path, ax)
    table = comparison.survival(target)
    tcol = f"time ({comparison.time_unit})"
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.0))
    else:
        fig = ax.figure
    for name in dict.fromkeys(table["plan"]):
        sub = table[table["plan"] == name]
        ax.step(sub[tcol], sub["not_crossed"], where="post", label=name)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(tcol)
    ax.set_ylabel("P(not yet crossed)")
    ax.set_title(next(t.describe() for t in comparison.targets if t.name == target), fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return _save(fig, path)
