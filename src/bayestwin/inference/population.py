"""The hierarchical population model of a ``TwinSpec``, as a NumPyro model.

For patient i and structural parameter j, on the parameter's latent scale (``bayestwin.inference.latent``:
log for ``scale="log"``, the value itself for ``scale="identity"``):

    z_ij = latent(TV_j) + sum_k effect_jk(cov_ik) + eta_ij,    theta_ij = natural(z_ij)
    eta_i ~ MVN(0, diag(omega) R diag(omega))     (R = I unless an LKJ prior is given)

non-centred by default (``eta = z @ (diag(omega) L).T``, ``z ~ N(0, I)``); ``centered=True`` samples ``eta``
itself; ``centered=(names...)`` samples those parameters' latent values ``z_ij ~ N(mu_ij, omega_j)`` (site
``latent_c``, ``mu_ij`` the typical value plus covariate effects, at the first segment), the rest
non-centred, and records ``eta = z - mu`` as a deterministic. Each
patient's predictions come from one ``vmap`` of the structural model over the
padded patient axis; the likelihood sums over real observations only.

Sample sites: ``tv_<p>`` (typical values), ``beta_<p>_<cov>`` (covariate
coefficients), ``omega_<p>``, ``corr_chol`` (with LKJ), ``eta_z`` or ``eta``,
the residual SDs, and deterministic per-patient parameters named as in the
spec (``cl``, ``v``...), dims ``(patient,)``, or ``(patient, segment)`` when a
covariate changes within a patient (time-varying covariates: the parameters
are piecewise constant, the random effect eta constant, and predictions come
from the model's ``predict_segments``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import Array

from bayestwin.dynamics.events import Doses, Observations
from bayestwin.inference.arrays import SEGMENT_STARTS
from bayestwin.inference.fused_obs import fused_applies, fused_loglik
from bayestwin.inference.latent import covariate_latent_effect, covariate_log_effect, to_latent, to_natural
from bayestwin.inference.outputs import output_columns, outputs_loglik, select_outputs, sigma_groups
from bayestwin.inference.priors import to_numpyro
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["build_population_model", "covariate_log_effect", "predict_cohort"]  # covariate_log_effect: moved
# to bayestwin.inference.latent, re-exported here for callers written before scales existed


def predict_cohort(
    model: AbstractStructuralModel, theta: Mapping[str, Array], doses: Doses, times: Array,
    features: frozenset[str] | None = None, starts: Array | None = None,
) -> Array:
    """Predictions of every model output for every patient: ``(patient, time, output)`` from per-patient `theta`.

    With `starts` ``(patient, segment)`` (time-varying covariates), each ``theta`` value is
    ``(patient, segment)`` and the model's ``predict_segments`` is used.
    """
    safe = jnp.where(jnp.isfinite(times), times, 0.0)
    if starts is None:
        return jax.vmap(lambda th, d, t: model.predict(th, d, t, features=features))(dict(theta), doses, safe)
    return jax.vmap(lambda th, st, d, t: model.predict_segments(th, st, d, t, features=features))(
        dict(theta), starts, doses, safe)


def build_population_model(
    spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str] | None = None, *, fused: bool = True
) -> Callable[..., None]:
    """NumPyro model function ``f(doses, obs, covariates)`` for `spec` on `model`.

    `features` (static) tells the model which dose kinds the data hold (see ``CohortArrays``).
    `fused`: where ``fused_obs.fused_applies`` allows it (one-compartment PK, bolus-only uncensored data, one
    Normal error model), the observation block is ``fused_obs.fused_loglik`` (gradient written out, same values
    to rounding); False keeps the generic path for every model (comparisons, benchmarks).

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.spec import example_spec
    >>> f = build_population_model(example_spec(), get_model("pk.one_cmt_oral"))
    >>> callable(f)
    True
    """
    params = spec.parameters
    bsv = spec.bsv_parameters
    columns = output_columns(spec, model)
    use_fused = fused and fused_applies(spec, model, features)

    def population_model(doses: Doses, obs: Observations, covariates: Mapping[str, Array]) -> None:
        n = obs.time.shape[0]
        starts = covariates.get(SEGMENT_STARTS)
        shape = (n,) if starts is None else starts.shape  # (patient,) or (patient, segment)
        latent: dict[str, Array] = {}
        for p in params:
            site = f"tv_{p.name}"
            tv = p.fixed if p.fixed is not None else numpyro.sample(site, to_numpyro(p.typical, site=site))
            value = jnp.full(shape, to_latent(p, tv))
            for eff in p.covariates:
                site = f"beta_{p.name}_{eff.covariate}"
                beta = eff.fixed if eff.fixed is not None else numpyro.sample(site, to_numpyro(eff.prior, site=site))
                value = value + covariate_latent_effect(p, eff, covariates[eff.covariate], beta)
            latent[p.name] = value
        if bsv:
            eta = _random_effects(spec, n, latent)
            for j, name in enumerate(bsv):
                latent[name] = latent[name] + (eta[:, j] if starts is None else eta[:, j, None])
        theta = {p.name: numpyro.deterministic(p.name, to_natural(p, latent[p.name])) for p in params}
        if use_fused and starts is None:
            _fused_factor(spec, model, features, latent, theta, doses, obs)
            return
        pred = select_outputs(predict_cohort(model, theta, doses, obs.time, features, starts), obs.output, columns)
        sigmas = {s: numpyro.sample(s, to_numpyro(spec.sigma_prior(s), site=s)) for s in spec.sigma_names}
        loglik = outputs_loglik(obs.value, pred, obs.output, errors=spec.error, sigmas=sigma_groups(spec, sigmas),
                                cens=obs.cens, limit=obs.limit, mask=obs.mask,
                                censored=features is None or "censored" in features, sd=obs.sd)
        numpyro.factor("obs_loglik", jnp.sum(loglik))

    return population_model


def _fused_factor(spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str] | None,
                  latent: Mapping[str, Array], theta: Mapping[str, Array], doses: Doses, obs: Observations) -> None:
    """The residual SDs' sample sites and the observation factor through ``fused_obs.fused_loglik``."""
    sigmas = {s: numpyro.sample(s, to_numpyro(spec.sigma_prior(s), site=s)) for s in spec.sigma_names}
    oral = model.name == "pk.one_cmt_oral"
    names = ("ka", "cl", "v") if oral else ("cl", "v")
    extra = {k: jnp.broadcast_to(theta[k], latent["cl"].shape) for k in ("f", "tlag") if oral and k in theta}
    group = sigma_groups(spec, sigmas)[0]
    loglik = fused_loglik({k: latent[k] for k in names}, extra, {k: jnp.log(v) for k, v in group.items()}, doses,
                          obs, oral=oral, kind=spec.error[0].kind, exact=features is not None and "direct" in features)
    numpyro.factor("obs_loglik", loglik)


