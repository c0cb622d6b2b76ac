"""Fleets of twins (``fit_fleet``): each patient gets ``Twin.fit``'s posterior, exact when conjugate, no recompiling.

The population is a fixed set of draws (a synthetic ``PopulationFit`` around the nlmixr2 theophylline
estimates): both ``Twin.fit`` and ``fit_fleet`` condition on it, so the test needs no population fit.
Tolerances: means within 4 combined Monte Carlo standard errors, SDs within 4 combined MCSEs of the SD
(arviz ``mcse(method="sd")``): a two-sided false alarm rate of about 6e-5 per comparison.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayestwin.data import load_dataset, read_nonmem
from bayestwin.diagnostics.convergence import ConvergenceGate, check_convergence
from bayestwin.exceptions import ConvergenceError, ConvergenceWarning, InputError, SpecError
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.fit import PopulationFit
from bayestwin.inference.fleet import _priors, fit_fleet, fleet_diagnostics
from bayestwin.inference.fleet_kernel import fleet_trace_count, sufficient_log_weights, sufficient_statistics_apply
from bayestwin.inference.individual import component_log_weights
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.models import get_model
from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec
from bayestwin.twin import Twin
from bayestwin.twin_fleet import fleet_twin, fleet_twins

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from model_specs.theophylline import spec as theophylline_spec

SAMPLER = SamplerConfig(chains=4, warmup=300, draws=500, seed=3)
FIRST, SECOND = [1, 5, 12], [2, 7, 9]  # theo_sd subjects; every one has 1 dose and 11 samples (same buckets)


def synthetic_population(spec: TwinSpec, values: dict[str, float], spread: float, n: int = 400) -> PopulationFit:
    """A ``PopulationFit`` whose posterior is `n` x 2 independent log-normal draws around `values`."""
    rng = np.random.default_rng(0)
    post = {k: v * np.exp(spread * rng.normal(size=(2, n))) for k, v in values.items()}
    idata = az.from_dict(posterior=post, sample_stats={"diverging": np.zeros((2, n), bool),
                                                       "energy": rng.normal(size=(2, n))})
    return PopulationFit(spec=spec, idata=idata, diagnostics=check_convergence(idata), arrays=None,
                         data_digest="sha256:synthetic", fit_id="fit-synthetic", wall_time_s=0.0,
                         sampler=SamplerConfig())


def mcse_sd(draws: np.ndarray) -> float:
    """MCSE of the SD estimate of `draws` (chain, draw): arviz's formula (its numba path fails on this input)."""
    sq = (draws - draws.mean()) ** 2
    var = sq.mean()
    var_var = ((sq**2).mean() - var**2) / np.ravel(az.ess(sq, method="mean")).item()
    return float(np.sqrt(var_var / var / 4))


def only(table, patients):
    return table.exclude(~table.frame["id"].isin(patients), reason="not in this cohort")


@pytest.fixture(scope="module")
def theo_setup():
    spec = theophylline_spec()
    pop = synthetic_population(spec, {"tv_ka": 1.57, "tv_cl": 2.76, "tv_v": 31.5, "omega_ka": 0.64,
                                      "omega_cl": 0.27, "omega_v": 0.13, "sigma_add": 0.69}, spread=0.1)
    theo = load_dataset("theo_sd")
    fleet = fit_fleet(spec, pop, only(theo, FIRST), sampler=SAMPLER, lanes=4, chunk_size=4)
    return spec, pop, theo, fleet


def test_fleet_posterior_equals_the_twin_fit_posterior(theo_setup) -> None:
    """One patient here (a Twin.fit costs ~25 s on 2 shared cores); validation/test_fleet_vs_twin.py checks 6."""
    spec, pop, theo, fleet = theo_setup
    assert fleet.idata.posterior["cl"].dims == ("chain", "draw", "patient")
    assert list(fleet.idata.posterior["patient"].values) == FIRST
    for pid in FIRST[-1:]:
        twin = Twin(spec, population=pop, sampler=SAMPLER).fit(theo.patient(pid))
        mine = fleet_twin(fleet, pid)
        assert set(mine.idata_.posterior.data_vars) == set(twin.idata_.posterior.data_vars)
        assert mine.diagnostics_.ok and twin.diagnostics_.ok, (pid, mine.diagnostics_.format())
        for name in ["ka", "cl", "v", "sigma_add"]:
            a, b = (t.idata_.posterior[name].to_numpy() for t in (mine, twin))
            mcse = np.hypot(*(np.ravel(az.mcse(x)).item() for x in (a, b)))
            assert abs(a.mean() - b.mean()) <= 4 * mcse, (pid, name, a.mean(), b.mean(), mcse)
            sd_err = np.hypot(mcse_sd(a), mcse_sd(b))
            assert abs(a.std() - b.std()) <= 4 * sd_err, (pid, name, a.std(), b.std(), sd_err)


