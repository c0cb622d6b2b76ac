"""The twin's compiled cold fit (``bayestwin.inference.twin_program``) and its mixture density.

- ``mixture_log_weights`` (sufficient statistics where they apply) gives ``component_log_weights``'s values
  over random parameters, for the three error models it covers, and the individual model's potential is
  the same as with ``component_log_weights`` (equalities to 1e-10 relative: float64 rounding, not Monte Carlo);
- a second fit in the same process traces nothing; with a program directory, the program is saved
  (``jax.export``) and a fresh program cache loads it instead of tracing, and all three give the same draws
  bitwise (the same StableHLO runs).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp
from model_specs.theophylline import spec as theophylline_spec
from numpyro.infer.util import potential_energy

from bayestwin.data import load_dataset
from bayestwin.diagnostics.convergence import check_convergence
from bayestwin.exceptions import ConvergenceWarning
from bayestwin.inference import twin_program as tp
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.fit import PopulationFit
from bayestwin.inference.fleet_kernel import quadratic_form, sufficient_statistics_apply
from bayestwin.inference.individual import (
    build_individual_model,
    component_log_weights,
    mixture_log_weights,
    mixture_scaling,
    population_prior,
)
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.models import get_model
from bayestwin.spec import ErrorModel, Prior, TwinSpec
from bayestwin.twin import Twin

VALUES = {"tv_ka": 1.57, "tv_cl": 2.76, "tv_v": 31.5, "omega_ka": 0.64, "omega_cl": 0.27, "omega_v": 0.13}


def synthetic_population(spec: TwinSpec, values: dict[str, float], n: int = 400) -> PopulationFit:
    """A ``PopulationFit`` whose posterior is 2 x `n` independent log-normal draws around `values`."""
    rng = np.random.default_rng(0)
    post = {k: v * np.exp(0.1 * rng.normal(size=(2, n))) for k, v in values.items()}
    idata = az.from_dict(posterior=post, sample_stats={"diverging": np.zeros((2, n), bool),
                                                       "energy": rng.normal(size=(2, n))})
    return PopulationFit(spec=spec, idata=idata, diagnostics=check_convergence(idata), arrays=None,
                         data_digest="sha256:synthetic", fit_id="fit-synthetic", wall_time_s=0.0,
                         sampler=SamplerConfig())


@pytest.mark.parametrize("kind", ["additive", "proportional", "lognormal"])
def test_mixture_log_weights_equal_the_component_sum(kind: str) -> None:
    sigma = {"additive": "sigma_add", "proportional": "sigma_prop", "lognormal": "sigma_log"}[kind]
    spec = dataclasses.replace(theophylline_spec(),
                               error=(ErrorModel(kind, priors=((sigma, Prior.half_normal(1.0)),)),))
    pop = synthetic_population(spec, VALUES | {sigma: 0.3})
    model = get_model(spec.model)
    arrays = cohort_arrays(load_dataset("theo_sd").patient(5), spec, model)
    assert sufficient_statistics_apply(spec, arrays.features)
    fast = mixture_log_weights(spec, model, arrays.features)
    assert fast.func.__name__ == "sufficient_log_weights"
    prior = dict(population_prior(spec, pop.population_draws(60), {}))
    center, scale = mixture_scaling(prior)
    prior = {k: jnp.asarray(v) for k, v in prior.items()} | {"center": jnp.asarray(center),
                                                             "scale": jnp.asarray(scale)}
    with_quadratic = prior | {"quadratic": jnp.asarray(quadratic_form(np.asarray(prior["mu"]),
                                                                       np.asarray(prior["chol_inv"])))}
    doses, obs = jax.tree_util.tree_map(lambda a: a[0], (arrays.doses, arrays.obs))
    fn = build_individual_model(spec, model, arrays.features)

    @jax.jit
    @jax.vmap
    def values(z: jax.Array) -> tuple[jax.Array, ...]:
        u = center + scale * z
        slow = component_log_weights(spec, model, prior, u, doses, obs, arrays.features)
        pe = potential_energy(fn, (with_quadratic, doses, obs), {}, {"z": z})
        return slow, fast(prior, u, doses, obs), fast(with_quadratic, u, doses, obs), pe

    slow, plain, quadratic, pe = values(jnp.asarray(np.random.default_rng(1).normal(0.0, 1.5, size=(6, 3))))
    np.testing.assert_allclose(np.asarray(plain), np.asarray(slow), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(quadratic), np.asarray(slow), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(pe), -(np.asarray(logsumexp(slow, axis=1)) - np.log(60)), rtol=1e-10)


def test_a_spec_outside_sufficient_statistics_keeps_the_component_sum() -> None:
    spec = theophylline_spec()
    model = get_model(spec.model)
    assert mixture_log_weights(spec, model, frozenset({"censored"})).func is component_log_weights
    assert mixture_log_weights(spec, model, None).func is component_log_weights


@pytest.fixture(scope="module")
def small():
    spec = theophylline_spec()
    values = VALUES | {"sigma_add": 0.69}
    return spec, synthetic_population(spec, values), load_dataset("theo_sd").patient(5)


def test_a_second_fit_traces_nothing(small, monkeypatch) -> None:
    spec, pop, events = small
    sampler = SamplerConfig(chains=2, warmup=150, draws=150, seed=11, init="prior")  # no climb: less to compile
    assert tp.twin_program_applies(get_model(spec.model), frozenset(), sampler)
    monkeypatch.setattr(tp, "_program_directory", lambda: None)
    before = tp.twin_trace_count()
    first, second = fit_draws(spec, pop, events, sampler), fit_draws(spec, pop, events, sampler)
    assert tp.twin_trace_count() == before + 1
    np.testing.assert_array_equal(first, second)


@pytest.mark.skipif(importlib.util.find_spec("flatbuffers") is None, reason="jax.export serialization needs it")
def test_the_traced_program_is_saved_once_and_loaded_without_tracing(small, tmp_path, monkeypatch) -> None:
    """Saving and loading only (no run: compiling costs ~10 s); validation/test_twin_program_export.py runs them."""
    spec, pop, events = small
    model = get_model(spec.model)
    config = tp.TwinConfig.from_sampler(SamplerConfig(chains=2, warmup=150, draws=150, init="prior"))
    monkeypatch.setattr(tp, "_program_directory", lambda: tmp_path)
    monkeypatch.setattr(tp, "_PROGRAMS", {})
    run = tp.twin_program(spec, model, frozenset(), 50, config)
    arrays = cohort_arrays(events, spec, model)
    prior = dict(population_prior(spec, pop.population_draws(50), {}))
    prior["center"], prior["scale"] = mixture_scaling(prior)
    prior["quadratic"] = quadratic_form(prior["mu"], prior["chol_inv"])
    args = (np.int64(0), {k: jnp.asarray(v) for k, v in prior.items()},
            *jax.tree_util.tree_map(lambda a: a[0], (arrays.doses, arrays.obs)))
    leaves, tree = jax.tree_util.tree_flatten(args)
    before = tp.twin_trace_count()
    saved = tp._exported_program(run.key, model, run.jitted, tree, leaves)
    assert tp.twin_trace_count() == before + 1 and len(list(tmp_path.glob("twin-*.jax"))) == 1
    loaded = tp._exported_program(run.key, model, run.jitted, tree, leaves)
    assert tp.twin_trace_count() == before + 1, "the saved program was traced again instead of loaded"
    assert loaded.__self__.mlir_module_serialized == saved.__self__.mlir_module_serialized
    other_key = (*run.key[:-1], dataclasses.replace(config, draws=151))
    other = tp._exported_program(other_key, model, run.jitted, tree, leaves)
    assert other is not None and len(list(tmp_path.glob("twin-*.jax"))) == 2  # another key: another program


def fit_draws(spec: TwinSpec, pop: PopulationFit, events, sampler: SamplerConfig) -> np.ndarray:
    """ka, cl, v, sigma_add and component of a twin fit, stacked (chain, draw) arrays."""
    with warnings.catch_warnings():  # short chains: these tests compare draws, not convergence
        warnings.simplefilter("ignore", ConvergenceWarning)
        twin = Twin(spec, population=pop, sampler=sampler, n_components=50).fit(events)
    post = twin.idata_.posterior
    return np.stack([post[n].to_numpy() for n in ("ka", "cl", "v", "sigma_add", "component")])
