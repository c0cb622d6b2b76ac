"""A funnel-shaped posterior is reported as failed, loudly, and its forecasts are refused.

Eight patients, one noisy concentration each, between-subject variability on V in the centred
parametrisation with a free residual SD: the classic funnel (compare eight schools, centred). NUTS cannot
reach the funnel's neck and reports divergent transitions (measured: 91, 24 and 35 with seeds 0, 1, 2 at
4 x (500 + 500)). The fit must come back marked failed, with a ConvergenceWarning saying what failed and
what to try, and a twin built on it must refuse to forecast unless the caller overrides (recorded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayestwin.data import read_nonmem
from bayestwin.exceptions import ConvergenceError, ConvergenceWarning
from bayestwin.inference import SamplerConfig, fit_population
from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec
from bayestwin.twin import Twin

UNITS = {"time": "h", "amt": "mg", "dv": "mg/L"}


def _funnel_data(n: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(1, n + 1):
        v = 10 * np.exp(0.3 * rng.normal())
        rows.append({"ID": i, "TIME": 0.0, "EVID": 1, "AMT": 100.0, "DV": ".", "CMT": "central"})
        rows.append({"ID": i, "TIME": 1.0, "EVID": 0, "AMT": 0.0, "DV": 100 / v * np.exp(-0.1) + rng.normal(0, 2.0),
                     "CMT": "central"})
    return pd.DataFrame(rows)


def _funnel_spec() -> TwinSpec:
    return TwinSpec(
        name="test.funnel", model="pk.one_cmt_iv",
        parameters=(Parameter("cl", unit="L/h", fixed=1.0),
                    Parameter("v", unit="L", typical=Prior.lognormal(median=10.0, sigma=1.0),
                              bsv=Prior.half_normal(1.0))),
        error=(ErrorModel("additive", priors=(("sigma_add", Prior.half_normal(2.0)),)),),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L")), centered=True)


@pytest.fixture(scope="module")
def failed_fit():
    table = read_nonmem(_funnel_data(), units=UNITS)
    with pytest.warns(ConvergenceWarning, match="FAILED its convergence gate") as record:
        fit = fit_population(_funnel_spec(), table, sampler=SamplerConfig(chains=4, warmup=500, draws=500, seed=0))
    return fit, str(record[0].message)


def test_funnel_fit_is_marked_failed(failed_fit) -> None:
    fit, message = failed_fit
    assert not fit.ok
    assert fit.diagnostics.divergences > 0
    assert "divergent transitions" in message and "try:" in message
    assert fit.idata.posterior.attrs["convergence_ok"] == 0
    with pytest.raises(ConvergenceError, match="must not be used"):
        fit.require_converged()
    fit.require_converged(override=True)  # an explicit override is allowed


def test_twin_on_a_failed_population_refuses_to_forecast(failed_fit) -> None:
    fit, _ = failed_fit
    one = read_nonmem(_funnel_data(n=1, seed=5), units=UNITS)
    with pytest.raises(ConvergenceError):
        Twin(_funnel_spec(), population=fit, sampler=SamplerConfig(chains=2, warmup=100, draws=100)).fit(one)
