"""Tumour-size models in closed form: Claret tumour growth inhibition and Stein growth-decay.

Both predict the tumour size ``y`` (sum of longest diameters of the target lesions, mm, as measured by
RECIST) against time since the start of treatment (weeks by default). Model time 0 is the start of
treatment. Event tables refuse negative times, so a baseline scan is recorded at time 0 (the formulas also
hold before 0).

``oncology.claret_tgi`` -- Claret L, Girard P, Hoff PM, et al. (2009). Model-based prediction of phase III
overall survival in colorectal cancer on the basis of phase II tumor dynamics. *J Clin Oncol*
27(25):4103-4108::

    dy/dt = kl * y - kd * E(t) * exp(-lam * t) * y,      y(0) = y0

exponential growth ``kl``, drug-driven shrinkage ``kd * E(t)`` whose effect fades as resistance builds
(``lam``, Claret's lambda). **Exposure**: ``E(t) = 1`` while the patient is on treatment (from time 0 to
the optional ``t_off``, default: never stops) and 0 otherwise, i.e. a constant dose intensity from the
start of treatment, which is what Claret et al. used (the daily exposure at the patient's dose level).
It is chosen because a clinician can always supply it (the start date, and the stop date if any) without
a PK model or complete dose records, and it keeps the model identifiable from tumour sizes alone. A
patient's relative dose intensity (1 = full dose) enters as a covariate on ``kd`` with a fixed power of
1 (``CovariateEffect("RDI", form="power", reference=1.0, fixed=1.0)``), so ``kd`` is the shrinkage rate
at full dose. With ``tau = clip(t, 0, t_off)`` the solution is

    y(t) = y0 * exp(kl * t - kd * (1 - exp(-lam * tau)) / lam)

(before treatment, ``t < 0``, growth only). The model takes no dose records.

``oncology.stein`` -- Stein WD, Figg WD, Dahut W, et al. (2008). Tumor growth rates derived from data
for patients in a clinical trial correlate strongly with patient survival. *The Oncologist* 13:1046-1054;
Stein WD, Gulley JL, Schlom J, et al. (2011). *Clin Cancer Res* 17(4):907-917::

    y(t) = y0 * (exp(-d t) + exp(g t) - 1)

a decaying (treatment-sensitive) fraction with rate ``d`` and a regrowing one with rate ``g``; no dose
records (the observations alone), the growth rate ``g`` being the summary Stein et al. relate to
survival. Stein et al. report ``g`` and ``d`` per day; here they are per week (multiply per-day rates by 7,
or declare the spec's time unit as ``day``).

Reference values (used to simulate data and centre default priors) are illustrative magnitudes -- a
tumour of 50 mm that shrinks for about 10 weeks and regrows -- not published estimates.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.dynamics.events import Doses
>>> none = Doses.single(time=0.0, amt=0.0)._replace(mask=jnp.array([False]))   # no dose records
>>> theta = {"y0": 50.0, "kl": 0.02, "kd": 0.2, "lam": 0.2}
>>> y = ClaretTGI().predict(theta, none, jnp.array([-4.0, 0.0, 10.0]))[:, 0]
>>> [round(float(v), 3) for v in y]
[46.156, 50.0, 25.722]
>>> float(SteinGrowthDecay().predict({"y0": 40.0, "d": 0.1, "g": 0.03}, none, jnp.array([0.0]))[0, 0])
40.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, final

import jax.numpy as jnp
from jax import Array

from bayestwin.dynamics.events import Doses
from bayestwin.models.registry import register
from bayestwin.spec.structural import AbstractStructuralModel

__all__ = ["ClaretTGI", "SteinGrowthDecay", "exposure_integral"]


def exposure_integral(times: Array, lam: Array, t_off: Array | float = jnp.inf) -> Array:
    """``integral_0^t E(s) exp(-lam s) ds`` for ``E = 1`` on ``[0, t_off)``: ``(1 - exp(-lam tau)) / lam``.

    ``tau = clip(t, 0, t_off)``; stable for small ``lam`` (``expm1``); pure JAX, differentiable.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> [round(float(v), 6) for v in exposure_integral(jnp.array([-1.0, 3.0, 9.0]), jnp.asarray(1e-9), 5.0)]
    [0.0, 3.0, 5.0]
    """
    tau = jnp.clip(jnp.asarray(times, dtype=float), 0.0, t_off)
    return -jnp.expm1(-lam * tau) / lam


class _TumourSize(AbstractStructuralModel):
    """What the tumour-size models share: no dose records, one output ``size`` in mm, time in weeks."""

    compartments: ClassVar[tuple[str, ...]] = ()
    default_dose_compartment: ClassVar[str] = ""
    outputs: ClassVar[tuple[str, ...]] = ("size",)
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"size"})
    units: ClassVar[Mapping[str, str]] = {"time": "week", "amt": "mg", "size": "mm"}
    kind: ClassVar[str] = "closed_form"


@register("oncology.claret_tgi")
@final
class ClaretTGI(_TumourSize):
    """Claret et al. (2009) tumour growth inhibition with a constant exposure from the start of treatment.

    ``dy/dt = kl y - kd E(t) exp(-lam t) y``, ``y(0) = y0``, ``E = 1`` on ``[0, t_off)`` (see the module
    docstring). Parameters: ``y0`` (mm, size at treatment start), ``kl`` (1/week, growth rate), ``kd``
    (1/week, shrinkage rate at full exposure, at the start), ``lam`` (1/week, decay of the drug effect,
    i.e. resistance); optional ``t_off`` (week, end of treatment; default never).
    """

    parameters: ClassVar[Mapping[str, str]] = {"y0": "mm", "kl": "1/week", "kd": "1/week", "lam": "1/week"}
    optional_parameters: ClassVar[Mapping[str, tuple[str, float]]] = {"t_off": ("week", float("inf"))}
    reference_values: ClassVar[Mapping[str, float]] = {"y0": 50.0, "kl": 0.02, "kd": 0.2, "lam": 0.2}
    description: ClassVar[str] = ("tumour growth inhibition (Claret 2009): exponential growth, drug shrinkage from "
                                  "treatment start, resistance")

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Tumour size (mm) at `times`, shape ``(len(times), 1)``."""
        phi = exposure_integral(times, theta["lam"], theta.get("t_off", jnp.inf))
        return (theta["y0"] * jnp.exp(theta["kl"] * times - theta["kd"] * phi))[:, None]


@register("oncology.stein")
@final
class SteinGrowthDecay(_TumourSize):
    """Stein et al. (2008, 2011) biexponential growth-decay: ``y = y0 (exp(-d t) + exp(g t) - 1)``.

    Parameters: ``y0`` (mm, size at treatment start), ``d`` (1/week, decay), ``g`` (1/week, regrowth).
    No dose records: the model describes the observed series (treatment is implied by ``d``).
    """

    parameters: ClassVar[Mapping[str, str]] = {"y0": "mm", "d": "1/week", "g": "1/week"}
    reference_values: ClassVar[Mapping[str, float]] = {"y0": 50.0, "d": 0.1, "g": 0.03}
    description: ClassVar[str] = "biexponential tumour growth-decay (Stein 2008/2011), no dosing"

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Tumour size (mm) at `times`, shape ``(len(times), 1)``."""
        return (theta["y0"] * (jnp.exp(-theta["d"] * times) + jnp.exp(theta["g"] * times) - 1.0))[:, None]
