"""The model specification of a twin: structural model, parameters, error model.

A ``TwinSpec`` is a frozen value validated at construction. It serialises
to a plain dict (and JSON/YAML) and has a stable content digest used for
provenance (fits and forecasts record it) and for caching compiled kernels.

Examples
--------
>>> spec = TwinSpec(
...     name="theophylline", model="pk.one_cmt_oral",
...     parameters=(Parameter("ka", unit="1/h", typical=Prior.lognormal(median=1.5, sigma=1.0),
...                           bsv=Prior.half_normal(1.0)),
...                 Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0),
...                           bsv=Prior.half_normal(0.5)),
...                 Parameter("v", unit="L", typical=Prior.lognormal(median=30.0, sigma=1.0),
...                           bsv=Prior.half_normal(0.5))),
...     error=(ErrorModel("additive"),))
>>> TwinSpec.from_dict(spec.to_dict()) == spec, spec.digest()[:7]
(True, 'sha256:')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayestwin.exceptions import SpecError
from bayestwin.spec.observation import ErrorModel
from bayestwin.spec.parameters import Parameter
from bayestwin.spec.prior import Prior

__all__ = ["SPEC_SCHEMA_VERSION", "TwinSpec"]

SPEC_SCHEMA_VERSION = 1
_DEFAULT_UNITS = (("time", "h"), ("amt", "mg"), ("conc", "mg/L"))


@dataclass(frozen=True, kw_only=True)
class TwinSpec:
    """A complete, validated model specification.

    Parameters
    ----------
    name : str
        Human-readable name of the spec.
    model : str
        Registered structural model (see ``bayestwin.models.model_names``).
    parameters : tuple of Parameter
        One entry per structural parameter of the model.
    error : tuple of ErrorModel
        One residual error model per observed output.
    correlation : Prior, optional
        ``Prior("LKJ", eta=...)`` for correlated BSV; None: independent.
    centered : bool or tuple of str
        Parametrisation of the random effects. False (default): non-centred, ``eta = omega z`` with
        ``z ~ N(0, 1)``. True: centred offsets, ``eta ~ N(0, omega)`` sampled directly. A tuple of BSV
        parameter names: those parameters' latent values are sampled directly,
        ``z_i ~ N(latent(TV) + covariate effects, omega)`` (centred on the typical value too, so a
        well-informed patient value no longer ties its offset to the typical value), the others
        non-centred; for data that pin some patient values and leave others to the prior. Not with
        ``correlation``.
    units : tuple of (name, unit)
        Units of ``time``, ``amt`` and each output in which data are given to
        the model (the data are converted to them).
    description : str
        Free text.
    """

    name: str
    model: str
    parameters: tuple[Parameter, ...]
    error: tuple[ErrorModel, ...] = (ErrorModel("additive"),)
    correlation: Prior | None = None
    centered: bool | tuple[str, ...] = False
    units: tuple[tuple[str, str], ...] = _DEFAULT_UNITS
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "error", tuple(self.error))
        object.__setattr__(self, "units", tuple(sorted((str(k), str(v)) for k, v in dict(self.units).items())))
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise SpecError(f"spec {self.name!r} defines a parameter twice: {names}")
        if not self.parameters:
            raise SpecError(f"spec {self.name!r} has no parameters")
        outputs = [e.output for e in self.error]
        if len(set(outputs)) != len(outputs):
            raise SpecError(f"spec {self.name!r} has two error models for one output: {outputs}")
        if self.correlation is not None:
            if self.correlation.family != "LKJ":
                raise SpecError(f"correlation prior must be LKJ, got {self.correlation.family}")
            if len(self.bsv_parameters) < 2:
                raise SpecError("correlated BSV needs at least two parameters with BSV")
        if not isinstance(self.centered, bool):
            self._check_centred_names()
        units = dict(self.units)
        for need in ("time", "amt"):
            if need not in units:
                raise SpecError(f"spec {self.name!r} must give the unit of {need!r} in units=")

    def _check_centred_names(self) -> None:
        centred = tuple(str(c) for c in self.centered)  # type: ignore[union-attr]
        unknown = [c for c in centred if c not in self.bsv_parameters]
        if unknown:
            raise SpecError(f"spec {self.name!r}: centered= names {unknown}, which are not parameters with BSV "
                            f"({list(self.bsv_parameters)}); name only those, or pass True/False")
        if self.correlation is not None:
            raise SpecError(f"spec {self.name!r}: per-parameter centring (centered={list(centred)}) cannot be "
                            "combined with correlated BSV; use centered=True or False with the LKJ prior")
        kept = tuple(b for b in self.bsv_parameters if b in centred)  # spec order; () is non-centred
        object.__setattr__(self, "centered", kept or False)

    # --- queries ------------------------------------------------------------------------
    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Structural parameter names, in spec order."""
        return tuple(p.name for p in self.parameters)

    @property
    def bsv_parameters(self) -> tuple[str, ...]:
        """Parameters with between-subject variability."""
        return tuple(p.name for p in self.parameters if p.has_bsv)

    @property
    def covariates(self) -> tuple[str, ...]:
        """Event-table columns the spec's covariate effects need."""
        seen: dict[str, None] = {}
        for p in self.parameters:
            for c in p.covariates:
                seen[c.covariate] = None
        return tuple(seen)

    @property
    def observed_outputs(self) -> tuple[str, ...]:
        """The observed outputs, in the order of ``error`` (DVID k in the data = entry k - 1)."""
        return tuple(e.output for e in self.error)

    @property
    def sigma_sites(self) -> tuple[tuple[str, int, str], ...]:
        """Residual SDs as ``(site name, error-model index, SD name)``.

        With one observed output the sites are the SD names (``sigma_add``...); with several, each is
        suffixed with its output (``sigma_add_conc``, ``sigma_add_effect``) so that none collide.

        Examples
        --------
        >>> from bayestwin.spec import example_spec
        >>> example_spec().sigma_sites
        (('sigma_add', 0, 'sigma_add'),)
        """
        several = len(self.error) > 1
        return tuple((f"{s}_{e.output}" if several else s, j, s)
                     for j, e in enumerate(self.error) for s in e.sigma_names)

    @property
    def sigma_names(self) -> tuple[str, ...]:
        """Names of every residual-SD sample site (see ``sigma_sites``)."""
        return tuple(site for site, _, _ in self.sigma_sites)

    def sigma_prior(self, site: str) -> Prior:
        """Prior of the residual SD sampled at `site`."""
        for name, j, sd in self.sigma_sites:
            if name == site:
                return self.error[j].prior(sd)
        raise SpecError(f"spec {self.name!r} has no residual SD {site!r}; it has {list(self.sigma_names)}")

    def parameter(self, name: str) -> Parameter:
        """The parameter called `name`; SpecError listing the spec's parameters otherwise."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise SpecError(f"spec {self.name!r} has no parameter {name!r}; it has {list(self.parameter_names)}")

    def unit(self, quantity: str) -> str:
        """Unit of ``time``, ``amt`` or an output."""
        units = dict(self.units)
        if quantity not in units:
            raise SpecError(f"spec {self.name!r} gives no unit for {quantity!r}; units: {units}")
        return units[quantity]

    # --- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON/YAML-safe), with a schema version."""
        return {
            "schema_version": SPEC_SCHEMA_VERSION, "name": self.name, "model": self.model,
            "parameters": [p.to_dict() for p in self.parameters], "error": [e.to_dict() for e in self.error],
            "correlation": None if self.correlation is None else self.correlation.to_dict(),
            "centered": self.centered if isinstance(self.centered, bool) else list(self.centered),
            "units": dict(self.units), "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TwinSpec:
        """Inverse of ``to_dict``; SpecError on a missing key or a newer schema."""
        version = data.get("schema_version", SPEC_SCHEMA_VERSION)
        if version > SPEC_SCHEMA_VERSION:
            raise SpecError(f"spec schema version {version} is newer than this bayestwin supports "
                            f"({SPEC_SCHEMA_VERSION}); upgrade bayestwin")
        try:
            corr = data.get("correlation")
            return cls(name=data["name"], model=data["model"],
                       parameters=tuple(Parameter.from_dict(p) for p in data["parameters"]),
                       error=tuple(ErrorModel.from_dict(e) for e in data.get("error", [{"kind": "additive"}])),
                       correlation=None if corr is None else Prior.from_dict(corr),
                       centered=_centred_from_dict(data.get("centered", False)),
                       units=tuple(dict(data.get("units", dict(_DEFAULT_UNITS))).items()),
                       description=data.get("description", ""))
        except KeyError as err:
            raise SpecError(f"spec dict is missing the key {err.args[0]!r}") from err

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    def save(self, path: str | Path) -> Path:
        """Write the spec as JSON (``.json``) or YAML (``.yaml``/``.yml``, needs PyYAML)."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            from bayestwin._extras import require

            yaml = require("yaml", extra="yaml")
            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        else:
            path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TwinSpec:
        """Read a spec written by ``save``."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            from bayestwin._extras import require

            return cls.from_dict(require("yaml", extra="yaml").safe_load(text))
        return cls.from_dict(json.loads(text))

    def digest(self) -> str:
        """Stable content hash (``sha256:...``) of everything that changes the model."""
        payload = self.to_dict()
        payload.pop("description", None)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _centred_from_dict(value: Any) -> bool | tuple[str, ...]:
    """``centered`` as written by ``to_dict``: a bool, or a list of parameter names."""
    return tuple(value) if isinstance(value, list | tuple) else bool(value)
