"""The individual twin: one patient's parameters, with the population posterior as prior.

Given K draws ``phi_k`` of the population parameters (typical values, covariate
coefficients, BSV SDs and correlation, residual SDs) from a cohort fit, the
twin's posterior for the new patient's latent parameters ``u`` (log-parameters on the log scale, the
parameters themselves on the identity scale; see ``bayestwin.inference.latent``) is

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

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import Array
from jax.scipy.special import logsumexp

from bayestwin.dynamics.events import Doses, Observations
from bayestwin.inference.arrays import SEGMENT_STARTS
from bayestwin.inference.latent import covariate_latent_effect, to_latent, to_natural
from bayestwin.inference.outputs import output_columns, outputs_loglik, select_outputs, sigma_groups
from bayestwin.spec import example_spec  # noqa: F401  (doctest namespace)
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["PopulationPrior", "build_individual_model", "component_log_weights", "mixture_log_weights",
           "population_prior", "weights_program"]


class PopulationPrior(dict):  # type: ignore[type-arg]
    """Arrays describing the K population components for one patient.

    Keys: ``mu`` (K, n_bsv) means of the latent parameters with BSV, ``chol`` (K, n_bsv, n_bsv)
    Cholesky factors of their covariance with their inverses ``chol_inv`` and the normalising
    constants ``log_norm`` (K,) of the normal densities (precomputed once, so a gradient costs no
    triangular solves), ``fixed`` (K, n_other) values of the parameters without BSV, and one (K,)
    array per residual SD.
    """


def population_prior(
    spec: TwinSpec, draws: Mapping[str, np.ndarray], covariates: Mapping[str, Any]
) -> PopulationPrior:
    """Per-component prior of a patient with `covariates` from population `draws` (see ``PopulationFit``).

    A covariate value is a scalar, or an array over segments when covariates change within the patient;
    then `covariates` also holds ``SEGMENT_STARTS`` and the prior gets ``starts`` (segment starts),
    ``shift`` (K, segment, n_bsv): the change of each BSV log-parameter from its first-segment value
    (``mu`` is the first segment's), and ``fixed`` becomes (K, segment, n_other).
    """
    k = len(next(iter(draws.values())))
    starts = covariates.get(SEGMENT_STARTS)
    log_mu: dict[str, np.ndarray] = {}  # latent means (log-scale parameters: log means)
    for p in spec.parameters:
        value = np.asarray(to_latent(p, np.asarray(draws[f"tv_{p.name}"], dtype=float)))
        if starts is not None:
            value = np.repeat(value[:, None], len(starts), axis=1)
        for eff in p.covariates:
            x = jnp.asarray(np.asarray(covariates[eff.covariate], dtype=float))
            beta = jnp.asarray(draws[f"beta_{p.name}_{eff.covariate}"])
            value = value + np.asarray(covariate_latent_effect(p, eff, x, beta if starts is None else beta[:, None]))
        log_mu[p.name] = np.asarray(value, dtype=float)
    bsv = spec.bsv_parameters
    others = [p.name for p in spec.parameters if not p.has_bsv]

    def natural(n: str, v: np.ndarray) -> np.ndarray:
        return np.asarray(to_natural(spec.parameter(n), v))

    shift = None
    if starts is not None:
        shift = (np.stack([log_mu[n] - log_mu[n][:, :1] for n in bsv], axis=2) if bsv
                 else np.zeros((k, len(starts), 0)))
        fixed = (np.stack([natural(n, log_mu[n]) for n in others], axis=2) if others
                 else np.zeros((k, len(starts), 0)))
        log_mu = {n: v[:, 0] for n, v in log_mu.items()}
    mu = np.stack([log_mu[n] for n in bsv], axis=1) if bsv else np.zeros((k, 0))
    omega = np.stack([draws[f"omega_{n}"] for n in bsv], axis=1) if bsv else np.zeros((k, 0))
    corr = draws.get("corr_chol")
    chol = omega[:, :, None] * corr if corr is not None else np.einsum("ki,ij->kij", omega, np.eye(len(bsv)))
    if starts is None:
        fixed = np.stack([natural(n, log_mu[n]) for n in others], axis=1) if others else np.zeros((k, 0))
    chol_inv = np.linalg.inv(chol) if len(bsv) else chol
    log_norm = (-np.log(np.abs(np.diagonal(chol, axis1=1, axis2=2))).sum(axis=1)
                - 0.5 * len(bsv) * np.log(2 * np.pi)) if len(bsv) else np.zeros(k)
    prior = PopulationPrior(mu=mu, chol=chol, chol_inv=chol_inv, log_norm=log_norm, fixed=fixed)
    if starts is not None:
        prior["starts"] = np.asarray(starts, dtype=float)
        prior["shift"] = shift
    for s in spec.sigma_names:
        prior[s] = np.asarray(draws[s], dtype=float)
    return prior


def component_log_weights(
    spec: TwinSpec, model: AbstractStructuralModel, prior: Mapping[str, Array], u: Array, doses: Doses,
    obs: Observations, features: frozenset[str] | None = None,
) -> Array:
    """``log N(u; mu_k, Sigma_k) + log p(y | theta(u, k), sigma_k)`` for every component k: shape (K,)."""
    bsv = spec.bsv_parameters
    others = [p.name for p in spec.parameters if not p.has_bsv]
    scaled = [spec.parameter(n) for n in bsv]
    columns = output_columns(spec, model)
    times = jnp.where(jnp.isfinite(obs.time), obs.time, 0.0)
    censored = features is None or "censored" in features

    def loglik(pred_all: Array, sig: Mapping[str, Array]) -> Array:
        pred = select_outputs(pred_all, obs.output, columns)
        return jnp.sum(outputs_loglik(obs.value, pred, obs.output, errors=spec.error, sigmas=sigma_groups(spec, sig),
                                      cens=obs.cens, limit=obs.limit, mask=obs.mask, censored=censored,
                                      sd=obs.sd))

    def normal_log_density(mu: Array, chol_inv: Array, log_norm: Array) -> Array:
        white = chol_inv @ (u - mu)
        return log_norm - 0.5 * jnp.sum(white * white)

    def one(mu: Array, chol_inv: Array, log_norm: Array, fixed: Array, sig: Mapping[str, Array]) -> Array:
        log_prior = normal_log_density(mu, chol_inv, log_norm) if bsv else 0.0
        theta = ({p.name: to_natural(p, u[j]) for j, p in enumerate(scaled)}
                 | {n: fixed[j] for j, n in enumerate(others)})
        return log_prior + loglik(model.predict(theta, doses, times, features=features), sig)

    sigmas = {s: prior[s] for s in spec.sigma_names}
    if "starts" in prior:  # time-varying covariates: each component has its own parameter time course
        starts = prior["starts"]

        def one_segmented(mu: Array, chol_inv: Array, log_norm: Array, fixed: Array, shift: Array,
                          sig: Mapping[str, Array]) -> Array:
            log_prior = normal_log_density(mu, chol_inv, log_norm) if bsv else 0.0
            theta = ({p.name: to_natural(p, u[j] + shift[:, j]) for j, p in enumerate(scaled)}
                     | {n: fixed[:, j] for j, n in enumerate(others)})
            return log_prior + loglik(model.predict_segments(theta, starts, doses, times, features=features), sig)

        return jax.vmap(one_segmented)(prior["mu"], prior["chol_inv"], prior["log_norm"], prior["fixed"],
                                       prior["shift"], sigmas)
    if others:
        return jax.vmap(one)(prior["mu"], prior["chol_inv"], prior["log_norm"], prior["fixed"], sigmas)
    # Every parameter has BSV: the prediction does not depend on k, so compute it once and
    # vary only the prior density and the residual SDs across components.
    pred_all = model.predict({p.name: to_natural(p, u[j]) for j, p in enumerate(scaled)}, doses, times,
                             features=features)
    log_prior = jax.vmap(normal_log_density)(prior["mu"], prior["chol_inv"], prior["log_norm"])
    if not sigmas:  # known measurement SDs only: the likelihood is the same for every component
        return log_prior + loglik(pred_all, {})
    return log_prior + jax.vmap(lambda sig: loglik(pred_all, sig))(sigmas)


def mixture_log_weights(
    spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str] | None = None
) -> Callable[[Mapping[str, Array], Array, Doses, Observations], Array]:
    """``(prior, u, doses, obs) -> (K,)`` component log weights: :func:`component_log_weights`'s values.

    Where ``bayestwin.inference.fleet_kernel.sufficient_statistics_apply`` holds (every parameter with BSV,
    no censoring, no time-varying covariates, additive / proportional / log-normal Normal errors), through
    ``sufficient_log_weights``: the same values (to ~1e-12 relative, tested) in O(K + n) instead of O(K n);
    with ``prior["quadratic"]`` (``quadratic_form``) the K Mahalanobis distances are one matrix-vector
    product. Otherwise ``component_log_weights`` itself.

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> spec = example_spec()  # ka has no BSV: the prediction depends on the component
    >>> mixture_log_weights(spec, get_model(spec.model), frozenset()).func.__name__
    'component_log_weights'
    """
    # imported here: fleet_kernel imports this module (component_log_weights) at its top
    from bayestwin.inference.fleet_kernel import sufficient_log_weights, sufficient_statistics_apply

    if features is not None and sufficient_statistics_apply(spec, features):
        return functools.partial(sufficient_log_weights, spec, model, features=features)
    return functools.partial(component_log_weights, spec, model, features=features)


def build_individual_model(
    spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str] | None = None
) -> Any:
    """NumPyro model ``f(prior, doses, obs)`` of one patient's latent parameters (site ``z``).

    ``u = center + scale * z`` with `center`/`scale` the mixture's mean and SD per
    dimension (a fixed affine change of variables: constant Jacobian), so NUTS
    sees a well-scaled target. The deterministic site ``log_theta`` holds ``u``: the latent values of
    the parameters with BSV, i.e. log-parameters for log-scale parameters and the parameters
    themselves for identity-scale ones (the name predates identity scales; map it back with
    ``bayestwin.inference.latent.to_natural``).
    """
    n_bsv = len(spec.bsv_parameters)
    log_weights = mixture_log_weights(spec, model, features)

    def individual_model(prior: Mapping[str, Array], doses: Doses, obs: Observations) -> None:
        center, scale = prior["center"], prior["scale"]
        z = numpyro.sample("z", dist.ImproperUniform(dist.constraints.real, (), event_shape=(n_bsv,)))
        u = center + scale * z
        numpyro.deterministic("log_theta", u)
        terms = log_weights(prior, u, doses, obs)
        numpyro.factor("mixture", logsumexp(terms) - jnp.log(terms.shape[0]))

    return individual_model


def mixture_scaling(prior: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD per dimension of the mixture prior (used to scale the sampler's coordinates)."""
    mu, chol = prior["mu"], prior["chol"]
    var_within = np.einsum("kij,kij->ki", chol, chol)  # diag of chol @ chol.T
    center = mu.mean(axis=0)
    scale = np.sqrt(var_within.mean(axis=0) + mu.var(axis=0))
    return center, scale


_WEIGHTS: dict[tuple[Any, ...], Any] = {}


def weights_program(spec: TwinSpec, model: Any, features: frozenset[str]) -> Any:
    """Compiled ``(prior, u draws, doses, obs) -> component log weights``, one per (spec, model, features).

    :func:`component_log_weights` vmapped over a stack of latent draws ``u`` and jitted; the program is kept,
    so a second twin of the same spec, model and data features compiles nothing.

    >>> from bayestwin.models.registry import get_model
    >>> from bayestwin.spec import example_spec
    >>> spec = example_spec()
    >>> weights_program(spec, get_model(spec.model), frozenset()) is weights_program(
    ...     spec, get_model(spec.model), frozenset())
    True
    """
    key = (spec.digest(), model.name, features)
    if key not in _WEIGHTS:
        _WEIGHTS[key] = jax.jit(lambda pr, us, d, o: jax.vmap(
            lambda u: component_log_weights(spec, model, pr, u, d, o, features))(us))
    return _WEIGHTS[key]
