"""Inference for mixed models: identity-scale parameters, flat priors, known SDs, dose-free models.

Values are exact: the population model's per-patient parameters are read off a trace with every sample site
fixed, the likelihood is compared with scipy, and unit conversions with ``bayestwin.units.convert``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pandas as pd
import pytest
from numpyro import handlers
from numpyro.infer import Predictive
from scipy import stats

import bayestwin.dynamics  # noqa: F401  - enables jax_enable_x64 before any array is made
from bayestwin.data import read_nonmem
from bayestwin.exceptions import DataValidationError, SpecError
from bayestwin.inference.arrays import SEGMENT_STARTS, cohort_arrays
from bayestwin.inference.individual import component_log_weights, population_prior
from bayestwin.inference.likelihood import observation_loglik, residual_sd
from bayestwin.inference.outputs import simulate_observations
from bayestwin.inference.population import build_population_model
from bayestwin.inference.priors import ImproperPrior, to_numpyro
from bayestwin.inference.sampler import init_near_prior_median
from bayestwin.models import get_model
from bayestwin.spec import CovariateEffect, ErrorModel, Parameter, Prior, TwinSpec
from bayestwin.testing import check_model

LEVEL, LINEAR = get_model("longitudinal.level"), get_model("longitudinal.linear")
UNITS = {"time": "h", "dv": "g", "X": "kg"}


def _spec(*, centered: bool = False, error: ErrorModel | None = None, bsv: Prior | None = None,
          reference: float = 70.0) -> TwinSpec:
    return TwinSpec(
        name="level", model="longitudinal.level", centered=centered,
        parameters=(Parameter("level", unit="g", typical=Prior("Normal", mu=0.0, sigma=5.0),
                              bsv=bsv or Prior.half_normal(2.0), scale="identity",
                              covariates=(CovariateEffect("X", form="linear", reference=reference,
                                                          prior=Prior("Normal", mu=0.0, sigma=1.0), unit="kg"),)),),
        error=(error or ErrorModel("additive", output="value"),),
        units=(("time", "h"), ("amt", "mg"), ("value", "g")))


def _table(x: list[float], ids: list[int] | None = None, times: list[float] | None = None, **extra: list) -> object:
    n = len(x)
    frame = pd.DataFrame({"ID": ids or list(range(1, n + 1)), "TIME": times or [0.0] * n,
                          "DV": [1.0] * n, "X": x, **extra})
    return read_nonmem(frame, units=UNITS)


def _theta(spec: TwinSpec, table: object, values: dict[str, object]) -> np.ndarray:
    """The deterministic per-patient parameter ``level`` with every sample site fixed to `values`."""
    arrays = cohort_arrays(table, spec, LEVEL)
    fn = build_population_model(spec, LEVEL, arrays.features)
    covs = {k: jnp.asarray(v) for k, v in arrays.covariates.items()}
    tr = handlers.trace(handlers.substitute(handlers.seed(fn, 0), data=values)).get_trace(arrays.doses, arrays.obs,
                                                                                          covs)
    return np.asarray(tr["level"]["value"])


# --- identity scale in the population model -------------------------------------------------------------
def test_identity_scale_non_centred_is_additive() -> None:
    z = np.array([[0.5], [-1.0], [2.0]])
    theta = _theta(_spec(), _table([60.0, 70.0, 85.0]), {"tv_level": -2.0, "beta_level_X": 0.1,
                                                         "omega_level": 3.0, "eta_z": z, "sigma_add": 1.0})
    np.testing.assert_allclose(theta, -2.0 + 0.1 * (np.array([60.0, 70.0, 85.0]) - 70.0) + 3.0 * z[:, 0], rtol=1e-15)
    assert theta.min() < 0  # an identity-scale parameter may be negative


def test_identity_scale_centred_adds_eta() -> None:
    eta = np.array([[0.5], [-4.0]])
    theta = _theta(_spec(centered=True), _table([70.0, 80.0]), {"tv_level": 1.5, "beta_level_X": -0.2,
                                                                "omega_level": 3.0, "eta": eta, "sigma_add": 1.0})
    np.testing.assert_allclose(theta, [1.5 + 0.5, 1.5 - 0.2 * 10.0 - 4.0], rtol=1e-15)


def test_identity_scale_with_a_covariate_that_changes_within_a_patient() -> None:
    # patient 1 at 60 kg, then 80 kg from t = 2; patient 2 constant: (patient, segment) values
    table = _table([60.0, 60.0, 80.0, 70.0], ids=[1, 1, 1, 2], times=[0.0, 1.0, 2.0, 0.0])
    arrays = cohort_arrays(table, _spec(), LEVEL)
    np.testing.assert_array_equal(arrays.covariates[SEGMENT_STARTS][:, :2], [[-np.inf, 2.0], [-np.inf, np.inf]])
    theta = _theta(_spec(), table, {"tv_level": 1.0, "beta_level_X": 0.5, "omega_level": 2.0,
                                    "eta_z": np.array([[1.0], [0.0]]), "sigma_add": 1.0})
    np.testing.assert_allclose(theta[:, :2], [[1.0 - 5.0 + 2.0, 1.0 + 5.0 + 2.0], [1.0, 1.0]], rtol=1e-15)


def test_log_scale_is_unchanged() -> None:
    # the existing multiplicative model: cl = TV (WT / 70)^0.75 exp(eta)
    spec = TwinSpec(name="log", model="longitudinal.level",
                    parameters=(Parameter("level", unit="g", typical=Prior.lognormal(median=3.0, sigma=1.0),
                                          bsv=Prior.half_normal(0.5), covariates=(
                                              CovariateEffect("X", form="power", reference=70.0, fixed=0.75),)),),
                    error=(ErrorModel("additive", output="value"),),
                    units=(("time", "h"), ("amt", "mg"), ("value", "g")))
    z = np.array([[0.4], [-0.3]])
    theta = _theta(spec, _table([35.0, 140.0]), {"tv_level": 3.0, "omega_level": 0.5, "eta_z": z, "sigma_add": 1.0})
    np.testing.assert_allclose(theta, 3.0 * (np.array([35.0, 140.0]) / 70.0) ** 0.75 * np.exp(0.5 * z[:, 0]),
                               rtol=1e-14)


# --- identity scale in the twin's prior ----------------------------------------------------------------
def test_population_prior_on_the_identity_scale() -> None:
    spec = TwinSpec(name="line", model="longitudinal.linear",
                    parameters=(Parameter("intercept", unit="g", typical=Prior("Normal", mu=0.0, sigma=5.0),
                                          bsv=Prior.half_normal(2.0), scale="identity",
                                          covariates=(CovariateEffect("X", form="linear", reference=70.0,
                                                                      prior=Prior("Normal", mu=0.0, sigma=1.0)),)),
                                Parameter("slope", unit="g/h", typical=Prior("Normal", mu=0.0, sigma=5.0),
                                          scale="identity")),
                    error=(ErrorModel("additive", output="value"),),
                    units=(("time", "h"), ("amt", "mg"), ("value", "g")))
    draws = {"tv_intercept": np.array([-2.0, 1.0]), "beta_intercept_X": np.array([0.1, 0.2]),
             "tv_slope": np.array([-0.5, 0.25]), "omega_intercept": np.array([3.0, 1.0]),
             "sigma_add": np.array([0.5, 0.7])}
    prior = population_prior(spec, draws, {"X": 80.0})
    np.testing.assert_allclose(prior["mu"][:, 0], [-2.0 + 1.0, 1.0 + 2.0])
    np.testing.assert_allclose(prior["fixed"][:, 0], [-0.5, 0.25])  # the natural value, not exp(...)
    np.testing.assert_allclose(prior["chol"][:, 0, 0], [3.0, 1.0])
    # the component weights: N(u; mu_k, omega_k) + the likelihood of y = 4 at t = 2 given intercept u
    table = read_nonmem(pd.DataFrame({"ID": [1], "TIME": [2.0], "DV": [4.0], "X": [80.0]}), units=UNITS)
    arrays = cohort_arrays(table, spec, LINEAR)
    one = lambda a: jax.tree_util.tree_map(lambda v: v[0], a)  # noqa: E731
    u = jnp.array([-1.5])
    logw = component_log_weights(spec, LINEAR, {k: jnp.asarray(v) for k, v in prior.items()}, u,
                                 one(arrays.doses), one(arrays.obs), arrays.features)
    pred = -1.5 + np.array([-0.5, 0.25]) * 2.0
    expected = stats.norm.logpdf(-1.5, [-1.0, 3.0], [3.0, 1.0]) + stats.norm.logpdf(4.0, pred, [0.5, 0.7])
    np.testing.assert_allclose(np.asarray(logw), expected, rtol=1e-12)


# --- flat priors ------------------------------------------------------------------------------------------
def test_sampling_a_flat_prior_is_refused_naming_the_site() -> None:
    spec = _spec(error=ErrorModel("additive", output="value", priors=(("sigma_add", Prior("HalfFlat")),)))
    arrays = cohort_arrays(_table([70.0, 80.0]), spec, LEVEL)
    fn = build_population_model(spec, LEVEL, arrays.features)
    covs = {k: jnp.asarray(v) for k, v in arrays.covariates.items()}
    with pytest.raises(SpecError, match=r"the HalfFlat prior of 'sigma_add' is improper \(a flat density that does "
                                        r"not integrate to one\) and cannot be sampled: prior predictive draws"):
        Predictive(fn, num_samples=3)(jax.random.PRNGKey(0), arrays.doses, arrays.obs, covs)


def test_check_model_reports_a_flat_prior_it_cannot_draw_from() -> None:
    spec = _spec(bsv=Prior("HalfFlat"), reference=0.0)
    spec = TwinSpec.from_dict(spec.to_dict() | {"parameters": [
        {**spec.parameters[0].to_dict(), "covariates": []}]})  # no covariates: the harness simulates none
    report = check_model(LEVEL, spec, checks=("prior_predictive",), n_prior_draws=10)
    assert not report.ok
    assert "the HalfFlat prior of 'omega_level' is improper" in report.format()


@pytest.mark.parametrize(("family", "low", "high"), [("Flat", -0.5, 0.5), ("HalfFlat", np.exp(-0.5), np.exp(0.5))])
def test_chains_start_from_flat_priors_at_a_finite_point(family: str, low: float, high: float) -> None:
    def model() -> None:
        numpyro.sample("x", to_numpyro(Prior(family), site="x"))

    tr = handlers.trace(handlers.substitute(handlers.seed(model, 3), substitute_fn=init_near_prior_median)).get_trace()
    assert isinstance(tr["x"]["fn"], ImproperPrior)
    assert low <= float(tr["x"]["value"]) <= high
    assert float(tr["x"]["fn"].log_prob(2.0)) == 0.0


def test_chains_start_an_identity_scale_typical_value_at_its_prior_location() -> None:
    # Normal(10, 5): start at 10 +- 0.5, not at the origin (which put a cohort's starts 1e10 nats out)
    def model() -> None:
        numpyro.sample("tv", to_numpyro(Prior("Normal", mu=10.0, sigma=5.0)))
        numpyro.sample("b", to_numpyro(Prior("Cauchy", mu=-3.0, sigma=1.0)))

    for seed in range(5):
        tr = handlers.trace(handlers.substitute(handlers.seed(model, seed), substitute_fn=init_near_prior_median)
                            ).get_trace()
        assert 9.5 <= float(tr["tv"]["value"]) <= 10.5 and -3.5 <= float(tr["b"]["value"]) <= -2.5


# --- known measurement SDs --------------------------------------------------------------------------------
def test_known_sd_likelihood_is_normal_with_each_observations_sd() -> None:
    y, pred, sd = jnp.array([28.0, 8.0, -3.0]), jnp.array([5.0, 5.0, 5.0]), jnp.array([15.0, 10.0, 16.0])
    ll = observation_loglik(y, pred, kind="known_sd", sigmas={}, cens=jnp.zeros(3, dtype=int),
                            limit=jnp.full(3, jnp.nan), mask=jnp.ones(3, dtype=bool), sd=sd)
    np.testing.assert_allclose(np.asarray(ll), stats.norm.logpdf([28.0, 8.0, -3.0], 5.0, [15.0, 10.0, 16.0]),
                               rtol=1e-14)


def test_known_sd_padding_contributes_nothing_and_keeps_gradients_finite() -> None:
    mask = jnp.array([True, False, False])
    sd = jnp.array([2.0, jnp.nan, -1.0])  # garbage in the padded slots

    def total(pred: jax.Array) -> jax.Array:
        return jnp.sum(observation_loglik(jnp.array([1.0, jnp.nan, 3.0]), pred, kind="known_sd", sigmas={},
                                          cens=jnp.zeros(3, dtype=int), limit=jnp.full(3, jnp.nan), mask=mask, sd=sd))

    pred = jnp.array([0.5, 1.0, 1.0])
    assert float(total(pred)) == pytest.approx(stats.norm.logpdf(1.0, 0.5, 2.0), rel=1e-14)
    grad = np.asarray(jax.grad(total)(pred))
    np.testing.assert_allclose(grad, [(1.0 - 0.5) / 4.0, 0.0, 0.0])


def test_known_sd_without_sds_is_refused() -> None:
    with pytest.raises(SpecError, match=r"a known_sd error model needs each observation's SD: pass sd="):
        residual_sd(jnp.ones(2), "known_sd", {})
    with pytest.raises(SpecError, match=r"output 'value' has a known_sd error model: simulating new observations of "
                                        r"it needs each one's SD \(sd=\)"):
        simulate_observations(jax.random.PRNGKey(0), jnp.ones(2), jnp.zeros(2, dtype=int),
                              errors=[ErrorModel("known_sd", output="value")], sigmas=[{}])


def test_known_sd_simulation_uses_each_sd() -> None:
    sd = jnp.where(jnp.arange(20000) % 2 == 0, 1.0, 5.0)
    y = np.asarray(simulate_observations(jax.random.PRNGKey(1), jnp.zeros(20000), jnp.zeros(20000, dtype=int),
                                         errors=[ErrorModel("known_sd", output="value")], sigmas=[{}], sd=sd))
    assert y[::2].std() == pytest.approx(1.0, rel=0.03) and y[1::2].std() == pytest.approx(5.0, rel=0.03)


def test_dvsd_reaches_the_arrays_in_the_outputs_unit() -> None:
    spec = _spec(error=ErrorModel("known_sd", output="value"))
    frame = pd.DataFrame({"ID": [1, 1, 2], "TIME": [0.0, 1.0, 0.0], "DV": [2500.0, 1800.0, 900.0],
                          "DVSD": [300.0, 250.0, 125.0], "X": 70.0})
    arrays = cohort_arrays(read_nonmem(frame, units=UNITS | {"dv": "mg"}), spec, LEVEL)  # data in mg, spec in g
    sd = np.asarray(arrays.obs.sd)
    np.testing.assert_array_equal(sd[0, :2], [0.3, 0.25])
    np.testing.assert_array_equal(sd[1, :1], [0.125])
    assert np.isnan(sd[1, 1:]).all()  # padding
    np.testing.assert_array_equal(np.asarray(arrays.obs.value)[0, :2], [2.5, 1.8])


def test_a_missing_sd_is_a_data_error_at_its_row_and_column() -> None:
    spec = _spec(error=ErrorModel("known_sd", output="value"))
    frame = pd.DataFrame({"ID": [1, 1, 2], "TIME": [0.0, 1.0, 0.0], "DV": [2.5, 1.8, 0.9],
                          "DVSD": [0.3, None, 0.1], "X": 70.0})
    with pytest.raises(DataValidationError) as info:
        cohort_arrays(read_nonmem(frame, units=UNITS), spec, LEVEL)
    v = info.value.violations
    assert v[["rule", "patient", "row", "column"]].values.tolist() == [["O011", 1, 1, "DVSD"]]
    assert "observation of DVID 1 without its measurement SD" in str(info.value)


def test_an_estimated_error_model_ignores_dvsd() -> None:
    frame = pd.DataFrame({"ID": [1, 2], "TIME": [0.0, 0.0], "DV": [2.5, 0.9], "DVSD": [None, 0.1], "X": 70.0})
    arrays = cohort_arrays(read_nonmem(frame, units=UNITS), _spec(), LEVEL)
    assert np.isnan(np.asarray(arrays.obs.sd)).all()


# --- dose-free models -------------------------------------------------------------------------------------
def test_observation_only_data_need_no_amount_unit() -> None:
    arrays = cohort_arrays(_table([70.0, 71.0]), _spec(), LEVEL)
    assert arrays.doses.mask.shape == (2, 1) and not bool(arrays.doses.mask.any())
    assert arrays.units == {"time": "h", "amt": "mg", "value": "g"}


def test_a_dose_record_for_a_dose_free_model_is_refused_at_its_row() -> None:
    frame = pd.DataFrame({"ID": [1, 1], "TIME": [0.0, 1.0], "AMT": [100.0, 0.0], "DV": [None, 2.0], "X": 70.0})
    table = read_nonmem(frame, units=UNITS | {"amt": "mg"})
    with pytest.raises(SpecError, match=r"row 0 \(patient 1\) is a dose record \(EVID 1\), but model "
                                        r"'longitudinal.level' takes no doses"):
        cohort_arrays(table, _spec(), LEVEL)


def test_a_compartment_on_an_observation_of_a_dose_free_model_is_a_data_error() -> None:
    frame = pd.DataFrame({"ID": [1], "TIME": [0.0], "DV": [2.0], "CMT": [2], "X": 70.0})
    with pytest.raises(DataValidationError, match=r"compartment 2 is not in the model; it has none \(it takes no "
                                                  r"doses: leave CMT empty or 0\)"):
        cohort_arrays(read_nonmem(frame, units=UNITS), _spec(), LEVEL)


@pytest.mark.parametrize(("model", "theta", "expected"), [
    (LEVEL, {"level": -2.5}, [-2.5, -2.5, -2.5]),
    (LINEAR, {"intercept": 240.0, "slope": 6.0, "time_ref": 22.0}, [156.0, 240.0, 324.0]),
    (LINEAR, {"intercept": 1.0, "slope": -0.5}, [-3.0, -10.0, -17.0]),  # time_ref defaults to 0
])
def test_dose_free_predictions(model: object, theta: dict[str, float], expected: list[float]) -> None:
    doses = jax.tree_util.tree_map(lambda v: v[0], cohort_arrays(_table([70.0]), _spec(), LEVEL).doses)  # none
    out = model.predict({k: jnp.asarray(v) for k, v in theta.items()}, doses, jnp.array([8.0, 22.0, 36.0]))
    assert out.shape == (3, 1)
    np.testing.assert_allclose(np.asarray(out[:, 0]), expected, rtol=1e-15)


def test_dose_free_predictions_with_segments() -> None:
    starts = jnp.array([-jnp.inf, 2.0, jnp.inf])
    times = jnp.array([0.0, 1.9, 2.0, 5.0])
    lvl = LEVEL.predict_segments({"level": jnp.array([1.0, -1.0, 9.0])}, starts, None, times)
    np.testing.assert_array_equal(np.asarray(lvl[:, 0]), [1.0, 1.0, -1.0, -1.0])
    lin = LINEAR.predict_segments({"intercept": jnp.array([1.0, 2.0, 0.0]), "slope": jnp.array([1.0, -1.0, 0.0])},
                                  starts, None, times)
    np.testing.assert_allclose(np.asarray(lin[:, 0]), [1.0, 2.9, 0.0, -3.0])