def _random_effects(spec: TwinSpec, n: int, latent: Mapping[str, Array]) -> Array:
    bsv = spec.bsv_parameters
    k = len(bsv)
    omega = jnp.stack([numpyro.sample(f"omega_{name}", to_numpyro(spec.parameter(name).bsv, site=f"omega_{name}"))
                       for name in bsv])
    if not isinstance(spec.centered, bool):
        return _partly_centred(spec, n, latent, omega)
    scale_tril: Any = None
    if spec.correlation is not None:
        chol = numpyro.sample("corr_chol", dist.LKJCholesky(k, spec.correlation.param("eta")))
        scale_tril = omega[:, None] * chol
    with numpyro.plate("patient", n):
        if spec.centered:
            base = (dist.MultivariateNormal(jnp.zeros(k), scale_tril=scale_tril) if scale_tril is not None
                    else dist.Normal(jnp.zeros(k), omega).to_event(1))
            return numpyro.sample("eta", base)
        z = numpyro.sample("eta_z", dist.Normal(jnp.zeros(k), 1.0).to_event(1))
    eta = z @ scale_tril.T if scale_tril is not None else z * omega
    return numpyro.deterministic("eta", eta)


def _partly_centred(spec: TwinSpec, n: int, latent: Mapping[str, Array], omega: Array) -> Array:
    """``eta`` with the latent values of ``spec.centered`` sampled directly and the other BSV non-centred."""
    bsv = spec.bsv_parameters
    centred = [j for j, b in enumerate(bsv) if b in spec.centered]
    rest = [j for j, b in enumerate(bsv) if b not in spec.centered]
    mu = jnp.stack([latent[bsv[j]] if latent[bsv[j]].ndim == 1 else latent[bsv[j]][:, 0] for j in centred], axis=1)
    columns: dict[int, Array] = {}
    with numpyro.plate("patient", n):
        z = numpyro.sample("latent_c", dist.Normal(mu, omega[jnp.asarray(centred)]).to_event(1))
        columns |= {j: z[:, c] - mu[:, c] for c, j in enumerate(centred)}
        if rest:
            u = numpyro.sample("eta_z", dist.Normal(jnp.zeros(len(rest)), 1.0).to_event(1))
            columns |= {j: u[:, c] * omega[j] for c, j in enumerate(rest)}
    return numpyro.deterministic("eta", jnp.stack([columns[j] for j in range(len(bsv))], axis=1))
