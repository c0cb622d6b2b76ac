"""The power-check figure of the SBC studies (run.py, twin_study.py): an SBC run beside its broken variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def sbc_pair_figure(good: Any, bad: Any, titles: tuple[str, str], path: Path) -> None:
    """Save the rank-ECDF difference plots of `good` and `bad` (``SBCResult``) side by side to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    good.plot_ecdf(axes[0])
    bad.plot_ecdf(axes[1])
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
