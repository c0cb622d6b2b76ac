"""Observation (residual error) models, including censoring below the LLOQ.

For a prediction ``f`` the observation ``y`` is modelled as

``additive``      y ~ Normal(f, sigma_add)
``proportional``  y ~ Normal(f, sigma_prop * f)
``combined``      y ~ Normal(f, sqrt(sigma_add**2 + (sigma_prop * f)**2))
``lognormal``     log y ~ Normal(log f, sigma_log)      (exponential error)
``known_sd``      y ~ Normal(f, sd_i)                   (a known measurement SD per observation)

With ``nu`` set, the residual is Student-t with ``nu`` degrees of freedom instead of Normal, with the same
location and *scale* (``y ~ StudentT(nu, f, sd)``; its SD is ``sd * sqrt(nu / (nu - 2))`` for nu > 2): heavy
tails for data with occasional large residuals (sample mix-ups, timing errors), so that one outlier neither
drags the fit nor hides in an interval that is too narrow elsewhere. ``nu`` is fixed, not estimated; state
why it was chosen in the spec (4 is a common robust choice, Lange, Little & Taylor 1989, JASA 84:881).

``known_sd`` has no residual SD to estimate: each observation row of the event table gives its own SD in
the ``DVSD`` column, in DV units (a meta-analysis' standard errors, an assay's reported precision, the
eight-schools model). ``DVSD`` is a per-record column like ``LLOQ``, never carried forward from an earlier
row, and the data check names every observation of such an output whose SD is missing, not finite or
not positive.

Censored records (CENS = 1, DV = LLOQ) contribute the probability of a value
below the LLOQ (Beal's M3 method): ``P(y < LLOQ) = Phi((LLOQ - f) / sd)``;
CENS = -1 the probability above the ULOQ.

Examples
--------
>>> ErrorModel("combined").sigma_names
('sigma_add', 'sigma_prop')
>>> ErrorModel("known_sd").sigma_names, ErrorModel("known_sd").known_sd
((), True)
>>> ErrorModel("proportional", nu=4.0).to_dict()["nu"]
4.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bayestwin.exceptions import SpecError
from bayestwin.spec.prior import Prior

__all__ = ["ERROR_KINDS", "ErrorModel"]

ErrorKind = Literal["additive", "proportional", "combined", "lognormal", "known_sd"]
ERROR_KINDS: dict[str, tuple[str, ...]] = {
    "additive": ("sigma_add",),
    "proportional": ("sigma_prop",),
    "combined": ("sigma_add", "sigma_prop"),
    "lognormal": ("sigma_log",),
    "known_sd": (),
}
_DEFAULT_PRIORS = {"sigma_add": Prior("HalfNormal", sigma=1.0), "sigma_prop": Prior("HalfNormal", sigma=0.5),
                   "sigma_log": Prior("HalfNormal", sigma=0.5)}


@dataclass(frozen=True, slots=True)
class ErrorModel:
    """Residual error of one observed output.

    Parameters
    ----------
    kind : {"additive", "proportional", "combined", "lognormal", "known_sd"}
        Error structure (see the module docstring).
    output : str
        Name of the observed output (``"conc"`` for a PK model's concentration).
    priors : tuple of (name, Prior)
        Priors of the error SDs; defaults: HalfNormal(1) in the output's unit
        for ``sigma_add``, HalfNormal(0.5) for the dimensionless ones.
    censoring : {"m3", "ignore"}
        How CENS = +-1 records enter: M3 likelihood, or an error if present.
    nu : float, optional
        Degrees of freedom of a Student-t residual (fixed); None (default) for a Normal one. Not with
        ``known_sd``.
    """

    kind: ErrorKind = "additive"
    output: str = "conc"
    priors: tuple[tuple[str, Prior], ...] = field(default=())
    censoring: Literal["m3", "ignore"] = "m3"
    nu: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ERROR_KINDS:
            raise SpecError(f"error model {self.kind!r} is not one of {sorted(ERROR_KINDS)}")
        given = dict(self.priors)
        unknown = set(given) - set(ERROR_KINDS[self.kind])
        if unknown and self.kind == "known_sd":
            raise SpecError(f"a known_sd error model estimates no residual SD (each observation's SD comes from "
                            f"the DVSD column of the data), so it takes no priors; remove {sorted(unknown)}")
        if unknown:
            raise SpecError(f"{self.kind} error model has SDs {ERROR_KINDS[self.kind]}, not {sorted(unknown)}")
        for name, prior in given.items():
            if prior.support != "positive":
                raise SpecError(f"prior of {name} must be positive (an SD), got {prior.family}")
        full = tuple((n, given.get(n, _DEFAULT_PRIORS[n])) for n in ERROR_KINDS[self.kind])
        object.__setattr__(self, "priors", full)
        if self.censoring not in ("m3", "ignore"):
            raise SpecError(f"censoring must be 'm3' or 'ignore', got {self.censoring!r}")
        if self.nu is not None:
            nu = float(self.nu)
            if not math.isfinite(nu) or nu <= 0:
                raise SpecError(f"nu (Student-t degrees of freedom) of the {self.output!r} error model must be a "
                                f"positive finite number, got {self.nu!r}; leave it None for Normal residuals")
            if self.kind == "known_sd":
                raise SpecError("a known_sd error model is Normal with each observation's own SD; nu does not "
                                "apply (remove nu, or use an estimated error model)")
            object.__setattr__(self, "nu", nu)

    @property
    def known_sd(self) -> bool:
        """Whether each observation brings its own SD (column ``DVSD``) instead of an estimated one."""
        return self.kind == "known_sd"

    @property
    def sigma_names(self) -> tuple[str, ...]:
        """Names of the error SDs of this model."""
        return ERROR_KINDS[self.kind]

    def prior(self, name: str) -> Prior:
        """Prior of one error SD."""
        return dict(self.priors)[name]

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (``nu`` only when set, so Normal specs keep their digests)."""
        out = {"kind": self.kind, "output": self.output, "censoring": self.censoring,
               "priors": {n: p.to_dict() for n, p in self.priors}}
        if self.nu is not None:
            out["nu"] = self.nu
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorModel:
        """Inverse of ``to_dict``."""
        priors = tuple((n, Prior.from_dict(p)) for n, p in data.get("priors", {}).items())
        return cls(kind=data.get("kind", "additive"), output=data.get("output", "conc"), priors=priors,
                   censoring=data.get("censoring", "m3"), nu=data.get("nu"))
