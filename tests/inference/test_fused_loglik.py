"""The fused observation block (issue 9, DENS2) gives today's population density: values to 1e-12, gradients 1e-10.

``inference.fused_loglik.observation_block`` replaces ``predict_cohort`` -> ``outputs_loglik`` in the population
model for closed-form models on bolus-only, uncensored data with one Normal error model, and writes the gradient
out. Reference: the same population model built with the block switched off (``population.observation_block``
patched to return None: today's path, differentiated by JAX), compiled in the same program.

Designs: three patients with unequal padding; several doses into the depot and straight into the central
compartment (``direct``), a reset, bioavailability and lag time estimated (oral models), patients whose first
samples come before the lagged dose; every closed-form PK model with proportional error, and every covered error
kind on the one-compartment oral model. Points: the prior-median start and random unconstrained points.

Tolerance: both paths compute the value by the same operations (equal to the last bits in practice; 1e-12
leaves room for a different summation order), and the gradient from the same exponentials with derivatives that
agree with JAX's to ``~2 eps / |x|`` relative (``bolus.bolus_unit``, ``x = (ka - lam) tau``, here > 1e-3):
1e-10 relative to the gradient's largest entry. Deterministic float64: no Monte Carlo error.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.infer.util import potential_energy

from bayestwin.dynamics.events import Doses, Observations
from bayestwin.inference import population
from bayestwin.inference.fused_loglik import observation_block
from bayestwin.models import get_model
from bayestwin.spec import ErrorModel, Parameter, Prior
from bayestwin.testing.design import default_spec

jax.config.update("jax_enable_x64", True)

RTOL_VALUE, RTOL_GRAD = 1e-12, 1e-10
ORAL = ("pk.one_cmt_oral", "pk.two_cmt_oral")
CASES = [(m, "proportional") for m in ("pk.one_cmt_iv", "pk.two_cmt_iv", *ORAL)] + [
    ("pk.one_cmt_oral", k) for k in ("additive", "combined", "lognormal")]
SIGMAS = {"additive": ("sigma_add",), "proportional": ("sigma_prop",), "combined": ("sigma_add", "sigma_prop"),
          "lognormal": ("sigma_log",)}


def _spec(name: str, kind: str):
    model = get_model(name)
    spec = default_spec(model)
    params = spec.parameters
    if name in ORAL:  # estimate bioavailability and lag too
        params = (*params, Parameter("f", unit="dimensionless", typical=Prior.lognormal(median=0.8, sigma=0.2),
                                     bsv=Prior.half_normal(0.2)),
                  Parameter("tlag", unit="h", typical=Prior.lognormal(median=0.4, sigma=0.3)))
    error = ErrorModel(kind, priors=tuple((s, Prior.half_normal(0.3)) for s in SIGMAS[kind]))
    return dataclasses.replace(spec, parameters=params, error=(error,)), model


def _data(name: str, early: bool) -> tuple[Doses, Observations, frozenset[str]]:
    """Three patients: doses (time, amt, cmt, reset) padded to 4 slots, samples padded to 9.

    `early`: samples before the lagged depot doses arrive (prediction exactly 0 after a reset or at the start:
    fine for additive error only; proportional and log-normal error are not defined there).
    """
    central = 1 if name in ORAL else 0
    rows = [[(0.0, 100.0, 0, False), (12.0, 80.0, central, False), (24.0, 100.0, 0, False)],
            [(0.0, 50.0, central, False), (6.0, 100.0, 0, False)],
            [(0.0, 100.0, 0, False), (8.0, 0.0, 0, True), (8.0, 60.0, 0, False), (20.0, 40.0, central, False)]]
    samples = ([[0.2, 0.5, 1.0, 3.0, 12.0, 12.5, 25.0, 30.0, 48.0], [0.1, 2.0, 6.2, 7.0, 30.0],
                [1.0, 8.0, 8.3, 9.0, 21.0, 22.0, 36.0]] if early else
               [[1.5, 2.0, 3.0, 12.0, 12.5, 25.0, 30.0, 48.0, 50.0], [0.1, 2.0, 7.5, 9.0, 30.0],
                [2.0, 10.0, 11.0, 12.0, 21.0, 22.0, 36.0]])
    n_dose, n_obs = 4, 9

    def pad(values, n, fill):
        return list(values) + [fill] * (n - len(values))
    doses = Doses(time=jnp.array([pad([r[0] for r in p], n_dose, jnp.inf) for p in rows]),
                  amt=jnp.array([pad([r[1] for r in p], n_dose, 0.0) for p in rows]),
                  cmt=jnp.array([pad([r[2] for r in p], n_dose, 0) for p in rows], dtype=jnp.int32),
                  rate=jnp.zeros((3, n_dose)), ii=jnp.zeros((3, n_dose)), ss=jnp.zeros((3, n_dose), jnp.int32),
                  reset=jnp.array([pad([r[3] for r in p], n_dose, False) for p in rows]),
                  mask=jnp.array([pad([True] * len(p), n_dose, False) for p in rows]))
    rng = np.random.default_rng(7)
    time = jnp.array([pad(s, n_obs, jnp.inf) for s in samples])
    mask = jnp.isfinite(time)
    value = jnp.where(mask, jnp.asarray(rng.uniform(0.3, 4.0, (3, n_obs))), jnp.nan)
    obs = Observations(time=time, value=value, cens=jnp.zeros((3, n_obs), jnp.int32),
                       limit=jnp.full((3, n_obs), jnp.nan), output=jnp.zeros((3, n_obs), jnp.int32), mask=mask,
                       sd=jnp.full((3, n_obs), jnp.nan))
    return doses, obs, frozenset({"reset", "direct"} if central == 1 else {"reset"})


def _potential(spec, model, doses, obs, features):
    """The population potential (unconstrained dict -> -log density) and a start near the prior medians."""
    fn = population.build_population_model(spec, model, features)
    args = (doses, obs, {})
    trace = handlers.trace(handlers.seed(fn, 0)).get_trace(*args)
    medians = dict(model.reference_values) | {"f": 0.8, "tlag": 0.4}
    start = {}
    for name, site in trace.items():
        if site["type"] == "sample" and not site["is_observed"]:
            level = medians.get(name[3:], 1.0) if name.startswith("tv_") else 0.25
            start[name] = jnp.zeros_like(site["value"]) if name == "eta_z" else jnp.log(jnp.asarray(level))
    return start, lambda z: potential_energy(fn, args, {}, z)


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def both(request):
    """``(fused, today)`` value and gradient at 5 points, for one (model, error kind)."""
    name, kind = request.param
    spec, model = _spec(name, kind)
    doses, obs, features = _data(name, early=kind == "additive")
    assert observation_block(spec, model, features) is not None
    z0, fused = _potential(spec, model, doses, obs, features)
    with mock.patch.object(population, "observation_block", lambda *_a: None):
        _z, today = _potential(spec, model, doses, obs, features)
    flat0, unravel = ravel_pytree(z0)
    rng = np.random.default_rng(3)
    points = jnp.stack([flat0] + [flat0 + rng.normal(0.0, 0.3, flat0.size) for _ in range(4)])

    @jax.jit
    def run(x):
        return (jax.value_and_grad(lambda y: fused(unravel(y)))(x), jax.value_and_grad(lambda y: today(unravel(y)))(x))
    return [run(x) for x in points]


def test_value_equals_today(both) -> None:
    for (value, _g), (ref, _r) in both:
        assert np.isfinite(float(ref))
        np.testing.assert_allclose(float(value), float(ref), rtol=RTOL_VALUE)


def test_gradient_equals_autodiff_of_today(both) -> None:
    for (_v, grad), (_r, ref) in both:
        ref = np.asarray(ref)
        assert np.all(np.isfinite(ref))
        np.testing.assert_allclose(np.asarray(grad), ref, rtol=0, atol=RTOL_GRAD * np.max(np.abs(ref)))


def test_not_covered_keeps_todays_path() -> None:
    spec, model = _spec("pk.one_cmt_oral", "proportional")
    assert observation_block(spec, model, frozenset({"censored"})) is None
    assert observation_block(spec, model, frozenset({"infusion"})) is None
    assert observation_block(spec, model, None) is None
    student = dataclasses.replace(spec, error=(dataclasses.replace(spec.error[0], nu=4.0),))
    assert observation_block(student, model, frozenset()) is None
    assert observation_block(default_spec(get_model("pd.one_cmt_oral_emax")), get_model("pd.one_cmt_oral_emax"),
                             frozenset()) is None


def test_data_are_not_differentiable() -> None:
    spec, model = _spec("pk.one_cmt_iv", "additive")
    doses, obs, features = _data("pk.one_cmt_iv", early=False)
    block = observation_block(spec, model, features)
    theta = {"cl": jnp.full(3, 2.0), "v": jnp.full(3, 20.0)}
    with pytest.raises(NotImplementedError, match="data"):
        jax.grad(lambda amt: block(theta, {"sigma_add": 0.5}, doses._replace(amt=amt), obs))(doses.amt)
