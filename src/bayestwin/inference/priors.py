"""Translate backend-neutral ``Prior`` values into NumPyro distributions.

Examples
--------
>>> from bayestwin.spec import Prior
>>> to_numpyro(Prior("HalfNormal", sigma=0.5)).scale
0.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpyro.distributions as dist

from bayestwin.exceptions import SpecError
from bayestwin.spec.prior import Prior

__all__ = ["to_numpyro"]

_FAMILIES: dict[str, Callable[..., Any]] = {
    "Normal": lambda mu, sigma: dist.Normal(mu, sigma),
    "StudentT": lambda nu, mu, sigma: dist.StudentT(nu, mu, sigma),
    "Cauchy": lambda mu, sigma: dist.Cauchy(mu, sigma),
    "LogNormal": lambda mu, sigma: dist.LogNormal(mu, sigma),
    "HalfNormal": lambda sigma: dist.HalfNormal(sigma),
    "HalfCauchy": lambda sigma: dist.HalfCauchy(sigma),
    "HalfStudentT": lambda nu, sigma: dist.FoldedDistribution(dist.StudentT(nu, 0.0, sigma)),
    "Exponential": lambda rate: dist.Exponential(rate),
    "Gamma": lambda alpha, beta: dist.Gamma(alpha, beta),
    "Uniform": lambda lower, upper: dist.Uniform(lower, upper),
    "Beta": lambda alpha, beta: dist.Beta(alpha, beta),
}


def to_numpyro(prior: Prior) -> dist.Distribution:
    """The NumPyro distribution of `prior` (LKJ is handled by the model builder)."""
    if prior.family not in _FAMILIES:
        raise SpecError(f"prior family {prior.family!r} cannot be used here; it is only for correlation matrices")
    return _FAMILIES[prior.family](**dict(prior.params))
