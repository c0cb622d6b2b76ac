"""Linear compartment PK models solved in closed form by superposition.

Units: the model works in the spec's units; parameters are relative to them
(clearance = volume/time, volume = amount/concentration). The defaults are
hours, mg and mg/L, so CL is in L/h and V in L.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, final

from jax import Array

from bayestwin.dynamics import closed_form as cf
from bayestwin.dynamics import ode_models as rhs
from bayestwin.dynamics.events import Doses
from bayestwin.models.piecewise import piecewise_predict
from bayestwin.models.registry import register
from bayestwin.spec.structural import AbstractStructuralModel

__all__ = ["OneCmtIV", "OneCmtOral", "TwoCmtIV", "TwoCmtOral"]

_UNITS = {"time": "h", "amt": "mg", "conc": "mg/L"}


@register("pk.one_cmt_iv")
@final
class OneCmtIV(AbstractStructuralModel):
    """One compartment, IV bolus or infusion, linear elimination: ``C = A/V``, ``dA/dt = -CL/V A``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from bayestwin.dynamics.events import Doses
    >>> m = OneCmtIV()
    >>> float(m.predict({"cl": 2.0, "v": 20.0}, Doses.single(time=0.0, amt=100.0), jnp.array([0.0]))[0, 0])
    5.0
    """

    compartments: ClassVar[tuple[str, ...]] = ("central",)
    default_dose_compartment: ClassVar[str] = "central"
    parameters: ClassVar[Mapping[str, str]] = {"cl": "L/h", "v": "L"}
    reference_values: ClassVar[Mapping[str, float]] = {"cl": 2.0, "v": 20.0}
    units: ClassVar[Mapping[str, str]] = _UNITS
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"conc"})
    linear: ClassVar[bool] = True
    description: ClassVar[str] = "one-compartment IV (bolus/infusion), linear elimination"

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Central concentration at `times`, shape ``(len(times), 1)``."""
        return cf.one_cmt_iv(times, doses, theta["cl"], theta["v"], features=features)[:, None]

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """Central concentration with piecewise-constant parameters (ODE form; see ``bayestwin.models.piecewise``)."""
        return piecewise_predict(rhs.one_cmt_iv_rhs, ("cl", "v"), 1, lambda a, th: (a[:, 0] / th["v"])[:, None],
                                 theta, starts, doses, times, features=features, depot=None)


@register("pk.one_cmt_oral")
@final
class OneCmtOral(AbstractStructuralModel):
    """One compartment, first-order absorption from a depot (optional F, lag), linear elimination.

    Optional parameters ``f`` (bioavailability) and ``tlag`` (h) default to 1 and 0.
    """

    compartments: ClassVar[tuple[str, ...]] = ("depot", "central")
    default_dose_compartment: ClassVar[str] = "depot"
    parameters: ClassVar[Mapping[str, str]] = {"ka": "1/h", "cl": "L/h", "v": "L"}
    optional_parameters: ClassVar[Mapping[str, tuple[str, float]]] = {"f": ("dimensionless", 1.0),
                                                                       "tlag": ("h", 0.0)}
    reference_values: ClassVar[Mapping[str, float]] = {"ka": 1.0, "cl": 2.0, "v": 20.0}
    units: ClassVar[Mapping[str, str]] = _UNITS
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"conc"})
    linear: ClassVar[bool] = True
    description: ClassVar[str] = "one-compartment, first-order absorption, linear elimination"

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Central concentration at `times`, shape ``(len(times), 1)``."""
        return cf.one_cmt_oral(times, doses, theta["ka"], theta["cl"], theta["v"], f=theta.get("f", 1.0),
                               tlag=theta.get("tlag", 0.0), features=features)[:, None]

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """Central concentration with piecewise-constant parameters (ODE form; see ``bayestwin.models.piecewise``)."""
        return piecewise_predict(rhs.one_cmt_oral_rhs, ("ka", "cl", "v"), 2, lambda a, th: (a[:, 1] / th["v"])[:, None],
                                 theta, starts, doses, times, features=features, depot=0)


@register("pk.two_cmt_iv")
@final
class TwoCmtIV(AbstractStructuralModel):
    """Two compartments (central, peripheral), IV doses, linear elimination from the central one."""

    compartments: ClassVar[tuple[str, ...]] = ("central", "peripheral")
    default_dose_compartment: ClassVar[str] = "central"
    parameters: ClassVar[Mapping[str, str]] = {"cl": "L/h", "v1": "L", "q": "L/h", "v2": "L"}
    reference_values: ClassVar[Mapping[str, float]] = {"cl": 4.0, "v1": 15.0, "q": 6.0, "v2": 40.0}
    units: ClassVar[Mapping[str, str]] = _UNITS
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"conc"})
    linear: ClassVar[bool] = True
    description: ClassVar[str] = "two-compartment IV (bolus/infusion), linear elimination"

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Central concentration at `times`, shape ``(len(times), 1)``."""
        return cf.two_cmt_iv(times, doses, theta["cl"], theta["v1"], theta["q"], theta["v2"],
                             features=features)[:, None]

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """Central concentration with piecewise-constant parameters (ODE form; see ``bayestwin.models.piecewise``)."""
        return piecewise_predict(rhs.two_cmt_iv_rhs, ("cl", "v1", "q", "v2"), 2,
                                 lambda a, th: (a[:, 0] / th["v1"])[:, None],
                                 theta, starts, doses, times, features=features, depot=None)


@register("pk.two_cmt_oral")
@final
class TwoCmtOral(AbstractStructuralModel):
    """Two compartments with first-order absorption from a depot (optional F, lag)."""

    compartments: ClassVar[tuple[str, ...]] = ("depot", "central", "peripheral")
    default_dose_compartment: ClassVar[str] = "depot"
    parameters: ClassVar[Mapping[str, str]] = {"ka": "1/h", "cl": "L/h", "v1": "L", "q": "L/h", "v2": "L"}
    optional_parameters: ClassVar[Mapping[str, tuple[str, float]]] = {"f": ("dimensionless", 1.0),
                                                                       "tlag": ("h", 0.0)}
    reference_values: ClassVar[Mapping[str, float]] = {"ka": 1.0, "cl": 4.0, "v1": 15.0, "q": 6.0, "v2": 40.0}
    units: ClassVar[Mapping[str, str]] = _UNITS
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"conc"})
    linear: ClassVar[bool] = True
    description: ClassVar[str] = "two-compartment, first-order absorption, linear elimination"

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Central concentration at `times`, shape ``(len(times), 1)``."""
        return cf.two_cmt_oral(times, doses, theta["ka"], theta["cl"], theta["v1"], theta["q"], theta["v2"],
                               f=theta.get("f", 1.0), tlag=theta.get("tlag", 0.0), features=features)[:, None]

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """Central concentration with piecewise-constant parameters (ODE form; see ``bayestwin.models.piecewise``)."""
        return piecewise_predict(rhs.two_cmt_oral_rhs, ("ka", "cl", "v1", "q", "v2"), 3,
                                 lambda a, th: (a[:, 1] / th["v1"])[:, None],
                                 theta, starts, doses, times, features=features, depot=0)
