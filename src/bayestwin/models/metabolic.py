"""Glucose and insulin after meals and insulin doses: the Bergman minimal model (``metabolic.bergman_meal``).

Bergman's minimal model (Bergman et al., Am J Physiol 236:E667, 1979) of plasma glucose ``G`` and remote insulin
action ``X``, fed by a two-compartment gut (Hovorka et al., Physiol Meas 25:905, 2004; fraction absorbed ``f`` as in
Dalla Man et al., IEEE Trans Biomed Eng 54:1740, 2007), a subcutaneous insulin depot, and plasma insulin ``I`` with
clearance and glucose-driven secretion (Toffolo et al., Diabetes 29:979, 1980, without the IVGTT time factor). The
equations, with their units, are in ``bayestwin.dynamics.metabolic_rhs``.

Inputs are dose records: a **meal** is a bolus of carbohydrate (g) into compartment 1 (``stomach``, the default);
**subcutaneous insulin** is a bolus into compartment 3 (``insulin_depot``), in IU. The event table has one unit for
``amt`` (the model's is g): insulin records carry IU in that column, which the model reads as IU. Time is in
minutes. At time 0 the patient is at the basal steady state (``G = Gb``, ``X = 0``, ``I = Ib``), and a reset
(EVID 3/4) returns there. Steady-state dose records (SS) are not supported (the prediction is NaN): a meal
"steady state" is not a meaningful input.

Outputs: ``glucose`` (mg/dL; divide by 18.0 for mmol/L) and ``insulin`` (mIU/L = µU/mL).

Reference values (an adult with impaired glucose tolerance, 70 kg): ``gb`` 110 mg/dL; glucose effectiveness ``sg``
0.02/min and insulin sensitivity ``si`` 3e-4 /min per mIU/L (Bergman's healthy values are about 0.025 and 5-8e-4,
lower in type 2 diabetes); ``p2`` 0.02/min; ``kabs`` 0.025/min (Hovorka's ``tmax`` 40 min). Optional, usually
fixed: ``f`` 0.9; glucose volume ``vg`` 130 dL (1.88 dL/kg, Dalla Man 2007); ``ib`` 10 mIU/L; insulin clearance
``n`` 0.14/min (Hovorka's ``ke`` 0.138/min); secretion ``gamma`` 0.05 mIU/L/min per mg/dL (a rise of about 35
mIU/L at 100 mg/dL above basal, an order of magnitude, not a literature estimate: set it for the population at
hand, 0 for type 1 diabetes); subcutaneous absorption ``ka_ins`` 0.018/min (Hovorka's ``tmax,I`` 55 min) and
insulin volume ``vi`` 8.4 L (0.12 L/kg).

Only ``D f / vg`` is identified from glucose after a meal of unknown size (``D`` the carbohydrate): with meal
records of a nominal size, ``f`` is then the *relative* meal size (see ``model_specs/glucose_minimal.py``).

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.dynamics.events import Doses
>>> m = BergmanMeal()
>>> meal = Doses.single(time=0.0, amt=75.0, n=2)                      # 75 g of carbohydrate at t = 0
>>> out = m.predict(dict(m.reference_values), meal, jnp.array([0.0, 60.0, 240.0]))
>>> [round(x) for x in out[:, 0].tolist()]                             # glucose, mg/dL
[110, 238, 112]
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import ClassVar, final

import jax.numpy as jnp
from jax import Array

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.metabolic_rhs import BERGMAN_MEAL_THETA, bergman_meal_rhs
from bayestwin.dynamics.ode import Rhs, SolveStatus, solve_amounts
from bayestwin.models.registry import register
from bayestwin.spec.structural import AbstractStructuralModel

__all__ = ["BergmanMeal"]

_DEFAULTS: dict[str, float] = {"f": 0.9, "vg": 130.0, "ib": 10.0, "n": 0.14, "gamma": 0.05, "ka_ins": 0.018,
                               "vi": 8.4}


def _full_theta(given: tuple[str, ...], params: Array) -> Array:
    """The 12 entries of ``bergman_meal_rhs``'s theta: `params` where `given`, the default (a constant) elsewhere."""
    at = {name: k for k, name in enumerate(given)}
    return jnp.stack([params[at[name]] if name in at else jnp.asarray(_DEFAULTS[name], params.dtype)
                      for name in BERGMAN_MEAL_THETA])


