"""``model_specs/two_cmt_iv.py``: fitted to data simulated from known parameters, the truth is recovered.

Sixteen patients, one 100 mg IV bolus, nine samples over 24 h, log-normal BSV (SD 0.3) on CL and V1,
proportional error 10 %. Each typical value's truth must lie inside its central 95 % posterior interval
(four checks at 95 %: a false alarm rate near 1 - 0.95**4 = 19 % if they were independent and the
posterior exactly calibrated; the seed is fixed, so the outcome is deterministic and was checked once, not
tuned), and the fit must pass its gate.

STATUS (2026-11-26): OPEN. With simulation seed 11 the gate passes (centred spec), tv_cl, tv_v1 and tv_q
cover their truth, but tv_v2's 95 % interval is [34.5, 38.7] against a truth of 40. Four more simulation
seeds (12-15, same fit settings) all cover every truth (tv_v2 medians 39.0, 40.6, 40.3, 40.1): no sign of a
biased kernel, seed 11 looks like an unlucky realisation (4 x 4 checks, one miss). But those four fits
FAILED the convergence gate at 4 x (1000 + 1000) (not yet diagnosed: suspect omega_v1 / tv_v1 in the
centred form with 16 patients; try non-centred with more draws, or a dense mass matrix). Fix the sampling,
then turn this into a coverage check over several simulated data sets (e.g. 20 seeds, binomial bound on
the miss count) rather than one seed. Do not change the seed to make it pass.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayestwin.data import read_nonmem
from bayestwin.dynamics.events import Doses
from bayestwin.inference import SamplerConfig, fit_population
from bayestwin.models import get_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_specs.two_cmt_iv import spec as two_cmt_spec

TRUTH = {"tv_cl": 4.0, "tv_v1": 15.0, "tv_q": 6.0, "tv_v2": 40.0}
TIMES = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0])


def _simulate(n: int = 16, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    model = get_model("pk.two_cmt_iv")
    rows = []
    for i in range(1, n + 1):
        theta = {"cl": TRUTH["tv_cl"] * np.exp(0.3 * rng.normal()), "v1": TRUTH["tv_v1"] * np.exp(0.3 * rng.normal()),
                 "q": TRUTH["tv_q"], "v2": TRUTH["tv_v2"]}
        conc = np.asarray(model.predict({k: jnp.asarray(v) for k, v in theta.items()},
                                        Doses.single(time=0.0, amt=100.0, n=1), jnp.asarray(TIMES)))[:, 0]
        dv = conc * (1 + 0.1 * rng.normal(size=conc.size))
        rows.append({"ID": i, "TIME": 0.0, "EVID": 1, "AMT": 100.0, "DV": ".", "CMT": "central"})
        rows += [{"ID": i, "TIME": t, "EVID": 0, "AMT": 0.0, "DV": y, "CMT": "central"}
                 for t, y in zip(TIMES, dv, strict=True)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fit():
    table = read_nonmem(_simulate(), units={"time": "h", "amt": "mg", "dv": "mg/L"})
    return fit_population(two_cmt_spec(), table, sampler=SamplerConfig(chains=4, warmup=1000, draws=1000, seed=4))


def test_fit_passes_its_gate(fit) -> None:
    assert fit.ok, fit.diagnostics.format()


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_truth_inside_the_95_percent_interval(fit, name) -> None:
    lo, hi = np.quantile(fit.idata.posterior[name].to_numpy(), [0.025, 0.975])
    assert lo <= TRUTH[name] <= hi, (name, lo, hi, TRUTH[name])
