"""Structural parameters: typical value, between-subject variability, covariate effects.

The individual value of a parameter is

    theta_i = TV * prod_k effect_k(cov_ik) * exp(eta_i),   eta_i ~ Normal(0, omega)

(log-normal between-subject variability, BSV). Covariate effects:

``power``        (cov / ref) ** beta          e.g. allometric weight scaling
``linear``       1 + beta * (cov - ref)
``exponential``  exp(beta * (cov - ref))
``indicator``    exp(beta) ** [cov < ref]     e.g. Apgar score below 5 (exp(beta) - 1 is
                 the NONMEM-style fractional change, theta in (1 + theta))

Examples
--------
>>> cl = Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0),
...                bsv=Prior.half_normal(0.5))
>>> cl.has_bsv, cl.covariates
(True, ())
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

from bayestwin.exceptions import SpecError
from bayestwin.spec.prior import Prior

__all__ = ["COVARIATE_FORMS", "CovariateEffect", "Parameter"]

CovariateForm = Literal["power", "linear", "exponential", "indicator"]
COVARIATE_FORMS: tuple[str, ...] = ("power", "linear", "exponential", "indicator")


@dataclass(frozen=True, slots=True)
class CovariateEffect:
    """How one covariate modifies a parameter's typical value.

    Parameters
    ----------
    covariate : str
        Event-table column (e.g. ``"WT"``).
    form : {"power", "linear", "exponential", "indicator"}
        Functional form (see the module docstring).
    reference : float
        Centring value (e.g. 70 kg) or, for ``indicator``, the threshold.
    prior : Prior, optional
        Prior of the coefficient ``beta``; omit when `fixed` is given.
    fixed : float, optional
        A fixed coefficient (e.g. the allometric exponent 0.75).
    unit : str, optional
        Unit the covariate must be in (converted from the data's unit).
    """

    covariate: str
    _: KW_ONLY
    form: CovariateForm = "power"
    reference: float = 1.0
    prior: Prior | None = None
    fixed: float | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.form not in COVARIATE_FORMS:
            raise SpecError(f"covariate effect form {self.form!r} is not one of {COVARIATE_FORMS}")
        if (self.prior is None) == (self.fixed is None):
            raise SpecError(f"covariate effect of {self.covariate!r}: give exactly one of prior= or fixed=")
        if self.form == "power" and not self.reference > 0:
            raise SpecError(f"power effect of {self.covariate!r} needs a positive reference, got {self.reference}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return {"covariate": self.covariate, "form": self.form, "reference": self.reference,
                "prior": None if self.prior is None else self.prior.to_dict(), "fixed": self.fixed,
                "unit": self.unit}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CovariateEffect:
        """Inverse of ``to_dict``."""
        prior = data.get("prior")
        return cls(covariate=data["covariate"], form=data.get("form", "power"),
                   reference=float(data.get("reference", 1.0)),
                   prior=None if prior is None else Prior.from_dict(prior), fixed=data.get("fixed"),
                   unit=data.get("unit"))


@dataclass(frozen=True, slots=True)
class Parameter:
    """One structural parameter of a twin.

    Parameters
    ----------
    name : str
        Name the structural model uses (e.g. ``"cl"``).
    unit : str
        Unit of the parameter (e.g. ``"L/h"``).
    typical : Prior
        Prior of the typical (population) value; must have positive support.
    bsv : Prior, optional
        Prior of the SD (omega) of the log-normal between-subject variability;
        None means every patient shares the typical value.
    covariates : tuple of CovariateEffect
        Covariate effects on the typical value.
    fixed : float, optional
        Fix the typical value (no prior, not estimated).
    """

    name: str
    _: KW_ONLY
    unit: str
    typical: Prior | None = None
    bsv: Prior | None = None
    covariates: tuple[CovariateEffect, ...] = field(default_factory=tuple)
    fixed: float | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise SpecError(f"parameter name {self.name!r} must be a Python identifier")
        if (self.typical is None) == (self.fixed is None):
            raise SpecError(f"parameter {self.name!r}: give exactly one of typical= (a prior) or fixed=")
        if self.typical is not None and self.typical.support != "positive":
            raise SpecError(f"parameter {self.name!r}: the typical-value prior must be positive "
                            f"(LogNormal, HalfNormal, ...), got {self.typical.family}")
        if self.fixed is not None and not self.fixed > 0:
            raise SpecError(f"parameter {self.name!r}: fixed value must be > 0, got {self.fixed}")
        if self.bsv is not None and self.bsv.support != "positive":
            raise SpecError(f"parameter {self.name!r}: the BSV prior is a prior on an SD and must be positive, "
                            f"got {self.bsv.family}")
        object.__setattr__(self, "covariates", tuple(self.covariates))
        names = [c.covariate for c in self.covariates]
        if len(set(names)) != len(names):
            raise SpecError(f"parameter {self.name!r}: covariate effects repeat a covariate: {names}")

    @property
    def has_bsv(self) -> bool:
        """Whether patients have their own value (BSV prior given)."""
        return self.bsv is not None

    @property
    def estimated(self) -> bool:
        """Whether the typical value is estimated (not fixed)."""
        return self.fixed is None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return {"name": self.name, "unit": self.unit,
                "typical": None if self.typical is None else self.typical.to_dict(),
                "bsv": None if self.bsv is None else self.bsv.to_dict(),
                "covariates": [c.to_dict() for c in self.covariates], "fixed": self.fixed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Parameter:
        """Inverse of ``to_dict``."""
        typical, bsv = data.get("typical"), data.get("bsv")
        return cls(name=data["name"], unit=data["unit"],
                   typical=None if typical is None else Prior.from_dict(typical),
                   bsv=None if bsv is None else Prior.from_dict(bsv),
                   covariates=tuple(CovariateEffect.from_dict(c) for c in data.get("covariates", ())),
                   fixed=data.get("fixed"))