def test_the_fleet_gate_is_each_twins_gate(theo_setup) -> None:
    spec, _, _, fleet = theo_setup
    assert fleet.ok and fleet.failed == []
    for pid in FIRST:
        report = fleet_twin(fleet, pid).diagnostics_
        row = fleet.diagnostics.loc[pid]
        assert bool(row["ok"]) == report.ok
        assert row["max_rhat"] == pytest.approx(report.max_rhat, rel=1e-12)
        assert min(row["min_ess_bulk"], row["min_ess_tail"]) == pytest.approx(report.min_ess, rel=1e-12)
        assert row["divergences"] == report.divergences
    strict = ConvergenceGate(min_ess_bulk=1e9)  # no fit passes this: every patient is listed as failed
    failed = dataclasses.replace(fleet, diagnostics=fleet_diagnostics(fleet.idata, list(spec.bsv_parameters), strict))
    assert failed.failed == FIRST and not failed.ok
    with pytest.raises(ConvergenceError, match=r"3 of 3 twins failed(.|\n)*patient 12: ESS \d+ < 1000000000"):
        failed.require_converged()
    failed.require_converged(override=True)
    assert "3 FAILED" in repr(failed)
    assert list(fleet_twins(failed)) == [] and list(fleet_twins(failed, include_failed=True)) == FIRST


def test_a_second_cohort_and_its_forecasts_compile_nothing(theo_setup, count_compiles) -> None:
    spec, pop, theo, fleet = theo_setup
    fleet_twin(fleet, FIRST[0]).forecast(np.linspace(0.0, 48.0, 25))  # the forecast's own first compilation
    traces = fleet_trace_count()
    with count_compiles() as c:
        second = fit_fleet(spec, pop, only(theo, SECOND), sampler=dataclasses.replace(SAMPLER, seed=4), lanes=4,
                           chunk_size=4)
        fit_compiles = c.n
        fc = fleet_twin(second, SECOND[1]).forecast(np.linspace(0.0, 48.0, 25))
    assert fit_compiles == 0 and fleet_trace_count() == traces
    assert c.n == 0, f"the forecast of a new patient of a seen size compiled {c.n} programs"
    assert list(second.idata.posterior["patient"].values) == SECOND and second.ok
    assert fc.metadata["patient"] == str(SECOND[1])


def test_refusals_name_the_problem(theo_setup) -> None:
    spec, pop, theo, fleet = theo_setup
    other = dataclasses.replace(spec, name="other")
    with pytest.raises(SpecError, match=r"fitted with spec 'theophylline\.one_cmt_oral'"):
        fit_fleet(other, pop, only(theo, FIRST))
    with pytest.raises(InputError, match="chunk_size must be a positive multiple of lanes=4, got 6"):
        fit_fleet(spec, pop, only(theo, FIRST), lanes=4, chunk_size=6)
    with pytest.raises(InputError, match="patient 99 is not in this fleet"):
        fleet_twin(fleet, 99)


@pytest.mark.parametrize("kind", ["additive", "proportional", "lognormal"])
def test_sufficient_statistics_give_the_same_log_weights(theo_setup, kind: str) -> None:
    spec, pop, theo, _ = theo_setup
    sigma = {"additive": "sigma_add", "proportional": "sigma_prop", "lognormal": "sigma_log"}[kind]
    spec = dataclasses.replace(spec, error=(ErrorModel(kind, priors=((sigma, Prior.half_normal(1.0)),)),))
    pop = synthetic_population(spec, {"tv_ka": 1.57, "tv_cl": 2.76, "tv_v": 31.5, "omega_ka": 0.64,
                                      "omega_cl": 0.27, "omega_v": 0.13, sigma: 0.3}, spread=0.1)
    model = get_model(spec.model)
    arrays = cohort_arrays(only(theo, FIRST), spec, model)
    assert sufficient_statistics_apply(spec, arrays.features)
    prior = {k: jnp.asarray(v[1]) for k, v in _priors(spec, pop, arrays, 50).items()}
    one = jax.tree_util.tree_map(lambda a: a[1], (arrays.doses, arrays.obs))
    for u in np.random.default_rng(0).normal(np.log([1.5, 2.8, 31.0]), 0.5, size=(5, 3)):
        fast = sufficient_log_weights(spec, model, prior, jnp.asarray(u), *one, arrays.features)
        slow = component_log_weights(spec, model, prior, jnp.asarray(u), *one, arrays.features)
        np.testing.assert_allclose(np.asarray(fast), np.asarray(slow), rtol=1e-11)