@functools.cache
def _rhs_given(given: tuple[str, ...]) -> Rhs:
    """The right-hand side taking only the `given` parameters (the others are constants).

    Forward sensitivities cost one tangent per entry of theta: a spec that fixes the optional parameters at their
    defaults then solves 5-6 tangents instead of 12. Cached so each parameter set is one function object.
    """

    def rhs(t: Array | float, a: Array, theta: Array, rate: Array) -> Array:
        return bergman_meal_rhs(t, a, _full_theta(given, theta), rate)

    return rhs


@register("metabolic.bergman_meal")
@final
class BergmanMeal(AbstractStructuralModel):
    """Bergman minimal model of glucose and insulin with meals (g) and subcutaneous insulin (IU) as doses (ODE).

    See the module docstring for the sources, units and reference values, and
    ``bayestwin.dynamics.metabolic_rhs`` for the equations. Solved by the lean Dormand–Prince 5(4) loop with
    forward sensitivities (``rtol`` 1e-7, ``atol`` 1e-9, see ``rtol``/``atol`` below) in float64; a failed solve
    gives NaN.
    """

    compartments: ClassVar[tuple[str, ...]] = ("stomach", "gut", "insulin_depot", "glucose", "insulin_action",
                                               "insulin")
    default_dose_compartment: ClassVar[str] = "stomach"
    outputs: ClassVar[tuple[str, ...]] = ("glucose", "insulin")
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"glucose", "insulin"})
    parameters: ClassVar[Mapping[str, str]] = {"gb": "mg/dL", "sg": "1/min", "si": "L/mIU/min", "p2": "1/min",
                                               "kabs": "1/min"}
    optional_parameters: ClassVar[Mapping[str, tuple[str, float]]] = {
        name: (unit, _DEFAULTS[name]) for name, unit in (
            ("f", "dimensionless"), ("vg", "dL"), ("ib", "mIU/L"), ("n", "1/min"), ("gamma", "mIU*dL/L/min/mg"),
            ("ka_ins", "1/min"), ("vi", "L"))}
    reference_values: ClassVar[Mapping[str, float]] = {"gb": 110.0, "sg": 0.02, "si": 3e-4, "p2": 0.02,
                                                       "kabs": 0.025}
    units: ClassVar[Mapping[str, str]] = {"time": "min", "amt": "g", "glucose": "mg/dL", "insulin": "mIU/L"}
    kind: ClassVar[str] = "ode"
    description: ClassVar[str] = ("Bergman minimal model of glucose-insulin, two-compartment gut for meals, "
                                  "subcutaneous insulin depot, glucose-driven insulin secretion (ODE)")
    #: Relative and absolute tolerances of the step controller (``solve_amounts``' are absolute on each state). The
    #: states are deviations from basal: glucose 0-200 mg/dL, gut contents 0-100 g, insulin 0-100 mIU/L, and the
    #: insulin action X only 1e-4-1e-2 /min. ``rtol`` 1e-7 bounds the local error of glucose to ~1e-5 mg/dL, far
    #: below the 1 mg/dL resolution of a CGM; ``atol`` 1e-9 only matters near 0 and must sit below X's scale (an
    #: ``atol`` of 1e-6 would be a 1e-3-1e-2 relative tolerance on X). Measured against scipy's DOP853 at rtol
    #: 1e-12 over 10 h with two meals, an insulin dose and a reset (tests/models/test_metabolic.py): largest
    #: relative error 1.3e-7 (glucose) and 2.5e-7 (insulin); with rtol 1e-6, 5e-7 and 4.7e-6.
    rtol: ClassVar[float] = 1e-7
    atol: ClassVar[float] = 1e-9
    #: Solver steps allowed per interval between breakpoints (sample times 5 min apart need a few; the gap between
    #: two days' breakfasts, ~20 h, needs a few dozen as the state relaxes to basal).
    max_steps: ClassVar[int] = 512

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Glucose (mg/dL) and insulin (mIU/L) at `times` (min), shape ``(len(times), 2)``."""
        given = tuple(name for name in BERGMAN_MEAL_THETA if name in theta)
        params = jnp.stack([jnp.asarray(theta[name], dtype=jnp.result_type(float)) for name in given])
        amounts, status = solve_amounts(_rhs_given(given), params, doses, times, n_cmt=6, solver="dopri5",
                                        sensitivity="forward", rtol=self.rtol, atol=self.atol,
                                        max_steps=self.max_steps, ss_iterations=0)
        full = _full_theta(given, params)
        out = jnp.stack([full[0] + amounts[:, 3], full[7] + amounts[:, 5]], axis=1)
        # A failed solve (max_steps, an SS record) leaves a finite, wrong state: NaN instead, so NUTS rejects it.
        return jnp.where(status == SolveStatus.OK, out, jnp.nan)
