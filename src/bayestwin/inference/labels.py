"""Attach names, dimensions and units to raw draws: the one labelling layer.

Posterior variables get dims ``(chain, draw)`` plus ``patient`` for per-patient
parameters and random effects (``bsv`` for the random-effect axis; ``segment``
for parameters that change with a time-varying covariate, whose start times are
the ``segment_start`` coordinate, ``(patient, segment)``); the
pointwise log-likelihood and the observed data use an ``observation`` dimension
whose coordinates carry patient id, time, observed output, its unit and source row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

from bayestwin.inference.arrays import SEGMENT_STARTS, CohortArrays
from bayestwin.inference.outputs import output_columns, outputs_loglik, select_outputs, sigma_groups
from bayestwin.inference.population import predict_cohort
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["pointwise_loglik", "population_inference_data", "variable_units"]


def variable_units(spec: TwinSpec) -> dict[str, str]:
    """Unit of every posterior variable a population fit produces."""
    units: dict[str, str] = {}
    for p in spec.parameters:
        units[p.name] = units[f"tv_{p.name}"] = p.unit
        identity = p.scale == "identity"  # additive effects: omega and beta carry the parameter's unit
        if p.has_bsv:
            units[f"omega_{p.name}"] = p.unit if identity else "log-scale SD"
        for eff in p.covariates:
            units[f"beta_{p.name}_{eff.covariate}"] = (f"{p.unit} per {eff.unit or 'unit'} of {eff.covariate}"
                                                       if identity else "dimensionless")
    for site, j, sd in spec.sigma_sites:
        out = spec.error[j].output
        out_unit = spec.unit(out) if out in dict(spec.units) else ""
        units[site] = out_unit if sd == "sigma_add" else "dimensionless"
    return units


def pointwise_loglik(
    spec: TwinSpec, model: AbstractStructuralModel, arrays: CohortArrays, theta: Mapping[str, np.ndarray],
    sigmas: Mapping[str, np.ndarray],
) -> np.ndarray:
    """Log-likelihood of each real observation for each draw: ``(sample, observation)``.

    `theta` maps parameter names to ``(sample, patient)`` arrays, `sigmas` to ``(sample,)``.
    """
    obs = arrays.obs
    columns = output_columns(spec, model)
    starts = arrays.covariates.get(SEGMENT_STARTS)
    starts = None if starts is None else jnp.asarray(starts)

    def one(th: Mapping[str, jax.Array], sg: Mapping[str, jax.Array]) -> jax.Array:
        pred = select_outputs(predict_cohort(model, th, arrays.doses, obs.time, arrays.features, starts),
                              obs.output, columns)
        return outputs_loglik(obs.value, pred, obs.output, errors=spec.error, sigmas=sigma_groups(spec, sg),
                              cens=obs.cens, limit=obs.limit, mask=obs.mask, censored="censored" in arrays.features,
                              sd=obs.sd)

    full = jax.jit(jax.vmap(one))({k: jnp.asarray(v) for k, v in theta.items()},
                                  {k: jnp.asarray(v) for k, v in sigmas.items()})
    pi = arrays.observations["patient_index"].to_numpy()
    slot = arrays.observations["slot"].to_numpy()
    return np.asarray(full)[:, pi, slot]


def population_inference_data(
    samples: Mapping[str, np.ndarray],
    extra: Mapping[str, np.ndarray],
    spec: TwinSpec,
    model: AbstractStructuralModel,
    arrays: CohortArrays,
) -> az.InferenceData:
    """Labelled ``InferenceData`` from draws grouped by chain (``{name: (chain, draw, ...)}``)."""
    bsv = list(spec.bsv_parameters)
    patients = [str(p) for p in arrays.patients]
    posterior: dict[str, Any] = {}
    dims: dict[str, list[str]] = {}
    for name, value in samples.items():
        if name in ("eta_z", "latent_c"):  # sampler coordinates; eta and the parameters say the same
            continue
        posterior[name] = np.asarray(value)
        if name in spec.parameter_names:
            dims[name] = ["patient"] if np.ndim(value) == 3 else ["patient", "segment"]
        elif name == "eta":
            dims[name] = ["patient", "bsv"]
        elif name == "corr_chol":
            dims[name] = ["bsv", "bsv_"]
    chains, draws = next(iter(posterior.values())).shape[:2]
    flat = {k: v.reshape(chains * draws, *v.shape[2:]) for k, v in posterior.items()}
    theta = {p: flat[p] for p in spec.parameter_names}
    sigmas = {s: flat[s] for s in spec.sigma_names}
    ll = pointwise_loglik(spec, model, arrays, theta, sigmas).reshape(chains, draws, -1)
    table = arrays.observations
    coords = {"patient": patients, "bsv": bsv, "bsv_": bsv, "observation": np.arange(len(table))}
    if SEGMENT_STARTS in arrays.covariates:
        coords["segment"] = np.arange(arrays.covariates[SEGMENT_STARTS].shape[1])
    stats = {"diverging": np.asarray(extra["diverging"]), "energy": np.asarray(extra["energy"]),
             "n_steps": np.asarray(extra["num_steps"])}
    idata = az.from_dict(
        posterior=posterior, sample_stats=stats, log_likelihood={"obs": ll},
        observed_data={"obs": table["dv"].to_numpy()}, coords=coords,
        dims={**dims, "obs": ["observation"]},
    )
    for group in (idata.log_likelihood, idata.observed_data):
        group.coords["observation_patient"] = ("observation", table["patient"].astype(str).to_numpy())
        group.coords["observation_time"] = ("observation", table["time"].to_numpy())
        group.coords["source_row"] = ("observation", table["source_row"].astype(str).to_numpy())
    if SEGMENT_STARTS in arrays.covariates:
        idata.posterior.coords["segment_start"] = (("patient", "segment"), arrays.covariates[SEGMENT_STARTS])
    units = variable_units(spec)
    for name in idata.posterior.data_vars:
        if name in units:
            idata.posterior[name].attrs["unit"] = units[name]
    out_units = [arrays.units[o] for o in spec.observed_outputs]
    if len(set(out_units)) == 1:
        idata.observed_data["obs"].attrs["unit"] = out_units[0]
    for group in (idata.log_likelihood, idata.observed_data):
        group.coords["observation_output"] = ("observation", table["output"].astype(str).to_numpy())
        group.coords["observation_unit"] = ("observation", table["output"].map(arrays.units).astype(str).to_numpy())
    idata.observed_data.attrs["time_unit"] = arrays.units["time"]
    return idata
