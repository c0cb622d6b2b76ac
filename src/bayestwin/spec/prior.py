"""Backend-neutral prior distributions.

A ``Prior`` names a distribution family and its parameters in bayestwin's
own vocabulary; each inference backend translates it (NumPyro first, PyMC
later). Priors are frozen and hashable so specs can be digested.

Examples
--------
>>> Prior.lognormal(median=3.0, sigma=1.0)
Prior(family='LogNormal', params=(('mu', 1.0986122886681098), ('sigma', 1.0)))
>>> Prior("HalfNormal", sigma=0.5).support
'positive'

``Flat`` (real line) and ``HalfFlat`` (positive half-line) are improper flat priors, density 1 everywhere
on their support, as Stan gives a parameter declared without a sampling statement (e.g. an SD declared
``real<lower=0>``). The posterior is proper when the data identify the parameter; nothing can be drawn
*from* them, so prior predictive checks, simulation-based calibration and simulated cohorts refuse them
(``SpecError``).

>>> Prior("HalfFlat").proper, Prior("HalfFlat").support
(False, 'positive')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bayestwin.exceptions import SpecError

__all__ = ["IMPROPER_FAMILIES", "PRIOR_FAMILIES", "Prior"]

#: family -> (parameter names in order, support of the distribution)
PRIOR_FAMILIES: dict[str, tuple[tuple[str, ...], str]] = {
    "Normal": (("mu", "sigma"), "real"),
    "StudentT": (("nu", "mu", "sigma"), "real"),
    "Cauchy": (("mu", "sigma"), "real"),
    "LogNormal": (("mu", "sigma"), "positive"),
    "HalfNormal": (("sigma",), "positive"),
    "HalfCauchy": (("sigma",), "positive"),
    "HalfStudentT": (("nu", "sigma"), "positive"),
    "Exponential": (("rate",), "positive"),
    "Gamma": (("alpha", "beta"), "positive"),
    "Uniform": (("lower", "upper"), "interval"),
    "Beta": (("alpha", "beta"), "unit"),
    "LKJ": (("eta",), "correlation"),
    "Flat": ((), "real"),
    "HalfFlat": ((), "positive"),
}

#: Families with no normalisable density (improper flat priors): nothing can be drawn from them.
IMPROPER_FAMILIES: frozenset[str] = frozenset({"Flat", "HalfFlat"})

_POSITIVE_PARAMS = {"sigma", "nu", "rate", "alpha", "beta", "eta"}


@dataclass(frozen=True, slots=True)
class Prior:
    """A prior distribution: a family name and its parameters.

    Parameters
    ----------
    family : str
        One of ``PRIOR_FAMILIES``.
    **params : float
        The family's parameters by name (e.g. ``mu``, ``sigma``).
    """

    family: str
    params: tuple[tuple[str, float], ...]

    def __init__(self, family: str, params: Mapping[str, float] | tuple[tuple[str, float], ...] | None = None,
                 **kwargs: float) -> None:
        if family not in PRIOR_FAMILIES:
            raise SpecError(f"unknown prior family {family!r}; use one of {sorted(PRIOR_FAMILIES)}")
        given = dict(params or {}) | kwargs
        names, _ = PRIOR_FAMILIES[family]
        missing = [n for n in names if n not in given]
        extra = [n for n in given if n not in names]
        if missing or extra:
            raise SpecError(f"{family} prior takes parameters {list(names)}; missing {missing}, unexpected {extra}")
        values = []
        for name in names:
            try:
                value = float(given[name])
            except (TypeError, ValueError) as err:
                raise SpecError(f"{family} prior parameter {name}={given[name]!r} must be a number") from err
            if not math.isfinite(value):
                raise SpecError(f"{family} prior parameter {name}={given[name]!r} must be finite")
            if name in _POSITIVE_PARAMS and value <= 0:
                raise SpecError(f"{family} prior parameter {name}={value} must be > 0")
            values.append((name, value))
        if family == "Uniform" and values[0][1] >= values[1][1]:
            raise SpecError(f"Uniform prior needs lower < upper, got {values[0][1]} >= {values[1][1]}")
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "params", tuple(values))

    def __repr__(self) -> str:
        return f"Prior(family={self.family!r}, params={self.params!r})"

    @property
    def support(self) -> str:
        """``real``, ``positive``, ``interval``, ``unit`` or ``correlation``."""
        return PRIOR_FAMILIES[self.family][1]

    @property
    def proper(self) -> bool:
        """False for the improper flat priors (``Flat``, ``HalfFlat``), which cannot be sampled."""
        return self.family not in IMPROPER_FAMILIES

    def param(self, name: str) -> float:
        """Value of one parameter of the family."""
        return dict(self.params)[name]

    # --- constructors -----------------------------------------------------------------
    @classmethod
    def lognormal(cls, *, median: float, sigma: float) -> Prior:
        """Log-normal prior given its median (natural scale) and log-scale SD."""
        if median <= 0:
            raise SpecError(f"a log-normal prior needs a positive median, got {median}")
        return cls("LogNormal", mu=math.log(median), sigma=sigma)

    @classmethod
    def half_normal(cls, sigma: float) -> Prior:
        """Half-normal prior with scale `sigma` (e.g. for SDs)."""
        return cls("HalfNormal", sigma=sigma)

    # --- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form: ``{"family": ..., "params": {...}}``."""
        return {"family": self.family, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prior:
        """Inverse of ``to_dict``.

        Examples
        --------
        >>> p = Prior("Normal", mu=0.0, sigma=2.0)
        >>> Prior.from_dict(p.to_dict()) == p
        True
        """
        try:
            return cls(data["family"], dict(data["params"]))
        except KeyError as err:
            raise SpecError(f"a prior needs 'family' and 'params', got keys {sorted(data)}") from err
