"""The forecast-calibration figure of the validation report (run.py): coverage and error against k."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def conditioning_figure(curves: Mapping[str, Mapping[str, list[dict[str, Any]]]], path: Path) -> None:
    """Save coverage (80 / 95 %, own held-out sets) and MDAPE (common set) against k for each study to `path`.

    `curves` maps a study title to its fragment's ``curve``: ``{"own": rows, "common": rows}``, the rows of
    ``ConditioningCurve.table()`` and ``table(common=True)`` (``k``, ``coverage_0.8``, ``coverage_0.95``,
    ``twin_MDAPE_%``, ``population_MDAPE_%``, ...).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (cov_ax, err_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for (lo, hi), colour in (((0.75, 0.85), "tab:blue"), ((0.91, 0.98), "tab:orange")):
        cov_ax.axhspan(lo, hi, color=colour, alpha=0.12)
    markers = "osd^v"
    for n, (title, curve) in enumerate(curves.items()):
        own, common = curve["own"], curve["common"]
        ks = [r["k"] for r in own]
        m = markers[n % len(markers)]
        cov_ax.plot(ks, [r["coverage_0.8"] for r in own], f"-{m}", color="tab:blue", label=f"80 %, {title}")
        cov_ax.plot(ks, [r["coverage_0.95"] for r in own], f"-{m}", color="tab:orange", label=f"95 %, {title}")
        err_ax.plot([r["k"] for r in common], [r["twin_MDAPE_%"] for r in common], f"-{m}", label=f"twin, {title}")
        err_ax.plot([r["k"] for r in common], [r["population_MDAPE_%"] for r in common], f":{m}", color="grey",
                    label=f"population only, {title}")
    cov_ax.set(xlabel="k (observations the twin is conditioned on)", ylabel="coverage (own held-out set)",
               title="interval coverage (shaded: target bands)")
    err_ax.set(xlabel="k (observations the twin is conditioned on)", ylabel="MDAPE (%)",
               title="median absolute % error, common held-out set")
    for ax in (cov_ax, err_ax):
        ax.set_xticks(sorted({r["k"] for c in curves.values() for r in c["own"]}))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
