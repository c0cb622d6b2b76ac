"""Monte Carlo standard errors of posterior means of per-draw values, from the chains' autocorrelation.

A probability estimated from MCMC draws is the mean of a per-draw indicator; its Monte Carlo standard error
(MCSE) is ``sd / sqrt(ESS)`` with the effective sample size of that indicator over chains and draws
(``arviz.mcse(..., method="mean")``, vectorised over any extra dimensions). A value that is the same in every
draw has MCSE 0. With fewer than 4 draws per chain no MCSE can be estimated: NaN.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = (rng.normal(size=(4, 500, 2)) > 0).astype(float)      # (chain, draw, series): independent draws
>>> m = mcse_of_mean(x)
>>> m.shape, bool(np.all(np.abs(m / np.sqrt(0.25 / 2000) - 1) < 0.2))
((2,), True)
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["ess_of_mean", "mcse_of_mean"]


def _dataset(values: np.ndarray):
    import xarray as xr

    dims = ("chain", "draw", *[f"d{i}" for i in range(values.ndim - 2)])
    return xr.Dataset({"v": (dims, values)})


def mcse_of_mean(values: np.ndarray) -> np.ndarray:
    """MCSE of the mean over (chain, draw) of `values` shaped ``(chain, draw, ...)``; returns shape ``(...)``."""
    import arviz as az

    values = np.asarray(values, dtype=float)
    if values.shape[1] < 4:
        return np.full(values.shape[2:], np.nan)
    finite = np.where(np.isfinite(values), values, 0.0)
    constant = np.all(finite == finite[:1, :1], axis=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # arviz divides by zero on constant series
        if values.ndim == 2:
            out = np.asarray(np.ravel(az.mcse(finite, method="mean")).item())
        else:
            out = np.asarray(az.mcse(_dataset(finite), method="mean")["v"].to_numpy())
    return np.where(constant, 0.0, out)


def ess_of_mean(values: np.ndarray) -> np.ndarray:
    """Effective sample size of the mean of `values` ``(chain, draw, ...)`` (the draw count where constant)."""
    import arviz as az

    values = np.asarray(values, dtype=float)
    n = values.shape[0] * values.shape[1]
    if values.shape[1] < 4:
        return np.full(values.shape[2:], np.nan)
    finite = np.where(np.isfinite(values), values, 0.0)
    constant = np.all(finite == finite[:1, :1], axis=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if values.ndim == 2:
            out = np.asarray(np.ravel(az.ess(finite, method="mean")).item())
        else:
            out = np.asarray(az.ess(_dataset(finite), method="mean")["v"].to_numpy())
    return np.where(constant, float(n), out)
