"""What a population posterior is made of and how it is named: its quantities and its content-based ids.

``population_quantities`` lists a spec's population-level variables, ``checked_quantities`` the ones the
convergence gate checks, ``population_version`` is the content hash of a posterior (``pop-`` + 16 hex digits)
and ``fit_id`` the id of a fit request (spec, data, sampler settings: ``fit-`` + 16 hex digits).

Examples
--------
>>> from bayestwin.spec import example_spec
>>> population_quantities(example_spec())[:3]
['tv_ka', 'tv_cl', 'tv_v']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from bayestwin.diagnostics.groups import InferenceGroups
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.spec.twin_spec import TwinSpec

if TYPE_CHECKING:  # pragma: no cover - arviz loads slowly
    import arviz as az

__all__ = ["checked_quantities", "fit_id", "population_quantities", "population_version"]

VERSION_PREFIX = "pop-"


def population_quantities(spec: TwinSpec) -> list[str]:
    """Names of the population-level posterior variables of `spec` (typical values, coefficients, SDs)."""
    names = [f"tv_{p.name}" for p in spec.parameters if p.estimated]
    names += [f"beta_{p.name}_{e.covariate}" for p in spec.parameters for e in p.covariates if e.fixed is None]
    names += [f"omega_{n}" for n in spec.bsv_parameters]
    names += list(spec.sigma_names)
    return names


def population_version(spec_digest: str, data_digest: str, parent: str | None, posterior: Any) -> str:
    """Content-based version id of a population posterior: ``"pop-"`` + 16 hex digits of a SHA-256.

    The hash covers the spec digest, the data digest, the parent version and every posterior
    variable's name, dtype, shape and bytes (sorted by name). It does not cover coordinates or
    attributes, so a posterior whose patient labels were pseudonymised in a store keeps its version.
    Same draws, same lineage: same version; any other draws (another seed, more data): another one.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> post = xr.Dataset({"tv_cl": (("chain", "draw"), np.ones((2, 3)))})
    >>> v = population_version("sha256:spec", "sha256:data", None, post)
    >>> v.startswith("pop-"), len(v)
    (True, 20)
    >>> v == population_version("sha256:spec", "sha256:data", v, post)
    False
    """
    h = hashlib.sha256(json.dumps({"scheme": "bayestwin.population/1", "spec": spec_digest, "data": data_digest,
                                   "parent": parent}, sort_keys=True).encode())
    for name in sorted(str(n) for n in posterior.data_vars):
        values = np.ascontiguousarray(posterior[name].to_numpy())
        h.update(json.dumps([name, values.dtype.str, list(values.shape)]).encode())
        h.update(values.tobytes())
    return VERSION_PREFIX + h.hexdigest()[:16]


def checked_quantities(spec: TwinSpec, idata: az.InferenceData | InferenceGroups) -> list[str]:
    """Posterior variables the convergence gate checks: population quantities and varying per-patient ones."""
    # a fixed value without BSV or covariates is a constant: no R-hat
    names = population_quantities(spec) + [p.name for p in spec.parameters if p.estimated or p.has_bsv or p.covariates]
    return [n for n in names if n in idata.posterior]


def fit_id(spec: TwinSpec, data_digest: str, sampler: SamplerConfig) -> str:
    """Id of a fit request: ``"fit-"`` + 16 hex digits of a SHA-256 of the spec digest, data digest and sampler.

    Settings at their defaults that were added later (``adaptation="stan"``, ``trajectory="numpyro"``) are left
    out, so the ids of fits made before they existed stay valid.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> fid = fit_id(example_spec(), "sha256:data", SamplerConfig())
    >>> fid.startswith("fit-"), fid == fit_id(example_spec(), "sha256:data", SamplerConfig(adaptation="stan"))
    (True, True)
    """
    settings = asdict(sampler)
    for key, default in (("adaptation", "stan"), ("trajectory", "numpyro")):  # ids of fits made before stay valid
        if settings.get(key) == default:
            del settings[key]
    payload = json.dumps({"spec": spec.digest(), "data": data_digest, "sampler": settings}, sort_keys=True)
    return "fit-" + hashlib.sha256(payload.encode()).hexdigest()[:16]
