"""Latent values of structural parameters: where random effects and covariate effects add.

Every parameter has one latent value ``z`` per patient (and segment): ``z = latent(TV) + covariate effects
+ eta``. The individual value is ``exp(z)`` for a log-scale parameter (log-normal BSV, multiplicative
covariate effects) and ``z`` itself for an identity-scale one (additive normal random effects, additive
covariate effects); see ``bayestwin.spec.parameters``. The population model, the individual twin and the
twin's posterior all go through ``to_natural`` and ``to_latent`` here, so the two scales are handled in one
place. Works on numpy and JAX arrays (returns JAX arrays).

Examples
--------
>>> from bayestwin.spec import Parameter, Prior
>>> cl = Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0))
>>> b = Parameter("b", unit="g", typical=Prior("Normal", mu=0.0, sigma=1.0), scale="identity")
>>> float(to_natural(cl, to_latent(cl, 3.0))), float(to_natural(b, -2.5))
(3.0, -2.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from bayestwin.spec.parameters import CovariateEffect, Parameter
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["covariate_latent_effect", "covariate_log_effect", "natural_parameters", "to_latent", "to_natural"]


def to_natural(parameter: Parameter, z: ArrayLike) -> Array:
    """Individual value of `parameter` from its latent value `z`: ``exp(z)`` (log scale) or ``z`` (identity)."""
    return jnp.exp(z) if parameter.scale == "log" else jnp.asarray(z)


def to_latent(parameter: Parameter, value: ArrayLike) -> Array:
    """Latent value of a natural-scale `value` of `parameter`: ``log(value)`` or ``value``."""
    return jnp.log(value) if parameter.scale == "log" else jnp.asarray(value)


def natural_parameters(spec: TwinSpec, latent: Mapping[str, ArrayLike], names: Sequence[str] | None = None
                       ) -> dict[str, Array]:
    """``{name: to_natural(...)}`` for the parameters `names` (default: every key of `latent`)."""
    return {n: to_natural(spec.parameter(n), latent[n]) for n in (latent if names is None else names)}


def covariate_log_effect(effect: CovariateEffect, x: ArrayLike, beta: ArrayLike) -> Array:
    """Log of the multiplicative effect of covariate values `x` on a log-scale parameter."""
    ref = effect.reference
    if effect.form == "power":
        return beta * jnp.log(x / ref)
    if effect.form == "linear":
        return jnp.log1p(beta * (x - ref))
    if effect.form == "exponential":
        return beta * (x - ref)
    if effect.form == "indicator":
        return jnp.where(x < ref, beta, 0.0)
    raise ValueError(f"unknown covariate form {effect.form!r}")


def covariate_latent_effect(parameter: Parameter, effect: CovariateEffect, x: ArrayLike, beta: ArrayLike) -> Array:
    """What `effect` adds to `parameter`'s latent value at covariate values `x` with coefficient `beta`.

    Log scale: the log of the multiplicative effect (``covariate_log_effect``); identity scale: the
    additive ``beta * (x - reference)`` (the spec allows only ``form="linear"`` there).

    Examples
    --------
    >>> from bayestwin.spec import CovariateEffect, Parameter, Prior
    >>> b = Parameter("b", unit="g", typical=Prior("Normal", mu=0.0, sigma=1.0), scale="identity")
    >>> float(covariate_latent_effect(b, CovariateEffect("x", form="linear", reference=1.0, fixed=2.0), 4.0, 2.0))
    6.0
    """
    if parameter.scale == "identity":
        return beta * (jnp.asarray(x) - effect.reference)
    return covariate_log_effect(effect, x, beta)
