"""Kidney function over years: eGFR trajectories with a linear or an exponential decline.

The estimated glomerular filtration rate (eGFR, mL/min per 1.73 m² of body surface area; written
``mL/min`` here, the indexation being implied) of a patient with chronic kidney disease (CKD) declines
over years; eGFR < 15 is kidney failure (KDIGO 2012 CKD guideline, stage G5). Two standard trajectory
shapes, each with a patient-level intercept and rate (random effects, between-subject variability):

``renal.egfr_linear`` -- ``egfr(t) = egfr_ref + slope * (t - time_ref)``: the eGFR slope (mL/min/year) is
the accepted surrogate end point of CKD progression trials (Levey AS, Gansevoort RT, Coresh J, et al.
(2020). Change in albuminuria and GFR as end points for clinical trials in early stages of CKD. *Am J
Kidney Dis* 75(1):84-104; Inker LA, et al. (2019). GFR slope as a surrogate end point for kidney disease
progression in clinical trials: a meta-analysis. *J Am Soc Nephrol* 30(9):1735-1745). Both parameters
are on the identity scale (a slope may be negative or positive): specs give them additive normal
random effects, additive covariate effects and an additive residual error.

``renal.egfr_exponential`` -- ``egfr(t) = egfr_ref * exp(-k * (t - time_ref))``: a constant *relative*
decline ``k`` (1/year; 100 k is about the percent lost per year), which keeps eGFR positive and makes
faster absolute loss at higher eGFR; the log-linear mixed model used when the decline is proportional
(e.g. Li L, Astor BC, Lewis J, et al. (2012). Longitudinal progression trajectory of GFR among patients
with CKD. *Am J Kidney Dis* 59(4):504-512, who compare trajectory shapes). Both parameters are positive
(log scale: log-normal random effects, multiplicative covariate effects).

**Time is centred**: ``time_ref`` (year, fixed in the spec, optional, default 0) is the time at which
``egfr_ref`` applies; set it near the middle of the follow-up (random intercepts and slopes at time 0 of a
long follow-up are strongly correlated, and NUTS then samples them poorly: see ``longitudinal.Linear``).

**Treatment effect on the rate** through the spec's covariate effects, e.g. a treatment indicator column
``TRT`` (0/1): on the linear model ``CovariateEffect("TRT", form="linear", reference=0.0, prior=...)``
adds ``beta`` mL/min/year to the slope of treated patients; on the exponential model
``CovariateEffect("TRT", form="exponential", reference=0.0, prior=...)`` multiplies ``k`` by
``exp(beta)`` (``1 - exp(beta)`` is the fraction of the decline the treatment prevents).

The probability of reaching eGFR < 15 within a horizon, per patient and with its Monte Carlo error, is
``bayestwin.forecast.crossing.probability_of_crossing`` applied to the twin's forecast.

Reference values (simulated data and default priors): eGFR 45 mL/min at ``time_ref`` (CKD stage G3a/b),
losing 3 mL/min/year (linear) or 6 %/year (exponential) -- illustrative, of the order of progressive CKD.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.dynamics.events import Doses
>>> none = Doses.single(time=0.0, amt=0.0)._replace(mask=jnp.array([False]))   # no dose records
>>> theta = {"egfr_ref": 45.0, "slope": -3.0, "time_ref": 2.0}
>>> EGFRLinear().predict(theta, none, jnp.array([0.0, 2.0, 5.0]))[:, 0].tolist()
[51.0, 45.0, 36.0]
>>> theta = {"egfr_ref": 45.0, "k": 0.06, "time_ref": 2.0}
>>> round(float(EGFRExponential().predict(theta, none, jnp.array([12.0]))[0, 0]), 4)   # 45 exp(-0.6)
24.6965
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar, final

import jax.numpy as jnp
from jax import Array

from bayestwin.dynamics.events import Doses
from bayestwin.models.piecewise import segment_index
from bayestwin.models.registry import register
from bayestwin.spec.structural import AbstractStructuralModel

__all__ = ["EGFRExponential", "EGFRLinear"]


class _EGFR(AbstractStructuralModel):
    """What the eGFR models share: no dose records, one output ``egfr`` (mL/min), time in years."""

    compartments: ClassVar[tuple[str, ...]] = ()
    default_dose_compartment: ClassVar[str] = ""
    outputs: ClassVar[tuple[str, ...]] = ("egfr",)
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"egfr"})
    units: ClassVar[Mapping[str, str]] = {"time": "year", "amt": "mg", "egfr": "mL/min"}
    optional_parameters: ClassVar[Mapping[str, tuple[str, float]]] = {"time_ref": ("year", 0.0)}
    # no amounts: predict_segments is a gather, so chains may run in parallel (as longitudinal models)
    linear: ClassVar[bool] = True

    @abc.abstractmethod
    def _line(self, theta: Mapping[str, Array], times: Array, ref: Array | float) -> Array:
        """The eGFR at `times` for scalar parameters `theta` and centring time `ref`."""

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """The eGFR (mL/min per 1.73 m²) at `times` (years), shape ``(len(times), 1)``."""
        return self._line(theta, times, theta.get("time_ref", 0.0))[:, None]

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """The eGFR with the parameters of the segment holding each time (a covariate recorded per visit)."""
        k = segment_index(starts, times)
        seg = {name: jnp.asarray(value)[k] for name, value in theta.items()}
        return self._line(seg, times, seg.get("time_ref", 0.0))[:, None]


@register("renal.egfr_linear")
@final
class EGFRLinear(_EGFR):
    """Linear eGFR decline: ``egfr_ref + slope * (t - time_ref)`` (mL/min per 1.73 m², t in years).

    Parameters: ``egfr_ref`` (mL/min, eGFR at ``time_ref``), ``slope`` (mL/min/year; negative is a
    decline), optional fixed ``time_ref`` (year). Identity scale (see the module docstring).
    """

    parameters: ClassVar[Mapping[str, str]] = {"egfr_ref": "mL/min", "slope": "mL/min/year"}
    parameter_scales: ClassVar[Mapping[str, str]] = {"egfr_ref": "identity", "slope": "identity",
                                                     "time_ref": "identity"}
    reference_values: ClassVar[Mapping[str, float]] = {"egfr_ref": 45.0, "slope": -3.0}
    description: ClassVar[str] = "eGFR, linear decline (random intercept and slope), years"

    def _line(self, theta: Mapping[str, Array], times: Array, ref: Array | float) -> Array:
        return theta["egfr_ref"] + theta["slope"] * (times - ref)


@register("renal.egfr_exponential")
@final
class EGFRExponential(_EGFR):
    """Exponential eGFR decline: ``egfr_ref * exp(-k * (t - time_ref))`` (mL/min per 1.73 m², t in years).

    Parameters: ``egfr_ref`` (mL/min, eGFR at ``time_ref``), ``k`` (1/year, relative rate of decline),
    optional fixed ``time_ref`` (year). Both positive (log scale).
    """

    parameters: ClassVar[Mapping[str, str]] = {"egfr_ref": "mL/min", "k": "1/year"}
    parameter_scales: ClassVar[Mapping[str, str]] = {"time_ref": "identity"}
    reference_values: ClassVar[Mapping[str, float]] = {"egfr_ref": 45.0, "k": 0.06}
    description: ClassVar[str] = "eGFR, exponential (proportional) decline with patient-level rate, years"

    def _line(self, theta: Mapping[str, Array], times: Array, ref: Array | float) -> Array:
        return theta["egfr_ref"] * jnp.exp(-theta["k"] * (times - ref))
