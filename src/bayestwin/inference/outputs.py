"""Observed outputs: which model output each observation measures, and its residual error.

A spec lists one ``ErrorModel`` per observed output; observation ``i`` carries the index ``j`` of its
error model (DVID - 1 in the data). The likelihood of a cohort with several outputs is the sum over
error models of each one's likelihood on its own observations, every output with its own residual SDs
(``TwinSpec.sigma_sites``). With one output this reduces exactly to ``observation_loglik``.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.spec import example_spec
>>> pred = jnp.array([[1.0], [2.0]])                      # (time, model output)
>>> select_outputs(pred, jnp.array([0, 0]), (0,)).tolist()
[1.0, 2.0]
>>> sigma_groups(example_spec(), {"sigma_add": 0.5})
[{'sigma_add': 0.5}]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from bayestwin.exceptions import SpecError
from bayestwin.inference.likelihood import observation_loglik, residual_sd
from bayestwin.spec.observation import ErrorModel
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["output_columns", "outputs_loglik", "select_outputs", "sigma_groups", "simulate_observations",
           "student_t_noise"]


def output_columns(spec: TwinSpec, model: AbstractStructuralModel) -> tuple[int, ...]:
    """Column of ``model.predict``'s output for each of the spec's error models; SpecError if one is unknown.

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.spec import example_spec
    >>> output_columns(example_spec(), get_model("pk.one_cmt_oral"))
    (0,)
    """
    cols = []
    for err in spec.error:
        if err.output not in model.outputs:
            raise SpecError(f"spec {spec.name!r} has an error model for output {err.output!r}, but model "
                            f"{model.name!r} predicts {list(model.outputs)}; name one of those in ErrorModel(output=)")
        cols.append(model.outputs.index(err.output))
    return tuple(cols)


def select_outputs(pred: Array, output: Array, columns: Sequence[int]) -> Array:
    """For each time, the prediction of the output observed then: ``pred[..., t, columns[output[t]]]``.

    `pred` has shape ``(..., time, model output)``; `output` ``(time,)`` (or broadcastable) holds error-model
    indices.
    """
    if len(columns) == 1:
        return pred[..., columns[0]]
    col = jnp.asarray(columns, dtype=jnp.int32)[jnp.clip(output, 0, len(columns) - 1)]
    return jnp.take_along_axis(pred, jnp.broadcast_to(col[..., None], (*pred.shape[:-1], 1)), axis=-1)[..., 0]


def sigma_groups(spec: TwinSpec, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Residual SDs per error model, keyed by SD name (``sigma_add``...), from values keyed by site."""
    groups: list[dict[str, Any]] = [{} for _ in spec.error]
    for site, j, sd in spec.sigma_sites:
        groups[j][sd] = values[site]
    return groups


def outputs_loglik(
    value: Array, pred: Array, output: Array, *, errors: Sequence[ErrorModel], sigmas: Sequence[Mapping[str, Array]],
    cens: Array, limit: Array, mask: Array, censored: bool = True, sd: Array | None = None,
) -> Array:
    """Pointwise log-likelihood when observation ``i`` measures output ``output[i]`` (error model index).

    `pred` holds, per observation, the prediction of the output it measures (see ``select_outputs``);
    `sd` each observation's known SD (``Observations.sd``), used by ``known_sd`` error models.
    """
    if len(errors) == 1:
        return observation_loglik(value, pred, kind=errors[0].kind, sigmas=sigmas[0], cens=cens, limit=limit,
                                  mask=mask, censored=censored, sd=sd, nu=errors[0].nu)
    total = jnp.zeros(jnp.shape(value))
    for j, err in enumerate(errors):
        total = total + observation_loglik(value, pred, kind=err.kind, sigmas=sigmas[j], cens=cens, limit=limit,
                                           mask=mask & (output == j), censored=censored, sd=sd, nu=err.nu)
    return total


def student_t_noise(key: Array, normal: Array, nu: float) -> Array:
    """Student-t(`nu`) noise from standard-normal draws `normal`: ``normal * sqrt(nu / chi2_nu)``.

    Examples
    --------
    >>> e = student_t_noise(jax.random.PRNGKey(1), jax.random.normal(jax.random.PRNGKey(0), (200_000,)), 5.0)
    >>> round(float(e.var()), 1)  # nu / (nu - 2)
    1.7
    """
    chi2 = 2.0 * jax.random.gamma(key, nu / 2.0, jnp.shape(normal), dtype=jnp.result_type(normal))
    return normal * jnp.sqrt(nu / chi2)


def simulate_observations(
    key: Array, pred: Array, output: Array, *, errors: Sequence[ErrorModel], sigmas: Sequence[Mapping[str, Array]],
    sd: Array | None = None,
) -> Array:
    """New observations around `pred`: observation ``i`` gets error model ``errors[output[i]]``'s noise.

    Log-normal error is ``exp(log pred + sigma * e)``, the others ``pred + sd * e``, with ``e`` standard
    Normal, or Student-t for an error model with ``nu``; no censoring. A
    ``known_sd`` error model needs `sd` (each new observation's SD, broadcastable to `pred`): SpecError
    without it, since a future measurement's precision is not part of the model.

    Examples
    --------
    >>> import jax
    >>> from bayestwin.spec import ErrorModel
    >>> y = simulate_observations(jax.random.PRNGKey(0), jnp.full(4000, 10.0), jnp.zeros(4000, dtype=int),
    ...                           errors=[ErrorModel("proportional")], sigmas=[{"sigma_prop": 0.1}])
    >>> round(float(y.mean()), 1), round(float(y.std()), 1)
    (10.0, 1.0)
    """
    key, key_t = jax.random.split(key)
    noise = jax.random.normal(key, jnp.shape(pred))
    y = pred
    for j, err in enumerate(errors):
        e = noise if err.nu is None else student_t_noise(jax.random.fold_in(key_t, j), noise, err.nu)
        if err.known_sd and sd is None:
            raise SpecError(f"output {err.output!r} has a known_sd error model: simulating new observations of it "
                            "needs each one's SD (sd=); the model does not say how precise a future measurement "
                            "is. Use the predictions without noise (IPRED) or pass sd=")
        scale = residual_sd(pred, err.kind, sigmas[j], sd)
        yj = (jnp.exp(jnp.log(jnp.maximum(pred, 1e-300)) + scale * e) if err.kind == "lognormal"
              else pred + scale * e)
        y = yj if len(errors) == 1 else jnp.where(output == j, yj, y)
    return y
