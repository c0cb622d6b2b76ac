"""fit_fleet against Twin.fit on six theophylline subjects, with a real population fit (issue 9).

In `make validate` (the default suite compares one subject against a synthetic population:
tests/inference/test_fleet.py). Per subject and quantity (ka, CL, V, the residual SD drawn with each
draw's population component): means within 4 combined Monte Carlo standard errors, SDs within 4 combined
MCSEs of the SD; 24 comparisons each, a false alarm has probability ~1.5e-3 per family at k = 4.
Also phenobarbital (covariates: each neonate's own mixture prior) on six neonates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az
import numpy as np
import pytest

from bayestwin.data import load_dataset
from bayestwin.inference import SamplerConfig, fit_population
from bayestwin.inference.fleet import fit_fleet
from bayestwin.twin import Twin
from bayestwin.twin_fleet import fleet_twin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inference"))
from model_specs.phenobarbital import spec as phenobarbital_spec
from model_specs.theophylline import spec as theophylline_spec
from test_fleet import mcse_sd

SAMPLER = SamplerConfig(chains=4, warmup=1000, draws=1000, seed=11)
CASES = {"theophylline": (theophylline_spec, "theo_sd", [1, 3, 5, 8, 10, 12]),
         "phenobarbital": (phenobarbital_spec, "pheno_sd", [1, 2, 3, 4, 5, 6])}


@pytest.mark.parametrize("case", list(CASES))
def test_fleet_posteriors_equal_twin_fit_posteriors(case: str) -> None:
    make_spec, dataset, patients = CASES[case]
    spec, data = make_spec(), load_dataset(dataset)
    pop = fit_population(spec, data, sampler=SamplerConfig(chains=4, warmup=1000, draws=1000, seed=2))
    assert pop.ok, pop.diagnostics.format()
    cohort = data.exclude(~data.frame["id"].isin(patients), reason="not compared")
    fleet = fit_fleet(spec, pop, cohort, sampler=SAMPLER)
    assert fleet.ok, fleet.diagnostics
    names = list(spec.parameter_names) + list(spec.sigma_names)
    for pid in patients:
        mine = fleet_twin(fleet, pid)
        twin = Twin(spec, population=pop, sampler=SAMPLER).fit(data.patient(pid))
        assert twin.diagnostics_.ok and mine.diagnostics_.ok
        for name in names:
            a, b = (t.idata_.posterior[name].to_numpy() for t in (mine, twin))
            if np.ptp(a) == 0 and np.ptp(b) == 0:  # a fixed parameter
                assert a.flat[0] == b.flat[0]
                continue
            mcse = np.hypot(*(np.ravel(az.mcse(x)).item() for x in (a, b)))
            assert abs(a.mean() - b.mean()) <= 4 * mcse, (pid, name, a.mean(), b.mean(), mcse)
            sd_err = np.hypot(mcse_sd(a), mcse_sd(b))
            assert abs(a.std() - b.std()) <= 4 * sd_err, (pid, name, a.std(), b.std(), sd_err)
