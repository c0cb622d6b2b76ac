"""posteriordb ``rats_data-rats_model``: random intercepts and slopes on the identity scale, flat priors on SDs.

The spec (``model_specs/rats.py``) is the Stan model in bayestwin's own terms: ``longitudinal.linear`` with
intercept and slope on the identity scale (additive normal random effects, centred as in Stan), time centred
at xbar = 22 days (a fixed ``time_ref``), and Stan's implicit flat priors on the three SDs as
``Prior("HalfFlat")``. posteriordb has no reference draws for this posterior; the reference is the long Stan
run shipped with the case (``tests/data/posteriordb_rats``: 4 x 5000 draws, R-hat <= 1.0004, ESS ~12,000-38,000).

Compared: the means of mu_alpha, mu_beta, sigma_y, sigma_alpha, sigma_beta, alpha0 = mu_alpha - xbar mu_beta
(Stan's generated quantity, computed here from the draws) and every rat's alpha and beta (66 quantities), each
within 4 combined MCSEs (ours from ``az.mcse``, the reference's sd / sqrt(ess_approx)) plus 0.02 reference SD
(``bayestwin.testing.compare_to_reference``). Sampler: 4 chains x (1000 + 2500), target_accept 0.9, seed 2
(chosen before the first run and not changed). Measured (2 cores, shared): ~25 s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from bayestwin.inference import SamplerConfig, fit_population
from bayestwin.testing import compare_to_reference

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from model_specs.rats import XBAR, events, spec

HERE = Path(__file__).resolve().parents[1] / "data" / "posteriordb_rats"
K, ALLOWANCE_SD = 4.0, 0.02
HYPER = {"mu_alpha": "tv_intercept", "mu_beta": "tv_slope", "sigma_y": "sigma_add",
         "sigma_alpha": "omega_intercept", "sigma_beta": "omega_slope"}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(HERE / "stan_long_run_summary.csv", index_col="param")


@pytest.fixture(scope="module")
def fit():
    data = json.loads((HERE / "data.json").read_text())
    assert data["xbar"] == XBAR
    return fit_population(spec(), events(data), sampler=SamplerConfig(chains=4, warmup=1000, draws=2500, seed=2,
                                                                       target_accept=0.9))


@pytest.fixture(scope="module")
def comparison(fit, reference) -> pd.DataFrame:
    post = fit.idata.posterior
    draws = {theirs: post[ours].to_numpy() for theirs, ours in HYPER.items()}
    draws["alpha0"] = post["tv_intercept"].to_numpy() - XBAR * post["tv_slope"].to_numpy()
    for i in range(30):
        draws[f"alpha[{i + 1}]"] = post["intercept"].to_numpy()[:, :, i]
        draws[f"beta[{i + 1}]"] = post["slope"].to_numpy()[:, :, i]
    table = compare_to_reference(draws, reference, k=K, allowance_sd=ALLOWANCE_SD)
    print(table.round(4).to_string())
    return table


def test_fit_passes_its_gate(fit) -> None:
    assert fit.ok, fit.diagnostics.format()
    assert fit.diagnostics.divergences == 0
    assert fit.arrays.n_patients == 30 and len(fit.arrays.observations) == 150
    assert [str(p) for p in fit.idata.posterior["patient"].to_numpy()] == [str(i) for i in range(1, 31)]
    # identity scale: the between-rat SDs are in the parameters' units (not log-scale SDs)
    assert fit.idata.posterior["omega_slope"].attrs["unit"] == "g/day"
    assert fit.idata.posterior["sigma_add"].attrs["unit"] == "g"


@pytest.mark.parametrize("quantity", [*HYPER, "alpha0"])
def test_population_means_agree_with_the_long_stan_run(comparison, quantity) -> None:
    row = comparison[comparison["quantity"] == quantity].iloc[0]
    assert row["ok"], row.to_dict()


def test_every_rats_intercept_and_slope_agree(comparison) -> None:
    per_rat = comparison[comparison["quantity"].str.contains(r"\[")]
    assert len(per_rat) == 60
    assert per_rat["ok"].all(), per_rat[~per_rat["ok"]].to_string()
