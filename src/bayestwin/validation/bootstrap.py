"""Patient-cluster bootstrap of interval coverage: sampling uncertainty of a coverage estimate.

Held-out observations of one patient are correlated (the same twin, the same misfit), so the binomial
interval of ``n`` observations is too narrow. Resampling whole patients with replacement keeps that
correlation: each resample's coverage is the pooled ``sum(inside) / sum(count)`` of the drawn patients
(the estimator itself, observation-weighted), and the percentile interval of the resamples is reported.

Examples
--------
>>> import numpy as np
>>> inside = np.array([[8, 10], [5, 10], [10, 10]])        # (patient, [inside, count])
>>> lo, hi = cluster_bootstrap_interval(inside[:, 0], inside[:, 1], n_boot=2000, seed=0)
>>> bool(lo < 23 / 30 < hi), bool(lo >= 0.5), bool(hi <= 1.0)
(True, True, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["cluster_bootstrap_coverage", "cluster_bootstrap_interval"]


def cluster_bootstrap_interval(
    inside: np.ndarray, count: np.ndarray, *, n_boot: int = 2000, prob: float = 0.95, seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the pooled coverage ``sum(inside) / sum(count)`` over resampled patients.

    Parameters
    ----------
    inside, count : array of int, one entry per patient
        Observations inside the interval and scored observations of each patient.
    n_boot : int
        Bootstrap resamples (vectorised: one ``(n_boot, n_patients)`` index draw).
    prob : float
        Probability of the central percentile interval.

    Examples
    --------
    >>> cluster_bootstrap_interval(np.array([4, 4]), np.array([4, 4]))   # every patient fully covered
    (1.0, 1.0)
    """
    inside = np.asarray(inside, dtype=float)
    count = np.asarray(count, dtype=float)
    if inside.shape != count.shape or inside.ndim != 1 or len(inside) == 0:
        raise ValueError(f"inside and count must be equal-length 1-d arrays with one entry per patient; got shapes "
                         f"{inside.shape} and {count.shape}")
    if np.any(count <= 0) or np.any(inside > count) or np.any(inside < 0):
        raise ValueError("each patient needs count > 0 and 0 <= inside <= count; drop patients with no scored "
                         "observation first")
    pick = np.random.default_rng(seed).integers(0, len(inside), size=(n_boot, len(inside)))
    boot = inside[pick].sum(axis=1) / count[pick].sum(axis=1)
    lo, hi = np.quantile(boot, [(1 - prob) / 2, (1 + prob) / 2])
    return float(lo), float(hi)


def cluster_bootstrap_coverage(
    predictions: pd.DataFrame, levels: tuple[float, ...], *, n_boot: int = 2000, prob: float = 0.95, seed: int = 0,
) -> pd.DataFrame:
    """Bootstrap interval (over patients) of the coverage at each level, from a predictions table.

    `predictions` needs a ``patient`` column and boolean ``in_<level>`` columns (as
    ``CalibrationResult.predictions``). The same resampled patients are used at every level.

    Returns
    -------
    DataFrame
        Index ``level``; columns ``coverage``, ``ci_low``, ``ci_high``, ``patients``.

    Examples
    --------
    >>> p = pd.DataFrame({"patient": [1, 1, 2, 2, 3, 3], "in_0.5": [1, 0, 1, 1, 0, 0]}).astype({"in_0.5": bool})
    >>> t = cluster_bootstrap_coverage(p, (0.5,), n_boot=500)
    >>> float(t.loc[0.5, "coverage"]), bool(t.loc[0.5, "ci_low"] <= 0.5 <= t.loc[0.5, "ci_high"])
    (0.5, True)
    """
    rows = []
    for level in levels:
        col = f"in_{level:g}"
        per = predictions.groupby("patient", sort=True)[col].agg(["sum", "count"])
        lo, hi = cluster_bootstrap_interval(per["sum"].to_numpy(), per["count"].to_numpy(), n_boot=n_boot,
                                            prob=prob, seed=seed)
        rows.append({"level": level, "coverage": float(predictions[col].mean()), "ci_low": lo, "ci_high": hi,
                     "patients": len(per)})
    return pd.DataFrame(rows).set_index("level")
