"""Translate backend-neutral ``Prior`` values into NumPyro distributions.

The improper flat priors ``Flat`` and ``HalfFlat`` become ``ImproperPrior`` (NumPyro's ``ImproperUniform`` on
the real line or the positive half-line: log density 0, so the sampler sees Stan's implicit uniform prior).
Drawing from one raises ``SpecError`` naming the site: prior predictive draws, SBC and simulated truths need
proper priors. Chains start from them at 0 (``Flat``) or 1 (``HalfFlat``), jittered (``init_near_prior_median``).

Examples
--------
>>> from bayestwin.spec import Prior
>>> to_numpyro(Prior("HalfNormal", sigma=0.5)).scale
0.5
>>> float(to_numpyro(Prior("HalfFlat")).log_prob(3.0))
0.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpyro.distributions as dist

from bayestwin.exceptions import SpecError
from bayestwin.spec.prior import Prior

__all__ = ["ImproperPrior", "to_numpyro"]


class ImproperPrior(dist.ImproperUniform):
    """An improper flat prior (log density 0 on its support) that refuses to be sampled, naming its `site`."""

    pytree_aux_fields = ("site", "family")

    def __init__(self, support: Any, *, site: str | None = None, family: str = "Flat") -> None:
        self.site = site
        self.family = family
        super().__init__(support, (), ())

    def sample(self, key: Any, sample_shape: tuple[int, ...] = ()) -> Any:
        """Always raises ``SpecError``: nothing can be drawn from an improper prior."""
        where = f"of {self.site!r} " if self.site else ""
        raise SpecError(f"the {self.family} prior {where}is improper (a flat density that does not integrate to "
                        "one) and cannot be sampled: prior predictive draws, simulation-based calibration and "
                        "simulated cohorts need a proper prior on every quantity. Fitting data is fine; for these "
                        "checks give it a proper prior (e.g. HalfNormal for an SD, Normal for a location)")

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


def to_numpyro(prior: Prior, *, site: str | None = None) -> dist.Distribution:
    """The NumPyro distribution of `prior` (LKJ is handled by the model builder).

    `site` (the sample site's name) is only used in the message of an improper prior that is sampled.
    """
    if prior.family == "Flat":
        return ImproperPrior(dist.constraints.real, site=site, family="Flat")
    if prior.family == "HalfFlat":
        return ImproperPrior(dist.constraints.positive, site=site, family="HalfFlat")
    if prior.family not in _FAMILIES:
        raise SpecError(f"prior family {prior.family!r} cannot be used here; it is only for correlation matrices")
    return _FAMILIES[prior.family](**dict(prior.params))
