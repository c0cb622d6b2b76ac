"""The MAP point estimate of a twin: the mode of the patient's posterior density (``map_draws``).

The twin samples the latent values ``u`` of the patient's parameters with between-subject variability (log-
parameters for log-scale ones) from the density ``p(u | y) ∝ (1/K) sum_k N(u; mu_k, Sigma_k) p(y | u, k)``
(``bayestwin.inference.individual``). ``map_draws`` maximises that density -- through the numpyro model's own
potential function (``numpyro.infer.util.potential_energy`` of ``build_individual_model``: minus the log density
the sampler explores, up to a constant) -- by BFGS (``jax.scipy.optimize.minimize``), started from the posterior
median. Parameters without variability and the residual SDs come from the population component ``k`` with the
largest weight at the mode. The MAP is a mode on the latent scale (of log CL, not of CL): a point estimate like
the posterior mean or median, for the contrast "what would a tool that doses on one best guess choose?".

Examples
--------
>>> from bayestwin.decision import PosteriorDraws
>>> PosteriorDraws.point.__name__
'point'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.optimize import minimize
from numpyro.infer.util import potential_energy

from bayestwin.decision.draws import PosteriorDraws
from bayestwin.inference.individual import (
    build_individual_model,
    component_log_weights,
    mixture_scaling,
    population_prior,
)
from bayestwin.inference.latent import to_latent, to_natural
from bayestwin.models.registry import get_model

__all__ = ["map_draws", "twin_log_density"]

_PROGRAMS: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _program(spec: Any, model: Any, features: Any, maxiter: int) -> Callable[..., Any]:
    """Compiled ``(z0, prior, doses, obs) -> (z*, potential, converged, iterations, component log weights)``."""
    key = (spec.digest(), model.name, features, maxiter)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    fn = build_individual_model(spec, model, features)

    def run(z0: jax.Array, prior: dict[str, jax.Array], doses: Any, obs: Any) -> tuple[jax.Array, ...]:
        def potential(z: jax.Array) -> jax.Array:
            return potential_energy(fn, (prior, doses, obs), {}, {"z": z})

        res = minimize(potential, z0, method="BFGS", options={"maxiter": maxiter})
        u = prior["center"] + prior["scale"] * res.x
        weights = component_log_weights(spec, model, prior, u, doses, obs, features)
        return res.x, res.fun, res.success, res.nit, weights

    _PROGRAMS[key] = jax.jit(run)
    return _PROGRAMS[key]


def _posterior(twin: Any) -> tuple[Any, dict[str, Any], Any, Any, np.ndarray, np.ndarray, Any]:
    """What the twin's sampler saw: (model fn, prior args, doses, obs, center, scale, population prior)."""
    spec = twin.spec
    model = get_model(spec.model)
    arrays = twin.arrays_
    covs = {k: (np.asarray(v[0]) if np.ndim(v) == 2 else float(v[0])) for k, v in arrays.covariates.items()}
    prior = population_prior(spec, twin.population.population_draws(twin.n_components), covs)
    center, scale = mixture_scaling(prior)
    args = {k: jnp.asarray(v) for k, v in prior.items()} | {"center": jnp.asarray(center),
                                                            "scale": jnp.asarray(scale)}
    doses = jax.tree_util.tree_map(lambda x: x[0], arrays.doses)
    obs = jax.tree_util.tree_map(lambda x: x[0], arrays.obs)
    return build_individual_model(spec, model, arrays.features), args, doses, obs, center, scale, prior


def twin_log_density(twin: Any) -> Callable[[Any], jax.Array]:
    """The twin's log posterior density of the latent values ``u`` (BSV parameters, latent scale), up to a constant.

    Minus numpyro's potential energy of the twin's model at ``z = (u - center) / scale``.

    Examples
    --------
    >>> logp = twin_log_density(twin)  # doctest: +SKIP
    >>> float(logp(np.log([1.0, 2.5, 26.0])))  # doctest: +SKIP
    -11.2
    """
    fn, args, doses, obs, center, scale, _ = _posterior(twin)
    return jax.jit(lambda u: -potential_energy(fn, (args, doses, obs), {}, {"z": (jnp.asarray(u) - center) / scale}))


def map_draws(twin: Any, *, override_convergence: bool = False, maxiter: int = 500) -> PosteriorDraws:
    """The twin's MAP estimate as one-draw ``PosteriorDraws`` (see the module docstring).

    ``meta["map"]`` records ``converged`` (BFGS's own test), ``iterations``, ``log_density`` (the model's,
    up to a constant) at the mode and at the start (the posterior median), and ``component``. Raises like
    ``PosteriorDraws.from_twin`` for an unfitted twin or a failed gate without `override_convergence`.

    Examples
    --------
    >>> map_draws(twin, override_convergence=True).n_draws  # doctest: +SKIP
    1
    """
    draws = PosteriorDraws.from_twin(twin, override_convergence=override_convergence)
    spec = twin.spec
    fn, args, doses, obs, center, scale, prior = _posterior(twin)
    bsv = [spec.parameter(n) for n in spec.bsv_parameters]
    post = twin.idata_.posterior
    u0 = np.array([np.median(np.asarray(to_latent(p, post[p.name].to_numpy()))[..., 0] if post[p.name].ndim == 3
                             else np.asarray(to_latent(p, post[p.name].to_numpy()))) for p in bsv])
    z0 = jnp.asarray((u0 - center) / scale)
    run = _program(spec, get_model(spec.model), twin.arrays_.features, maxiter)
    z, fun, ok, nit, weights = run(z0, args, doses, obs)
    start_potential = float(potential_energy(fn, (args, doses, obs), {}, {"z": z0}))
    u = center + scale * np.asarray(z)
    k = int(np.argmax(np.asarray(weights)))
    segmented = "starts" in prior
    theta: dict[str, np.ndarray] = {}
    for j, p in enumerate(bsv):
        lat = u[j] + (prior["shift"][k, :, j] if segmented else 0.0)
        theta[p.name] = np.asarray(to_natural(p, lat), float)
    others = [p.name for p in spec.parameters if not p.has_bsv]
    for j, name in enumerate(others):
        theta[name] = np.asarray(prior["fixed"][k, :, j] if segmented else prior["fixed"][k, j], float)
    sigmas = {s: np.asarray(prior[s][k], float) for s in spec.sigma_names}
    one = lambda v: np.asarray(v, float)[None, None]  # noqa: E731  (chain, draw[, segment])
    meta = {**draws.meta, "point_estimate": "map",
            "map": {"converged": bool(ok), "iterations": int(nit), "log_density": -float(fun),
                    "log_density_at_median": -start_potential, "component": k,
                    "latent": dict(zip(spec.bsv_parameters, u.tolist(), strict=True))}}
    return dataclasses.replace(draws, theta={n: one(v) for n, v in theta.items()},
                               sigmas={n: one(v) for n, v in sigmas.items()}, meta=meta)
