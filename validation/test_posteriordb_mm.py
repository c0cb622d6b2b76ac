"""posteriordb ``one_comp_mm_elim_abs``: the project's own ODE model reproduces Stan's reference posterior.

In ``make validate``, not the default suite (~15 min): the ODE gradient costs ~1 ms (20 between-event
solves, each a checkpointed diffrax loop), ODE models run their chains one after another (see
``run_nuts``), and the K_m quantiles need a long run (below).

The spec (``model_specs/michaelis_menten.py``) is written in bayestwin's spec language, not translated from
Stan code: one subject, no between-subject variability, half-Cauchy priors, log-normal error. The reference is
the summary of posteriordb's 10,000 reference draws (``tests/data/posteriordb_mm``).

Tolerances are the issue's: means of k_a, V_m and sigma within 0.1 reference SD; K_m (heavy right tail, its
mean and SD are unstable) by its median and 5 %/95 % quantiles within 10 %. Sampler settings as in the
long Stan run shipped with the case (``stan_long_run_info.json``: adapt_delta 0.99, max_treedepth 12, 0
divergences); at target_accept 0.95 this posterior gave 56 divergences (Km's heavy tail, where only Vm/Km
is identified), and the gate failed as it should. For the means, an ESS above ~1,500 puts the Monte Carlo
SE at about 0.025 SD, so the 0.1 SD window is ~4 MCSE.

Length: 4 x (1000 + 6000). A first run at 4 x (1000 + 1500) (seed 3) passed 6 of 7 but put K_m's q05 at
0.0720 (-16 %), where a 5 % quantile of a tail this wide (log-scale SD ~1.5) has a Monte Carlo SE of ~10 %
at a tail ESS near 1,000: too short to resolve 10 %. Measured at this length (seed 5, the only run made
at it; 853 s on 2 cores, chains one after another as for every ODE model): R-hat 1.000, min ESS 5,114,
0 divergences; means within 0.022 (k_a), 0.007 (V_m) and 0.010 (sigma) reference SD; K_m q05 -5.8 %
(MCSE 4 %), median -1.3 %, q95 +2.6 %.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayestwin.data import read_nonmem
from bayestwin.inference import SamplerConfig, fit_population

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model_specs.michaelis_menten import spec as mm_spec

HERE = Path(__file__).resolve().parents[1] / "tests" / "data" / "posteriordb_mm"


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(HERE / "reference_summary.csv", index_col="param")


@pytest.fixture(scope="module")
def fit():
    data = json.loads((HERE / "data.json").read_text())
    rows = [{"ID": 1, "TIME": data["t0"], "EVID": 1, "AMT": data["D"], "CMT": "depot", "DV": "."}]
    rows += [{"ID": 1, "TIME": t, "EVID": 0, "AMT": 0.0, "CMT": "central", "DV": c}
             for t, c in zip(data["times"], data["C_hat"], strict=True)]
    table = read_nonmem(pd.DataFrame(rows), units={"time": "day", "amt": "mg", "dv": "mg/L"})
    return fit_population(mm_spec(), table, sampler=SamplerConfig(
        chains=4, warmup=1000, draws=6000, seed=5, target_accept=0.99, max_tree_depth=12))


def test_fit_passes_its_gate(fit) -> None:
    assert fit.ok, fit.diagnostics.format()
    assert fit.arrays.n_patients == 1 and len(fit.arrays.observations) == 20


@pytest.mark.parametrize(("ours", "theirs"), [("tv_ka", "k_a"), ("tv_vm", "V_m"), ("sigma_log", "sigma")])
def test_means_within_a_tenth_of_a_reference_sd(fit, reference, ours, theirs) -> None:
    draws = fit.idata.posterior[ours].to_numpy().ravel()
    ref = reference.loc[theirs]
    assert abs(draws.mean() - ref["mean"]) <= 0.1 * ref["sd"], (ours, draws.mean(), ref["mean"], ref["sd"])


@pytest.mark.parametrize(("q", "column"), [(0.05, "q05"), (0.5, "median"), (0.95, "q95")])
def test_km_quantiles_within_ten_percent(fit, reference, q, column) -> None:
    draws = fit.idata.posterior["tv_km"].to_numpy().ravel()
    ours, theirs = float(np.quantile(draws, q)), float(reference.loc["K_m", column])
    assert abs(ours / theirs - 1) <= 0.10, (column, ours, theirs)
