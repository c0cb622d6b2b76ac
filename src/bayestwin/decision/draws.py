"""A twin's posterior as plain arrays: the input of plan comparisons.

``PosteriorDraws.from_twin`` reads a fitted :class:`~bayestwin.twin.Twin` once: structural parameters and
residual SDs per (chain, draw), the patient's past doses in the spec's units, the output units, the
provenance that a recommendation records, and the ranges of the data the population was fitted on (for
extrapolation warnings). It changes nothing in the twin. ``PosteriorDraws`` can also be built directly
(``from_arrays``) for a known-answer case or a posterior from elsewhere; ``point`` collapses it to one
point estimate (posterior mean or median) to see what a point-estimate dosing tool would choose.

Examples
--------
>>> import numpy as np
>>> from bayestwin.spec import example_spec
>>> d = PosteriorDraws.from_arrays(example_spec(), {"ka": np.ones((2, 3)), "cl": np.full((2, 3), 2.0),
...                                "v": np.full((2, 3), 20.0)}, {"sigma_add": np.full((2, 3), 0.1)})
>>> d.n_chains, d.n_draws, d.point("mean").n_draws
(2, 3, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bayestwin.config import software_versions
from bayestwin.dynamics.events import Doses
from bayestwin.exceptions import ConvergenceError, InputError
from bayestwin.models.registry import get_model
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["PosteriorDraws"]

_DOSE_DTYPES = {"time": float, "amt": float, "rate": float, "cmt": np.int32, "ii": float, "ss": np.int32,
                "reset": bool, "mask": bool}


def no_doses() -> dict[str, np.ndarray]:
    """Empty dose fields (a patient with no past doses)."""
    return {k: np.zeros(0, dtype=t) for k, t in _DOSE_DTYPES.items()}


@dataclass(frozen=True)
class PosteriorDraws:
    """Posterior draws of one patient, ready for ``compare_plans``.

    Attributes
    ----------
    spec : TwinSpec
        The model.
    theta : dict of str to ndarray
        Every structural parameter, ``(chain, draw)`` (``(chain, draw, segment)`` with time-varying covariates).
    sigmas : dict of str to ndarray
        Every residual SD site, ``(chain, draw)``.
    past : dict of str to ndarray
        The patient's past dose records (``Doses`` fields, unpadded, spec units).
    units : dict of str to str
        Units of ``time``, ``amt`` and each observed output.
    starts : ndarray or None
        Segment start times with time-varying covariates.
    patient : str
        The patient's identifier (a store replaces it by the pseudonym).
    meta : dict
        Provenance, diagnostics, data window, covariates and population data ranges (see ``from_twin``).
    """

    spec: TwinSpec
    theta: dict[str, np.ndarray]
    sigmas: dict[str, np.ndarray]
    past: dict[str, np.ndarray] = field(default_factory=no_doses)
    units: dict[str, str] = field(default_factory=dict)
    starts: np.ndarray | None = None
    patient: str = "unknown"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [p for p in self.spec.parameter_names if p not in self.theta]
        missing += [s for s in self.spec.sigma_names if s not in self.sigmas]
        if missing:
            raise InputError(f"posterior draws for spec {self.spec.name!r} lack {missing}; give every structural "
                             "parameter and residual SD as a (chain, draw) array")
        shape = np.shape(next(iter(self.theta.values())))[:2]
        for name, arr in {**self.theta, **self.sigmas}.items():
            if np.shape(arr)[:2] != shape:
                raise InputError(f"posterior draws: {name!r} has shape {np.shape(arr)}, expected (chain, draw) = "
                                 f"{shape} in front like the others")
        if not self.units:
            object.__setattr__(self, "units", {"time": self.spec.unit("time"), "amt": self.spec.unit("amt"),
                                               **{o: self.spec.unit(o) for o in self.spec.observed_outputs}})

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, spec: TwinSpec, theta: Mapping[str, Any], sigmas: Mapping[str, Any], *,
                    past: Doses | Mapping[str, Any] | None = None, patient: str = "unknown",
                    meta: Mapping[str, Any] | None = None) -> PosteriorDraws:
        """Draws given as ``(chain, draw)`` arrays (past doses optional, spec units)."""
        th = {k: np.asarray(v, dtype=float) for k, v in theta.items()}
        sg = {k: np.asarray(v, dtype=float) for k, v in sigmas.items()}
        return cls(spec, th, sg, _unpadded(past), patient=patient, meta=dict(meta or {}))

    @classmethod
    def from_twin(cls, twin: Any, *, override_convergence: bool = False) -> PosteriorDraws:
        """The draws of a fitted twin, refusing a failed fit unless `override_convergence` (then recorded).

        Raises ``NotFittedError`` for an unfitted twin and ``ConvergenceError`` as ``Twin.forecast`` does.
        """
        from bayestwin.decision.extrapolation import population_ranges

        twin._require_fitted("compare plans of")
        failed = (not twin.diagnostics_.ok) or twin.population_overridden_
        if failed and not override_convergence:
            raise ConvergenceError(
                f"the twin of patient {twin.patient_id_!r} failed its convergence gate:\n"
                f"{twin.diagnostics_.format()}\nPlans compared on it could be wrong with confident probabilities. "
                "Refit with more draws, or pass override_convergence=True (recorded in the result).")
        post = twin.idata_.posterior
        theta = {p: post[p].to_numpy() for p in twin.spec.parameter_names}
        sigmas = {s: post[s].to_numpy() for s in twin.spec.sigma_names}
        starts = post["segment_start"].to_numpy() if "segment_start" in post.coords else None
        past = {k: np.asarray(getattr(twin.arrays_.doses, k))[0] for k in Doses._fields}
        events = twin.events_
        obs = events.observations
        covs = {k: np.asarray(v)[0].tolist() for k, v in twin.arrays_.covariates.items()}
        meta = {
            "provenance": {"spec_name": twin.spec.name, "spec_digest": twin.spec.digest(),
                           "data_digest": events.digest(), "population_fit_id": twin.population.fit_id,
                           "population_version": twin.population_version_,
                           "software": software_versions()},
            "diagnostics": {"population": twin.population.diagnostics.to_dict(), "twin": twin.diagnostics_.to_dict(),
                            "status": "failed-overridden" if failed else "ok", "override_recorded": bool(failed)},
            "data_window": {"first_time": float(events.frame["time"].min()),
                            "last_time": float(events.frame["time"].max()), "n_observations": len(obs),
                            "time_unit": twin.arrays_.units["time"], "data_digest": events.digest()},
            "covariates": covs,
            "population_ranges": population_ranges(twin.population),
        }
        return cls(twin.spec, theta, sigmas, _unpadded(past), dict(twin.arrays_.units), starts,
                   str(twin.patient_id_), meta)

    # --- views ------------------------------------------------------------------------------------
    @property
    def model(self) -> AbstractStructuralModel:
        """The registered structural model of the spec."""
        return get_model(self.spec.model)

    @property
    def n_chains(self) -> int:
        """Number of chains."""
        return int(np.shape(next(iter(self.theta.values())))[0])

    @property
    def n_draws(self) -> int:
        """Draws per chain."""
        return int(np.shape(next(iter(self.theta.values())))[1])

    def flat(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Parameters ``(sample, ...)`` and SDs ``(sample,)``, chain-major."""
        n = self.n_chains * self.n_draws
        theta = {k: v.reshape(n, *v.shape[2:]) for k, v in self.theta.items()}
        return theta, {k: v.reshape(n) for k, v in self.sigmas.items()}

    def point(self, kind: str = "mean") -> PosteriorDraws:
        """One draw: every parameter and SD at its posterior ``"mean"`` or ``"median"`` (a point estimate).

        Comparing plans on it gives what a point-estimate dosing tool would see: with ``quantity="ipred"``
        every probability is 0 or 1.
        """
        reducers = {"mean": np.mean, "median": np.median}
        if kind not in reducers:
            raise InputError(f"point estimate kind must be one of {sorted(reducers)}, got {kind!r}")
        fn = reducers[kind]
        one = lambda v: np.asarray(fn(v, axis=(0, 1)))[None, None]  # noqa: E731
        meta = {**self.meta, "point_estimate": kind}
        return replace(self, theta={k: one(v) for k, v in self.theta.items()},
                       sigmas={k: one(v) for k, v in self.sigmas.items()}, meta=meta)


def _unpadded(past: Doses | Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    if past is None:
        return no_doses()
    get = (lambda k: getattr(past, k)) if isinstance(past, Doses) else (lambda k: past[k])
    mask = np.asarray(get("mask"), dtype=bool)
    return {k: np.asarray(get(k), dtype=t)[mask] for k, t in _DOSE_DTYPES.items()}
