"""Rank-normalised split R-hat, bulk and tail ESS and E-BFMI in numpy: arviz 0.23's algorithms without arviz.

The convergence gate runs on every twin fit and every population read. Importing arviz 0.23 to compute four
numbers costs more than the rest of a warm start's imports (it loads matplotlib through ``arviz.plots``,
``scipy.stats`` and, where numba is installed, compiles a numba ufunc at import). These are arviz 0.23.4's
``_rhat_rank``, ``_ess_bulk``, ``_ess_tail`` and ``_bfmi`` (``arviz/stats/diagnostics.py``; Vehtari et al.
2021), step for step: the same split chains, Blom rank back-transform (average ranks, normal quantiles),
FFT autocovariance, Geyer's initial positive and monotone sequences and R's type-7 quantile for the tail
indicators. The values equal arviz's to rounding (tested against ``az.rhat`` / ``az.ess`` / ``az.bfmi``:
relative 1e-9; arviz, where numba is installed, sums squares for its variances where numpy takes two passes).

All functions take one quantity's draws, shape ``(chain, draw)``, and return a float (NaN where arviz returns
NaN: a NaN draw, fewer than 4 draws, or fewer than 2 chains for R-hat).

Examples
--------
>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(4, 500))
>>> round(rhat_rank(x), 3), round(ess_bulk(x)), round(ess_tail(x))
(1.001, 2003, 2056)
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

__all__ = ["bfmi", "ess_bulk", "ess_tail", "rhat_rank"]


def _valid(ary: np.ndarray, min_chains: int) -> bool:
    """Not arviz's ``_not_valid``: no NaN, at least `min_chains` chains and 4 draws."""
    return not (np.isnan(ary).any() or ary.shape[0] < min_chains or ary.shape[1] < 4)


def _split_chains(ary: np.ndarray) -> np.ndarray:
    half = ary.shape[1] // 2
    return np.vstack((ary[:, :half], ary[:, -half:]))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the flattened `values`, ties given their average rank (``scipy.stats.rankdata``)."""
    flat = values.ravel()
    order = np.argsort(flat, kind="mergesort")
    ordered = flat[order]
    new = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    dense = np.cumsum(new)[np.argsort(order, kind="mergesort")]  # 1-based group of each value
    bounds = np.concatenate((np.flatnonzero(new), [flat.size]))  # where each group starts, and the end
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def _z_scale(ary: np.ndarray) -> np.ndarray:
    """Rank-normalised values: normal quantiles of Blom's back-transformed average ranks."""
    c = 3 / 8
    return ndtri((_average_ranks(ary) - c) / (ary.size - 2 * c + 1)).reshape(ary.shape)


def _rhat(ary: np.ndarray) -> float:
    n = ary.shape[1]
    between = n * np.var(np.mean(ary, axis=1), ddof=1)
    within = np.mean(np.var(ary, axis=1, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):  # constant draws: NaN, as arviz
        return float(np.sqrt((between / within + n - 1) / n))


def rhat_rank(ary: np.ndarray) -> float:
    """Rank-normalised split R-hat: the larger of the bulk and the folded (tail) R-hat (``az.rhat``)."""
    ary = np.asarray(ary, dtype=float)
    if not _valid(ary, 2):
        return float("nan")
    split = _split_chains(ary)
    return max(_rhat(_z_scale(split)), _rhat(_z_scale(np.abs(split - np.median(split)))))


def _autocov(ary: np.ndarray) -> np.ndarray:
    """Autocovariance of each row at every lag (FFT of length ``next_fast_len(2 n)``, as arviz)."""
    from scipy.fft import next_fast_len  # light (scipy.fft is loaded by numpy-facing JAX code anyway)

    n = ary.shape[1]
    m = next_fast_len(2 * n)
    centred = ary - ary.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=m, axis=1)
    spectrum *= np.conjugate(spectrum)
    return np.fft.irfft(spectrum, n=m, axis=1)[:, :n] / n


def _ess(ary: np.ndarray) -> float:
    """Effective sample size of a (split) chain array, Geyer's initial monotone sequence (arviz's ``_ess``)."""
    ary = np.asarray(ary, dtype=float)
    if np.isnan(ary).any():
        return float("nan")
    if (np.max(ary) - np.min(ary)) < np.finfo(float).resolution:
        return float(ary.size)
    n_chain, n_draw = ary.shape
    acov = _autocov(ary)
    mean_var = np.mean(acov[:, 0]) * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus += np.var(ary.mean(axis=1), ddof=1)
    rho = np.zeros(n_draw)
    rho_even, rho_odd = 1.0, 1.0 - (mean_var - np.mean(acov[:, 1])) / var_plus
    rho[0], rho[1] = rho_even, rho_odd
    t = 1
    while t < (n_draw - 3) and (rho_even + rho_odd) > 0.0:  # initial positive sequence
        rho_even = 1.0 - (mean_var - np.mean(acov[:, t + 1])) / var_plus
        rho_odd = 1.0 - (mean_var - np.mean(acov[:, t + 2])) / var_plus
        if (rho_even + rho_odd) >= 0:
            rho[t + 1], rho[t + 2] = rho_even, rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    t = 1
    while t <= max_t - 2:  # initial monotone sequence
        if (rho[t + 1] + rho[t + 2]) > (rho[t - 1] + rho[t]):
            rho[t + 1] = (rho[t - 1] + rho[t]) / 2.0
            rho[t + 2] = rho[t + 1]
        t += 2
    ess = n_chain * n_draw
    tau = -1.0 + 2.0 * np.sum(rho[: max_t + 1]) + np.sum(rho[max_t + 1: max_t + 2])
    tau = max(tau, 1 / np.log10(ess))
    return float("nan") if np.isnan(rho).any() else float(ess / tau)


def ess_bulk(ary: np.ndarray) -> float:
    """Bulk ESS: ESS of the rank-normalised split chains (``az.ess(method="bulk")``)."""
    ary = np.asarray(ary, dtype=float)
    if not _valid(ary, 1):
        return float("nan")
    return _ess(_z_scale(_split_chains(ary)))


def _quantile_type7(values: np.ndarray, prob: float) -> float:
    """``scipy.stats.mstats.mquantiles(values, prob, alphap=1, betap=1)`` (R's type 7), same arithmetic."""
    x = np.sort(values.ravel())
    n = x.size
    aleph = n * prob + (1.0 + prob * (1.0 - 1.0 - 1.0))
    k = int(np.floor(np.clip(aleph, 1, n - 1)))
    gamma = float(np.clip(aleph - k, 0, 1))
    return (1.0 - gamma) * x[k - 1] + gamma * x[k]


def ess_tail(ary: np.ndarray) -> float:
    """Tail ESS: the smaller ESS of the indicators below the 5 % and 95 % quantiles (``az.ess(method="tail")``)."""
    ary = np.asarray(ary, dtype=float)
    if not _valid(ary, 1):
        return float("nan")
    return min(_ess(_split_chains(ary <= _quantile_type7(ary, p))) for p in (0.05, 0.95))


def bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI of each chain from its energy, shape ``(chain, draw)`` (``az.bfmi``).

    >>> bfmi(np.array([[0.0, 1.0, 0.0, 1.0]])).tolist()
    [3.0]
    """
    energy = np.atleast_2d(np.asarray(energy, dtype=float))
    return np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(energy, axis=1, ddof=1)
