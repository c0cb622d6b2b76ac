"""Old versus new population: how far each population parameter moved when the population was refitted.

:func:`compare_populations` gives a tidy table, one row per population quantity (typical
values, covariate coefficients, BSV SDs, residual SDs): posterior mean, SD and central 95 %
interval under each version, the shift of the mean in units of the old posterior SD, the
change in interval width, and each version's R-hat and bulk ESS. :func:`format_comparison`
renders it as Markdown for a report or a ticket.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from types import SimpleNamespace as NS
>>> def pop(version, loc):
...     rng = np.random.default_rng(0)
...     post = xr.Dataset({"tv_cl": (("chain", "draw"), rng.normal(loc, 0.1, (2, 500)))})
...     post["tv_cl"].attrs["unit"] = "L/h"
...     return NS(version=version, idata=NS(posterior=post), n_patients=8)
>>> table = compare_populations(pop("pop-a", 3.0), pop("pop-b", 3.2), names=["tv_cl"])
>>> row = table.loc["tv_cl"]
>>> row["unit"], round(float(row["shift_old_sd"]), 1), round(float(row["width_ratio"]), 6)
('L/h', 2.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from bayestwin.inference.fit import population_quantities

__all__ = ["COMPARISON_COLUMNS", "compare_populations", "format_comparison"]

COMPARISON_COLUMNS: dict[str, str] = {
    "unit": "unit of the quantity",
    "old_mean": "posterior mean under the old version [unit]",
    "old_sd": "posterior SD under the old version [unit]",
    "old_lower": "lower end of the central interval, old version [unit]",
    "old_upper": "upper end of the central interval, old version [unit]",
    "new_mean": "posterior mean under the new version [unit]",
    "new_sd": "posterior SD under the new version [unit]",
    "new_lower": "lower end of the central interval, new version [unit]",
    "new_upper": "upper end of the central interval, new version [unit]",
    "shift_old_sd": "(new mean - old mean) / old SD [old posterior SDs]",
    "width_change": "new interval width - old interval width [unit]",
    "width_ratio": "new interval width / old interval width [1]",
    "old_r_hat": "rank-normalised split R-hat, old version [1]",
    "new_r_hat": "rank-normalised split R-hat, new version [1]",
    "old_ess_bulk": "bulk effective sample size, old version [draws]",
    "new_ess_bulk": "bulk effective sample size, new version [draws]",
}


def compare_populations(old: Any, new: Any, *, prob: float = 0.95, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy comparison of two population versions, one row per population quantity.

    Parameters
    ----------
    old, new : PopulationFit
        The versions to compare (usually ``new = old.refit(cohort)``; any two fits work).
    prob : float
        Probability of the central (equal-tailed) intervals, default 0.95.
    names : sequence of str, optional
        Quantities to compare; default every population quantity of either spec (old's order first).
        A quantity one version lacks gets NaN on that side.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``quantity``, with the columns of :data:`COMPARISON_COLUMNS` (values in the unit of the
        ``unit`` column unless the column says otherwise). ``attrs`` holds ``old_version``, ``new_version``,
        ``new_parent``, ``old_patients``, ``new_patients``, ``prob`` and ``columns`` (the column descriptions
        with their units).

    Examples
    --------
    >>> table = compare_populations(old_fit, old_fit.refit(cohort))  # doctest: +SKIP
    >>> table.loc["tv_cl", "shift_old_sd"]  # doctest: +SKIP
    0.41
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be in (0, 1), got {prob}; e.g. 0.95 for central 95 % intervals")
    if names is None:
        names = list(dict.fromkeys(_quantities(old) + _quantities(new)))
    rows = []
    for name in names:
        a, b = _stats(old, name, prob), _stats(new, name, prob)
        units = a.pop("unit"), b.pop("unit")
        row = {"quantity": name, "unit": units[0] or units[1]}
        row |= {f"old_{k}": v for k, v in a.items()} | {f"new_{k}": v for k, v in b.items()}
        old_width, new_width = row["old_upper"] - row["old_lower"], row["new_upper"] - row["new_lower"]
        with np.errstate(divide="ignore", invalid="ignore"):
            row["shift_old_sd"] = (row["new_mean"] - row["old_mean"]) / row["old_sd"]
            row["width_ratio"] = new_width / old_width
        row["width_change"] = new_width - old_width
        rows.append(row)
    table = pd.DataFrame(rows, columns=["quantity", *COMPARISON_COLUMNS]).set_index("quantity")
    table.attrs = {"old_version": old.version, "new_version": new.version, "new_parent": getattr(new, "parent", None),
                   "old_patients": old.n_patients, "new_patients": new.n_patients, "prob": prob,
                   "columns": dict(COMPARISON_COLUMNS)}
    return table


def format_comparison(table: pd.DataFrame, *, digits: int = 3) -> str:
    """A Markdown report of a :func:`compare_populations` table: versions, then one line per quantity.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> row = {"unit": "L/h", "old_mean": 3.0, "old_sd": 0.1, "old_lower": 2.8, "old_upper": 3.2, "new_mean": 3.1,
    ...        "new_sd": 0.05, "new_lower": 3.0, "new_upper": 3.2, "shift_old_sd": 1.0, "width_change": -0.2,
    ...        "width_ratio": 0.5, "old_r_hat": 1.001, "new_r_hat": 1.002, "old_ess_bulk": 900.0,
    ...        "new_ess_bulk": 1100.0}
    >>> table = pd.DataFrame([row], index=pd.Index(["tv_cl"], name="quantity"))
    >>> table.attrs = {"old_version": "pop-a", "new_version": "pop-b", "new_parent": "pop-a", "old_patients": 8,
    ...                "new_patients": 12, "prob": 0.95}
    >>> print(format_comparison(table))
    Population pop-a (8 patients) -> pop-b (12 patients, refitted from pop-a); central 95 % intervals.
    <BLANKLINE>
    | quantity | unit | old mean [95 %] | new mean [95 %] | shift/old SD | width ratio | R-hat old/new | ESS old/new |
    |---|---|---|---|---|---|---|---|
    | tv_cl | L/h | 3 [2.8, 3.2] | 3.1 [3, 3.2] | +1.00 | 0.50 | 1.001/1.002 | 900/1100 |
    """
    attrs = table.attrs
    pct = f"{100 * float(attrs.get('prob', 0.95)):g} %"
    lineage = ", refitted from " + str(attrs["new_parent"]) if attrs.get("new_parent") else ""
    lines = [f"Population {attrs.get('old_version', '?')} ({attrs.get('old_patients', '?')} patients) -> "
             f"{attrs.get('new_version', '?')} ({attrs.get('new_patients', '?')} patients{lineage}); "
             f"central {pct} intervals.", "",
             f"| quantity | unit | old mean [{pct}] | new mean [{pct}] | shift/old SD | width ratio "
             "| R-hat old/new | ESS old/new |", "|---|---|---|---|---|---|---|---|"]
    g = lambda x: "n/a" if not np.isfinite(x) else f"{x:.{digits}g}"  # noqa: E731
    for name, r in table.iterrows():
        lines.append(f"| {name} | {r['unit']} | {g(r['old_mean'])} [{g(r['old_lower'])}, {g(r['old_upper'])}] | "
                     f"{g(r['new_mean'])} [{g(r['new_lower'])}, {g(r['new_upper'])}] | {r['shift_old_sd']:+.2f} | "
                     f"{r['width_ratio']:.2f} | {r['old_r_hat']:.3f}/{r['new_r_hat']:.3f} | "
                     f"{r['old_ess_bulk']:.0f}/{r['new_ess_bulk']:.0f} |")
    return "\n".join(lines)


def _quantities(fit: Any) -> list[str]:
    return population_quantities(fit.spec)


def _stats(fit: Any, name: str, prob: float) -> dict[str, Any]:
    post = fit.idata.posterior
    if name not in post:
        return {"unit": "", "mean": np.nan, "sd": np.nan, "lower": np.nan, "upper": np.nan, "r_hat": np.nan,
                "ess_bulk": np.nan}
    values = post[name].to_numpy()
    if values.ndim != 2:
        raise ValueError(f"population quantity {name!r} has shape {values.shape[2:]} per draw; compare_populations "
                         "compares scalar quantities: pass names= without it")
    tail = (1.0 - prob) / 2.0
    lower, upper = np.quantile(values, [tail, 1.0 - tail])
    return {"unit": str(post[name].attrs.get("unit", "")), "mean": float(values.mean()), "sd": float(values.std()),
            "lower": float(lower), "upper": float(upper), "r_hat": float(az.rhat(values)),
            "ess_bulk": float(az.ess(values, method="bulk"))}
