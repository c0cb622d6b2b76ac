"""Longitudinal models without dosing: a constant level, a straight line in time.

The building blocks of (generalised) linear mixed models for disease markers, growth curves and
meta-analyses: with identity-scale parameters (``Parameter(..., scale="identity")``) and additive
covariate effects, a spec on ``longitudinal.linear`` is the random-intercept, random-slope model

    y_ij = (a + eta_a,i) + (b + eta_b,i) * (t_ij - time_ref) + e_ij

These models have no compartments and take no doses: their data are observation records only (a dose
record is refused by the data adapter). Their single output is called ``value``; its unit, and the
parameters', are whatever the spec declares (``units=(("value", "g"), ...)``), the defaults below are
placeholders. Both also take parameters that are piecewise constant in time (``predict_segments``):
each time is evaluated with the parameters of the segment holding it, which is how a covariate that is
recorded on each observation row (e.g. the floor a radon measurement was taken on) enters the model.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.dynamics.events import Doses
>>> none = Doses.single(time=0.0, amt=0.0)._replace(mask=jnp.array([False]))
>>> Linear().predict({"intercept": 1.0, "slope": 2.0, "time_ref": 3.0}, none, jnp.array([3.0, 4.0]))[:, 0].tolist()
[1.0, 3.0]
>>> Level().predict({"level": -2.5}, none, jnp.array([0.0, 7.0]))[:, 0].tolist()
[-2.5, -2.5]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, final

import jax.numpy as jnp
from jax import Array

from bayestwin.dynamics.events import Doses
from bayestwin.models.piecewise import segment_index
from bayestwin.models.registry import register
from bayestwin.spec.structural import AbstractStructuralModel

__all__ = ["Level", "Linear"]

_UNITS = {"time": "h", "amt": "mg", "value": "dimensionless"}


class _NoDoses(AbstractStructuralModel):
    """What the dose-free models share: no compartments, one output ``value``, linear and closed form."""

    compartments: ClassVar[tuple[str, ...]] = ()
    default_dose_compartment: ClassVar[str] = ""
    outputs: ClassVar[tuple[str, ...]] = ("value",)
    units: ClassVar[Mapping[str, str]] = _UNITS
    # no amounts, no ODE: predict_segments is a gather, so chains may run in parallel (see parallel_chains_ok)
    linear: ClassVar[bool] = True


@register("longitudinal.level")
@final
class Level(_NoDoses):
    """A constant level: every observation of a patient predicts ``level`` (random-intercept models).

    With one observation per patient and a known measurement SD this is the eight-schools meta-analysis.
    """

    parameters: ClassVar[Mapping[str, str]] = {"level": "dimensionless"}
    parameter_scales: ClassVar[Mapping[str, str]] = {"level": "identity"}
    reference_values: ClassVar[Mapping[str, float]] = {"level": 10.0}
    description: ClassVar[str] = "constant level (random intercept), no dosing"

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """``level`` at every one of `times`, shape ``(len(times), 1)``."""
        return (jnp.zeros_like(times) + theta["level"])[:, None]

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """The level of the segment holding each time."""
        return jnp.asarray(theta["level"])[segment_index(starts, times)][:, None]


@register("longitudinal.linear")
@final
class Linear(_NoDoses):
    """A straight line in time: ``intercept + slope * (time - time_ref)`` (random intercepts and slopes).

    ``time_ref`` (optional, default 0, in the time unit) centres time so that ``intercept`` is the value
    at ``time_ref``; it must be fixed (``Parameter("time_ref", fixed=...)``): intercept, slope and an
    estimated ``time_ref`` are not identified together.
    """

    parameters: ClassVar[Mapping[str, str]] = {"intercept": "dimensionless", "slope": "1/h"}
    optional_parameters: ClassVar[Mapping[str, tuple[str, float]]] = {"time_ref": ("h", 0.0)}
    parameter_scales: ClassVar[Mapping[str, str]] = {"intercept": "identity", "slope": "identity",
                                                     "time_ref": "identity"}
    reference_values: ClassVar[Mapping[str, float]] = {"intercept": 10.0, "slope": 0.5}
    description: ClassVar[str] = "straight line in time (random intercept and slope), no dosing"

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """``intercept + slope * (times - time_ref)``, shape ``(len(times), 1)``."""
        return (theta["intercept"] + theta["slope"] * (times - theta.get("time_ref", 0.0)))[:, None]

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """The line of the segment holding each time, evaluated at that time."""
        k = segment_index(starts, times)
        ref = jnp.asarray(theta["time_ref"])[k] if "time_ref" in theta else 0.0
        return (jnp.asarray(theta["intercept"])[k] + jnp.asarray(theta["slope"])[k] * (times - ref))[:, None]
