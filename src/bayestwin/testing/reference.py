"""Compare a posterior with a trusted reference summary (posteriordb, a long Stan run) within Monte Carlo error.

A reference summary has one row per quantity with its ``mean``, ``sd``, quantiles (``q05``, ``median``,
``q95``) and the number of draws (``n_draws``; ``ess_approx`` where the reference run estimated its
effective sample size). For each compared statistic:

* ours: the statistic of the draws, with its Monte Carlo standard error from arviz (``az.mcse``:
  ``method="mean"``, or ``method="quantile"``);
* the reference's MCSE: ``sd / sqrt(ess)`` for a mean (``ess`` = ``ess_approx``, else ``n_draws``); for a
  quantile q, arviz's quantile MCSE for ``ess`` independent draws (the central 68 % interval of the
  probability ``Beta(ess q + 1, ess (1 - q) + 1)``, mapped to values through our draws' quantiles, which
  under the hypothesis tested have the reference's shape);
* the test ``|ours - reference| <= k * sqrt(mcse_ours**2 + mcse_ref**2) + allowance * sd``, sd the
  reference's posterior SD. k = 4 gives a false alarm ~6e-5 per comparison; the allowance stands for
  what the window treats as known but is estimated (each ESS, so each MCSE, is itself uncertain).

arviz 0.23 with numba installed (PyMC brings it) takes a numba code path that breaks under numpy 2.4
for some MCSE methods; the MCSEs here are computed on its numpy path (same numbers).

Examples
--------
>>> import numpy as np, pandas as pd
>>> draws = {"mu": np.random.default_rng(0).normal(1.0, 2.0, size=(4, 1000))}
>>> ref = pd.DataFrame({"mean": [1.0], "sd": [2.0], "q05": [1 - 3.29], "median": [1.0], "q95": [1 + 3.29],
...                     "n_draws": [10000]}, index=["mu"])
>>> table = compare_to_reference(draws, ref, statistics=("mean", "median"))
>>> print(table[["quantity", "statistic", "ok"]].to_string(index=False))
quantity statistic   ok
      mu      mean True
      mu    median True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ["QUANTILES", "compare_to_reference"]

#: Reference-summary columns that are quantiles, and their probabilities.
QUANTILES: dict[str, float] = {"q05": 0.05, "median": 0.5, "q95": 0.95}


def _mcse(draws: np.ndarray, method: str, prob: float | None = None) -> float:
    """``az.mcse`` of (chain, draw) `draws` on arviz's numpy path (see the module docstring)."""
    numba = az.Numba.numba_flag
    az.Numba.disable_numba()
    try:
        kwargs = {} if prob is None else {"prob": prob}
        return float(np.asarray(az.mcse(np.asarray(draws, dtype=float), method=method, **kwargs)).reshape(-1)[0])
    finally:
        if numba:
            az.Numba.enable_numba()


def _reference_quantile_mcse(pooled: np.ndarray, prob: float, ess: float) -> float:
    """MCSE of the `prob` quantile of `ess` independent draws shaped like `pooled` (arviz's construction)."""
    a, b = stats.beta.ppf([0.1586553, 0.8413447], ess * prob + 1, ess * (1 - prob) + 1)
    lo, hi = np.quantile(pooled, [a, b])
    return float((hi - lo) / 2)


def compare_to_reference(
    draws: Mapping[str, ArrayLike], reference: pd.DataFrame, *, statistics: Sequence[str] = ("mean",),
    k: float = 4.0, allowance_sd: float = 0.02,
) -> pd.DataFrame:
    """One row per (quantity, statistic): ours, the reference's, both MCSEs, the window and the verdict.

    Parameters
    ----------
    draws : mapping of str to array, shape (chain, draw)
        Our posterior draws, keyed by the reference's names (``"theta[1]"``, ``"mu"``...).
    reference : pandas.DataFrame
        Indexed by quantity, with columns ``mean``, ``sd``, ``n_draws`` (``ess_approx`` if known) and the
        compared quantile columns (``q05``, ``median``, ``q95``).
    statistics : sequence of str
        ``"mean"`` and/or quantile columns (see ``QUANTILES``), compared for every quantity.
    k, allowance_sd : float
        The window: ``k`` combined MCSEs plus ``allowance_sd`` reference SDs.

    Returns
    -------
    pandas.DataFrame
        Columns ``quantity, statistic, ours, reference, diff, ref_sd, mcse_ours, mcse_ref, combined_mcse,
        diff_in_sd, diff_in_mcse, window, ok``.
    """
    rows = []
    for name, value in draws.items():
        x = np.asarray(value, dtype=float)
        ref = reference.loc[name]
        ess = float(ref["ess_approx"]) if "ess_approx" in ref.index and pd.notna(ref["ess_approx"]) \
            else float(ref["n_draws"])
        for stat in statistics:
            if stat == "mean":
                ours, mcse_ours = float(x.mean()), _mcse(x, "mean")
                mcse_ref = float(ref["sd"]) / np.sqrt(ess)
            elif stat in QUANTILES:
                prob = QUANTILES[stat]
                ours, mcse_ours = float(np.quantile(x, prob)), _mcse(x, "quantile", prob)
                mcse_ref = _reference_quantile_mcse(x.ravel(), prob, ess)
            else:
                raise ValueError(f"statistic {stat!r} is not 'mean' or one of {sorted(QUANTILES)}")
            theirs = float(ref[stat])
            combined = float(np.hypot(mcse_ours, mcse_ref))
            window = k * combined + allowance_sd * float(ref["sd"])
            diff = ours - theirs
            rows.append({"quantity": name, "statistic": stat, "ours": ours, "reference": theirs, "diff": diff,
                         "ref_sd": float(ref["sd"]), "mcse_ours": mcse_ours, "mcse_ref": mcse_ref,
                         "combined_mcse": combined, "diff_in_sd": diff / float(ref["sd"]),
                         "diff_in_mcse": diff / combined, "window": window, "ok": abs(diff) <= window})
    return pd.DataFrame(rows)
