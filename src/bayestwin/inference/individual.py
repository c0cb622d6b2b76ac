"""The individual twin: one patient's parameters, with the population posterior as prior.

Given K draws ``phi_k`` of the population parameters (typical values, covariate
coefficients, BSV SDs and correlation, residual SDs) from a cohort fit, the
twin's posterior for the new patient's log-parameters ``u`` is

    p(u | y, Y) ∝ (1/K) sum_k N(u; mu_k, Sigma_k) p(y | theta(u, phi_k), sigma_k)

— the exact posterior of a joint model over (u, phi) in which the cohort
posterior p(phi | Y) is represented by its K draws. The new patient's own data
re-weight the population draws (the sum over k is inside the likelihood), which
is what a joint refit of cohort + patient does, up to the K-draw Monte Carlo
approximation and the (small) influence one patient would have on phi. The
mixture is smooth in ``u``, so NUTS samples it; afterwards each draw is given a
population component k from its posterior weights, which fixes the residual SD
and any parameter without BSV for that draw.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array
from jax.scipy.special import logsumexp

from bayestwin.dynamics.events import Doses, Observations
from bayestwin.inference.likelihood import observation_loglik
from bayestwin.inference.population import covariate_log_effect
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["PopulationPrior", "build_individual_model", "component_log_weights", "population_prior"]


class PopulationPrior(dict):  # type: ignore[type-arg]
    """Arrays describing the K population components for one patient.

    Keys: ``mu`` (K, n_bsv) means of the log-parameters with BSV, ``chol`` (K, n_bsv, n_bsv)
    Cholesky factors of their covariance with their inverses ``chol_inv`` and the normalising
    constants ``log_norm`` (K,) of the normal densities (precomputed once, so a gradient costs no
    triangular solves), ``fixed`` (K, n_other) values of the parameters without BSV, and one (K,)
    array per residual SD.
    """


def population_prior(
    spec: TwinSpec, draws: Mapping[str, np.ndarray], covariates: Mapping[str, float]
) -> PopulationPrior:
    """Per-component prior of a patient with `covariates` from population `draws` (see ``PopulationFit``)."""
    k = len(next(iter(draws.values())))
    log_mu: dict[str, np.ndarray] = {}
    for p in spec.parameters:
        value = np.log(draws[f"tv_{p.name}"])
        for eff in p.covariates:
            x = jnp.asarray(float(covariates[eff.covariate]))
            beta = jnp.asarray(draws[f"beta_{p.name}_{eff.covariate}"])
            value = value + np.asarray(covariate_log_effect(eff, x, beta))
        log_mu[p.name] = np.asarray(value, dtype=float)
    bsv = spec.bsv_parameters
    others = [p.name for p in spec.parameters if not p.has_bsv]
    mu = np.stack([log_mu[n] for n in bsv], axis=1) if bsv else np.zeros((k, 0))
    omega = np.stack([draws[f"omega_{n}"] for n in bsv], axis=1) if bsv else np.zeros((k, 0))
    corr = draws.get("corr_chol")
    chol = omega[:, :, None] * corr if corr is not None else np.einsum("ki,ij->kij", omega, np.eye(len(bsv)))
    fixed = np.exp(np.stack([log_mu[n] for n in others], axis=1)) if others else np.zeros((k, 0))
    chol_inv = np.linalg.inv(chol) if len(bsv) else chol
    log_norm = (-np.log(np.abs(np.diagonal(chol, axis1=1, axis2=2))).sum(axis=1)
                - 0.5 * len(bsv) * np.log(2 * np.pi)) if len(bsv) else np.zeros(k)
    prior = PopulationPrior(mu=mu, chol=chol, chol_inv=chol_inv, log_norm=log_norm, fixed=fixed)
    for s in spec.error[0].sigma_names:
        prior[s] = np.asarray(draws[s], dtype=float)
    return prior


def component_log_weights(
    spec: TwinSpec, model: AbstractStructuralModel, prior: Mapping[str, Array], u: Array, doses: Doses,
    obs: Observations, features: frozenset[str] | None = None,
) -> Array:
    """``log N(u; mu_k, Sigma_k) + log p(y | theta(u, k), sigma_k)`` for every component k: shape (K,)."""
    bsv = spec.bsv_parameters
    others = [p.name for p in spec.parameters if not p.has_bsv]
    err = spec.error[0]
    times = jnp.where(jnp.isfinite(obs.time), obs.time, 0.0)

    def normal_log_density(mu: Array, chol_inv: Array, log_norm: Array) -> Array:
        white = chol_inv @ (u - mu)
        return log_norm - 0.5 * jnp.sum(white * white)

    def one(mu: Array, chol_inv: Array, log_norm: Array, fixed: Array, sig: Mapping[str, Array]) -> Array:
        log_prior = normal_log_density(mu, chol_inv, log_norm) if bsv else 0.0
        theta = {n: jnp.exp(u[j]) for j, n in enumerate(bsv)} | {n: fixed[j] for j, n in enumerate(others)}
        pred = model.predict(theta, doses, times, features=features)[:, 0]
        ll = observation_loglik(obs.value, pred, kind=err.kind, sigmas=sig, cens=obs.cens, limit=obs.limit,
                                mask=obs.mask,
                                censored=features is None or "censored" in features)
        return log_prior + jnp.sum(ll)

    sigmas = {s: prior[s] for s in err.sigma_names}
    if others:
        return jax.vmap(one)(prior["mu"], prior["chol_inv"], prior["log_norm"], prior["fixed"], sigmas)
    # Every parameter has BSV: the prediction does not depend on k, so compute it once and
    # vary only the prior density and the residual SDs across components.
    pred = model.predict({n: jnp.exp(u[j]) for j, n in enumerate(bsv)}, doses, times, features=features)[:, 0]
    log_prior = jax.vmap(normal_log_density)(prior["mu"], prior["chol_inv"], prior["log_norm"])
    loglik = jax.vmap(lambda sig: jnp.sum(observation_loglik(
        obs.value, pred, kind=err.kind, sigmas=sig, cens=obs.cens, limit=obs.limit, mask=obs.mask,
                                censored=features is None or "censored" in features)))(sigmas)
    return log_prior + loglik


def build_individual_model(
    spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str] | None = None
) -> Any:
    """NumPyro model ``f(prior, doses, obs)`` of one patient's log-parameters (site ``z``).

    ``u = center + scale * z`` with `center`/`scale` the mixture's mean and SD per
    dimension (a fixed affine change of variables: constant Jacobian), so NUTS
    sees a well-scaled target.
    """
    n_bsv = len(spec.bsv_parameters)

    def individual_model(prior: Mapping[str, Array], doses: Doses, obs: Observations) -> None:
        center, scale = prior["center"], prior["scale"]
        z = numpyro.sample("z", dist.ImproperUniform(dist.constraints.real, (), event_shape=(n_bsv,)))
        u = center + scale * z
        numpyro.deterministic("log_theta", u)
        terms = component_log_weights(spec, model, prior, u, doses, obs, features)
        numpyro.factor("mixture", logsumexp(terms) - jnp.log(terms.shape[0]))

    return individual_model


def mixture_scaling(prior: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD per dimension of the mixture prior (used to scale the sampler's coordinates)."""
    mu, chol = prior["mu"], prior["chol"]
    var_within = np.einsum("kij,kij->ki", chol, chol)  # diag of chol @ chol.T
    center = mu.mean(axis=0)
    scale = np.sqrt(var_within.mean(axis=0) + mu.var(axis=0))
    return center, scale
