"""The extension point for structural models: ``AbstractStructuralModel``.

A structural model maps one patient's parameters and dosing history to the
predicted value of each output at given times. Concrete models live in
``bayestwin.models`` and are registered by name; a ``TwinSpec`` refers
to its model by that name.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from jax import Array

    from bayestwin.dynamics.events import Doses

__all__ = ["AbstractStructuralModel"]


class AbstractStructuralModel(abc.ABC):
    """Base class of every structural model.

    Class attributes
    ----------------
    name : str
        Registry name, e.g. ``"pk.one_cmt_oral"``.
    compartments : tuple of str
        Compartment names; CMT numbers in data are 1-based positions in this
        tuple (CMT 0 or missing means `default_dose_compartment` for doses).
        Empty for a model that takes no doses (``bayestwin.models.longitudinal``).
    default_dose_compartment : str
        Where a dose without CMT goes.
    outputs : tuple of str
        Predicted outputs (``("conc",)`` for most PK models).
    parameters : Mapping[str, str]
        Structural parameter names and their units.
    units : Mapping[str, str]
        Units of ``time``, ``amt`` and of each output, in which `predict` works.
    kind : {"closed_form", "ode"}
        How predictions are computed.
    reference_values : Mapping[str, float]
        Typical parameter values in the model's units (an adult patient), used by
        ``bayestwin.testing`` to simulate data and centre default priors; optional.
    parameter_scales : Mapping[str, str]
        ``"identity"`` for a parameter that may be zero or negative (an intercept, a slope), so that
        default specs (``bayestwin.testing.default_spec``) put it on the identity scale; a parameter not
        listed is positive (``"log"``). A spec may still choose either scale.
    nonnegative_outputs : frozenset of str
        Outputs that cannot be negative (a concentration, a glucose level, a tumour size). Forecast and
        plan-comparison intervals of these outputs are reported as the quantiles of the measurement a
        laboratory reports, ``max(0, y)``: a lower bound the residual model puts below 0 (additive error at
        low concentrations) is shown as 0. Coverage of positive observations is unchanged (``[l, u]`` covers
        ``y > 0`` exactly when ``[max(0, l), max(0, u)]`` does); the draws themselves are kept as sampled.
        Empty by default.
    linear : bool
        True when the dynamics are linear in the amounts (``predict_segments`` then propagates exactly by
        matrix exponentials, without diffrax, so chains may run in parallel under ``pmap``).
    """

    name: ClassVar[str]
    compartments: ClassVar[tuple[str, ...]]
    default_dose_compartment: ClassVar[str]
    outputs: ClassVar[tuple[str, ...]] = ("conc",)
    parameters: ClassVar[Mapping[str, str]]
    units: ClassVar[Mapping[str, str]]
    kind: ClassVar[str] = "closed_form"
    linear: ClassVar[bool] = False
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset()
    reference_values: ClassVar[Mapping[str, float]] = {}
    parameter_scales: ClassVar[Mapping[str, str]] = {}
    description: ClassVar[str] = ""

    @abc.abstractmethod
    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Predicted outputs, shape ``(len(times), len(outputs))``, for one patient.

        `theta` maps each name in ``parameters`` to a scalar. Pure JAX:
        must be jit-able, vmap-able over patients and differentiable.
        `features` is a static promise of which dose kinds occur
        (``"ss"``, ``"infusion"``, ``"reset"``; None: any), letting a model
        compile a cheaper kernel.
        """

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """Like `predict`, with parameters that are piecewise constant in time (time-varying covariates).

        ``theta[name]`` has shape ``(n_segments,)``; segment ``k`` holds from ``starts[k]`` (sorted, the
        first may be ``-inf``, padding ``+inf``) until the next start. Models that support it override
        this (the built-in PK models integrate their ODE form, see ``bayestwin.models.piecewise``); the
        default raises ``SpecError``.
        """
        from bayestwin.exceptions import SpecError

        raise SpecError(f"model {self.name!r} cannot take parameters that change over time; a covariate that "
                        "changes within a patient needs a model that implements predict_segments (the built-in "
                        "PK models do), or use each patient's baseline value in its own column")

    def compartment_index(self, cmt: int | str) -> int:
        """0-based compartment index for a data CMT value (1-based number, name, or 0 = default)."""
        if isinstance(cmt, str):
            if cmt not in self.compartments:
                raise KeyError(f"model {self.name!r} has no compartment {cmt!r}; it has {self.compartments}")
            return self.compartments.index(cmt)
        if cmt == 0:
            return self.compartments.index(self.default_dose_compartment)
        if not 1 <= cmt <= len(self.compartments):
            raise KeyError(f"model {self.name!r} has compartments 1-{len(self.compartments)} "
                           f"{self.compartments}; CMT {cmt} is not one of them")
        return int(cmt) - 1

    def compartment_map(self) -> dict[int, str]:
        """CMT number (1-based) -> compartment name, for data validation."""
        return {i + 1: name for i, name in enumerate(self.compartments)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