def _egfr_spec() -> TwinSpec:
    return TwinSpec(
        name="test.egfr_linear", model="renal.egfr_linear",
        parameters=(Parameter("egfr_ref", unit="mL/min", typical=Prior("Normal", mu=45.0, sigma=20.0),
                              bsv=Prior.half_normal(15.0), scale="identity"),
                    Parameter("slope", unit="mL/min/year", typical=Prior("Normal", mu=-2.0, sigma=3.0),
                              bsv=Prior.half_normal(2.0), scale="identity"),
                    Parameter("time_ref", unit="year", fixed=2.0, scale="identity")),
        error=(ErrorModel("additive", output="egfr", priors=(("sigma_add", Prior.half_normal(5.0)),)),),
        units=(("time", "year"), ("amt", "mg"), ("egfr", "mL/min")))


def test_exact_conjugate_posterior_of_a_linear_gaussian_twin() -> None:
    """Linear eGFR model, one population component: each twin's posterior is a known bivariate normal."""
    spec = _egfr_spec()
    pop = synthetic_population(spec, {"tv_egfr_ref": 45.0, "tv_slope": 2.0, "omega_egfr_ref": 12.0,
                                      "omega_slope": 1.5, "sigma_add": 4.0}, spread=0.05)
    rng = np.random.default_rng(1)
    rows = []
    visits = {1: 2, 2: 5, 3: 9}  # different numbers of visits: padded slots must not count
    for pid, n in visits.items():
        t = np.sort(rng.uniform(0.0, 4.0, n))
        y = 40.0 + pid - 3.0 * (t - 2.0) + 4.0 * rng.normal(size=n)
        rows += [{"ID": pid, "TIME": round(float(a), 3), "EVID": 0, "DV": round(float(b), 3)}
                 for a, b in zip(t, y, strict=True)]
    cohort = read_nonmem(pd.DataFrame(rows), units={"time": "year", "dv": "mL/min"})
    sampler = SamplerConfig(chains=4, warmup=300, draws=500, seed=5, init="prior")
    fleet = fit_fleet(spec, pop, cohort, sampler=sampler, n_components=1, lanes=3, chunk_size=3)
    point = {k: float(v[0]) for k, v in pop.population_draws(1).items()}
    for pid in visits:
        frame = cohort.patient(pid).observations
        x = np.column_stack([np.ones(len(frame)), frame["time"].to_numpy() - 2.0])
        prior_prec = np.diag([point["omega_egfr_ref"] ** -2, point["omega_slope"] ** -2])
        cov = np.linalg.inv(prior_prec + x.T @ x / point["sigma_add"] ** 2)
        mean = cov @ (prior_prec @ [point["tv_egfr_ref"], point["tv_slope"]]
                      + x.T @ frame["dv"].to_numpy() / point["sigma_add"] ** 2)
        for j, name in enumerate(["egfr_ref", "slope"]):
            draws = fleet.idata.posterior[name].sel(patient=pid).to_numpy()
            mcse = np.ravel(az.mcse(draws)).item()
            assert abs(draws.mean() - mean[j]) <= 4 * mcse, (pid, name, draws.mean(), mean[j], mcse)
            sd = np.sqrt(cov[j, j])
            assert abs(draws.std() - sd) <= 4 * mcse_sd(draws), (pid, name, draws.std(), sd)
        sigma = np.unique(fleet.idata.posterior["sigma_add"].sel(patient=pid).to_numpy())
        assert sigma.tolist() == [point["sigma_add"]]  # one component: the residual SD is that draw's
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert fleet.ok, fleet.diagnostics
