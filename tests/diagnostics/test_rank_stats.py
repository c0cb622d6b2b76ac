"""The numpy convergence statistics equal arviz 0.23's (the gate no longer imports arviz)."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest

from bayestwin.diagnostics.convergence import check_convergence
from bayestwin.diagnostics.rank_stats import bfmi, ess_bulk, ess_tail, rhat_rank

RNG = np.random.default_rng(20261127)
CASES = {
    "iid normal": RNG.normal(size=(4, 1000)),
    "random walk (not converged)": np.cumsum(RNG.normal(size=(4, 1000)), axis=1),
    "discrete with ties": RNG.integers(0, 5, size=(4, 1000)).astype(float),
    "shifted chains, odd draws": RNG.exponential(size=(4, 999)) + np.arange(4)[:, None],
    "AR(1) 0.9": np.stack([np.frompyfunc(lambda a, b: 0.9 * a + b, 2, 1).accumulate(RNG.normal(size=800),
                                                                                    dtype=object).astype(float)
                           for _ in range(3)]),
    "one chain": RNG.normal(size=(1, 200)),
    "tiny": RNG.normal(size=(2, 7)),
    "constant": np.ones((4, 100)),
    "with NaN": np.where(np.arange(400).reshape(4, 100) == 7, np.nan, 1.0),
}


def _close(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-9 * abs(a)


@pytest.mark.parametrize("name", list(CASES))
def test_rank_statistics_equal_arviz(name: str) -> None:
    x = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = (rhat_rank(x), ess_bulk(x), ess_tail(x))
        theirs = (float(az.rhat(x)), float(az.ess(x, method="bulk")), float(az.ess(x, method="tail")))
    assert all(_close(t, o) for t, o in zip(theirs, ours, strict=True)), (name, theirs, ours)


def test_bfmi_equals_arviz() -> None:
    energy = 500.0 + 10.0 * np.cumsum(RNG.normal(size=(4, 1000)), axis=1) / 30.0
    np.testing.assert_allclose(bfmi(energy), az.bfmi(energy), rtol=1e-9)


def test_the_gate_table_equals_arviz_per_element() -> None:
    """A (chain, draw, patient) variable: one row per element, in arviz's order and values."""
    idata = az.from_dict(posterior={"cl": RNG.normal(size=(4, 300, 3)), "v": RNG.normal(size=(4, 300))},
                         sample_stats={"diverging": np.zeros((4, 300), bool), "energy": RNG.normal(size=(4, 300))})
    report = check_convergence(idata)
    assert list(report.table.index) == ["cl[0]", "cl[1]", "cl[2]", "v"]
    expected = np.r_[az.rhat(idata)["cl"].to_numpy(), float(az.rhat(idata)["v"])]
    np.testing.assert_allclose(report.table["r_hat"].to_numpy(), expected, rtol=1e-9)
    tail = np.r_[az.ess(idata, method="tail")["cl"].to_numpy(), float(az.ess(idata, method="tail")["v"])]
    np.testing.assert_allclose(report.table["ess_tail"].to_numpy(), tail, rtol=1e-9)
    np.testing.assert_allclose(report.bfmi, az.bfmi(idata), rtol=1e-9)
