"""Structural parameters: typical value, between-subject variability, covariate effects.

Each parameter lives on a *scale*: its individual value is the image of a latent value ``z_i`` (where the
random effects add) under ``exp`` (``scale="log"``, the default) or the identity (``scale="identity"``).

``scale="log"`` (positive parameters: clearances, volumes) -- log-normal between-subject variability (BSV)
and multiplicative covariate effects::

    theta_i = TV * prod_k effect_k(cov_ik) * exp(eta_i),   eta_i ~ Normal(0, omega)

``power``        (cov / ref) ** beta          e.g. allometric weight scaling
``linear``       1 + beta * (cov - ref)
``exponential``  exp(beta * (cov - ref))
``indicator``    exp(beta) ** [cov < ref]     e.g. Apgar score below 5 (exp(beta) - 1 is
                 the NONMEM-style fractional change, theta in (1 + theta))

``scale="identity"`` (parameters of any sign: intercepts, slopes, treatment effects) -- additive normal
random effects and additive covariate effects, the linear mixed model::

    theta_i = TV + sum_k beta_k * (cov_ik - ref_k) + eta_i,   eta_i ~ Normal(0, omega)

where the typical-value prior may have real support (Normal, Cauchy, StudentT, Flat...), a fixed value may
be any finite number, and ``linear`` is the only covariate form (the others are multiplicative by nature).

Examples
--------
>>> cl = Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0),
...                bsv=Prior.half_normal(0.5))
>>> cl.has_bsv, cl.covariates, cl.scale
(True, (), 'log')
>>> level = Parameter("level", unit="dimensionless", typical=Prior("Normal", mu=0.0, sigma=5.0),
...                   bsv=Prior("HalfCauchy", sigma=5.0), scale="identity")
>>> Parameter.from_dict(level.to_dict()) == level
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

from bayestwin.exceptions import SpecError
from bayestwin.spec.prior import Prior

__all__ = ["COVARIATE_FORMS", "SCALES", "CovariateEffect", "Parameter"]

CovariateForm = Literal["power", "linear", "exponential", "indicator"]
COVARIATE_FORMS: tuple[str, ...] = ("power", "linear", "exponential", "indicator")
Scale = Literal["log", "identity"]
#: Scales a parameter can live on (see the module docstring).
SCALES: tuple[str, ...] = ("log", "identity")


@dataclass(frozen=True, slots=True)
class CovariateEffect:
    """How one covariate modifies a parameter's typical value.

    Parameters
    ----------
    covariate : str
        Event-table column (e.g. ``"WT"``).
    form : {"power", "linear", "exponential", "indicator"}
        Functional form (see the module docstring): multiplicative on a log-scale parameter; on an
        identity-scale parameter only ``"linear"``, the additive ``beta * (cov - ref)``.
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
        Prior of the typical (population) value; must have positive support on the log scale, any
        (real, positive...) on the identity scale.
    bsv : Prior, optional
        Prior of the SD (omega) of the between-subject variability: of the log-normal random effect on
        the log scale, of the additive normal one on the identity scale; None means every patient
        shares the typical value.
    covariates : tuple of CovariateEffect
        Covariate effects on the typical value.
    fixed : float, optional
        Fix the typical value (no prior, not estimated): > 0 on the log scale, any finite number on
        the identity scale.
    scale : {"log", "identity"}
        Where random effects and covariate effects add (see the module docstring); default ``"log"``.
    """

    name: str
    _: KW_ONLY
    unit: str
    typical: Prior | None = None
    bsv: Prior | None = None
    covariates: tuple[CovariateEffect, ...] = field(default_factory=tuple)
    fixed: float | None = None
    scale: Scale = "log"

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise SpecError(f"parameter name {self.name!r} must be a Python identifier")
        if self.scale not in SCALES:
            raise SpecError(f"parameter {self.name!r}: scale {self.scale!r} is not one of {SCALES}; 'log' for "
                            "positive parameters (log-normal BSV), 'identity' for additive normal random effects")
        if (self.typical is None) == (self.fixed is None):
            raise SpecError(f"parameter {self.name!r}: give exactly one of typical= (a prior) or fixed=")
        if self.scale == "log":
            self._check_log_scale()
        else:
            self._check_identity_scale()
        if self.bsv is not None and self.bsv.support != "positive":
            raise SpecError(f"parameter {self.name!r}: the BSV prior is a prior on an SD and must be positive, "
                            f"got {self.bsv.family}")
        object.__setattr__(self, "covariates", tuple(self.covariates))
        names = [c.covariate for c in self.covariates]
        if len(set(names)) != len(names):
            raise SpecError(f"parameter {self.name!r}: covariate effects repeat a covariate: {names}")

    def _check_log_scale(self) -> None:
        if self.typical is not None and self.typical.support != "positive":
            raise SpecError(f"parameter {self.name!r}: the typical-value prior must be positive "
                            f"(LogNormal, HalfNormal, ...), got {self.typical.family}; for a parameter that "
                            "can be negative use scale='identity'")
        if self.fixed is not None and not self.fixed > 0:
            raise SpecError(f"parameter {self.name!r}: fixed value must be > 0, got {self.fixed} (a log-scale "
                            "parameter); use scale='identity' for a value that can be zero or negative")

    def _check_identity_scale(self) -> None:
        if self.typical is not None and self.typical.support == "correlation":
            raise SpecError(f"parameter {self.name!r}: an {self.typical.family} prior is for correlation "
                            "matrices, not a typical value")
        if self.fixed is not None and not math.isfinite(self.fixed):
            raise SpecError(f"parameter {self.name!r}: fixed value must be a finite number, got {self.fixed}")
        for c in self.covariates:
            if c.form != "linear":
                raise SpecError(f"parameter {self.name!r} is on the identity scale, where covariate effects add: "
                                f"the effect of {c.covariate!r} must have form='linear' (beta * (cov - ref)), "
                                f"not {c.form!r}; use scale='log' for a multiplicative {c.form} effect")

    @property
    def has_bsv(self) -> bool:
        """Whether patients have their own value (BSV prior given)."""
        return self.bsv is not None

    @property
    def estimated(self) -> bool:
        """Whether the typical value is estimated (not fixed)."""
        return self.fixed is None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form.

        ``scale`` appears only when it is not the default ``"log"``, so the digests of specs written before
        scales existed do not change.
        """
        out = {"name": self.name, "unit": self.unit,
               "typical": None if self.typical is None else self.typical.to_dict(),
               "bsv": None if self.bsv is None else self.bsv.to_dict(),
               "covariates": [c.to_dict() for c in self.covariates], "fixed": self.fixed}
        if self.scale != "log":
            out["scale"] = self.scale
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Parameter:
        """Inverse of ``to_dict``."""
        typical, bsv = data.get("typical"), data.get("bsv")
        return cls(name=data["name"], unit=data["unit"],
                   typical=None if typical is None else Prior.from_dict(typical),
                   bsv=None if bsv is None else Prior.from_dict(bsv),
                   covariates=tuple(CovariateEffect.from_dict(c) for c in data.get("covariates", ())),
                   fixed=data.get("fixed"), scale=data.get("scale", "log"))
