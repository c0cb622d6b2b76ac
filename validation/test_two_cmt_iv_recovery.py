"""``model_specs/two_cmt_iv.py``: fitted to data simulated from known parameters, the truth is recovered.

Each data set: sixteen patients, one 100 mg IV bolus, nine samples over 24 h, log-normal BSV (SD 0.3) on CL
and V1, proportional error 10 %. Five data sets (simulation seeds 11-15, all that were ever tried: seed 11
was the first, and its V2 interval misses the truth) are fitted; every fit must pass its gate, and of the
20 truth-in-95 %-interval checks at most 3 may miss: if the intervals are calibrated the miss count is
Binomial(20, 0.05), P(>= 4) = 1.6 %.

Sampling: centred random effects with a dense mass matrix. Measured on seed 12, 4 x (1000 + 1000): centred
with a diagonal mass matrix failed the gate (tv_v1 ESS 296, R-hat 1.015: the typical values then move
against all patients' values at once); non-centred passed (min ESS 593); centred + dense min ESS 2,662 in
the same 50 s.
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
UNITS = {"time": "h", "amt": "mg", "dv": "mg/L"}
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


SEEDS = (11, 12, 13, 14, 15)


@pytest.fixture(scope="module")
def fits():
    sampler = SamplerConfig(chains=4, warmup=500, draws=500, dense_mass=True, seed=4)
    return {seed: fit_population(two_cmt_spec(), read_nonmem(_simulate(seed=seed), units=UNITS), sampler=sampler)
            for seed in SEEDS}


def test_every_fit_passes_its_gate(fits) -> None:
    for seed, fit in fits.items():
        assert fit.ok, (seed, fit.diagnostics.format())


def test_truth_inside_the_95_percent_intervals(fits) -> None:
    misses = []
    for seed, fit in fits.items():
        for name, truth in TRUTH.items():
            lo, hi = np.quantile(fit.idata.posterior[name].to_numpy(), [0.025, 0.975])
            if not lo <= truth <= hi:
                misses.append((seed, name, round(float(lo), 3), round(float(hi), 3), truth))
    assert len(misses) <= 3, misses
