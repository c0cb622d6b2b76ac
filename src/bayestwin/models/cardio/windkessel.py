"""Arterial blood pressure from a two-element Windkessel, lowered by a vasodilator (``cardio.windkessel_emax``).

The two-element Windkessel (Frank 1899; review: Westerhof, Lankhaar & Westerhof, Med Biol Eng Comput
47:131, 2009) lumps the arterial tree into a compliance ``Ca`` (mL/mmHg) that the heart fills and a
peripheral resistance ``R`` (mmHg s/mL) through which it empties: ``Ca dP/dt = Q(t) - P / R``. With the
heart ejecting the stroke volume ``SV`` at a constant rate over the ejection time ``ts`` of each beat (period
``T = 60 / HR`` s), the periodic steady state is in closed form, with ``tau = R Ca``:

* systolic pressure (end of ejection) ``SBP = (SV / ts) R (1 - exp(-ts/tau)) / (1 - exp(-T/tau))``,
* diastolic pressure (end of diastole) ``DBP = SBP exp(-(T - ts)/tau)``,
* mean arterial pressure ``MAP = SV (HR / 60) R`` (cardiac output times resistance, exactly).

Over the hours and days of a drug effect, ``tau`` (~1 s) is instantaneous: each observation time sees the
beat-to-beat steady state with the resistance at that time. The drug, with the plasma concentration ``C`` of
a one-compartment oral PK model (``pk.one_cmt_oral``), relaxes resistance vessels: it raises peripheral
conductance by an Emax function, ``R(t) = R0 / (1 + Emax C / (EC50 + C))``, so ``R`` stays positive and falls
by at most ``Emax / (1 + Emax)``. Heart rate, stroke volume and ejection time are fixed (optional parameters,
typical adult defaults): with only pressures observed, ``SV`` and ``R`` are not identified separately (MAP
fixes their product). What a clinician sees: office or ambulatory SBP/DBP/MAP over the dosing interval, the
drug concentration if measured. Not modelled: baroreflex (heart rate and output compensating), wave
reflection (the three-element model's characteristic impedance, which raises SBP), tolerance.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.dynamics.events import Doses
>>> m = WindkesselEmax()
>>> none = Doses.single(time=0.0, amt=0.0)                      # no drug: baseline pressures
>>> theta = {"ka": 1.0, "cl": 2.0, "v": 20.0, "r0": 1.3, "compliance": 1.1, "emax": 0.4, "ec50": 2.0}
>>> [round(x) for x in m.predict(theta, none, jnp.array([1.0]))[0].tolist()]   # conc, SBP, DBP, MAP
[0, 127, 86, 106]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, final

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from bayestwin.dynamics.closed_form import one_cmt_oral
from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.pd_rhs import drug_effect
from bayestwin.models.registry import register
from bayestwin.spec.structural import AbstractStructuralModel

__all__ = ["WindkesselEmax", "windkessel_pressures"]


def windkessel_pressures(
    r: ArrayLike, compliance: ArrayLike, sv: ArrayLike, hr: ArrayLike, t_ejection: ArrayLike
) -> tuple[Array, Array, Array]:
    """Systolic, diastolic and mean pressure (mmHg) of the periodic two-element Windkessel.

    Parameters
    ----------
    r : array
        Peripheral resistance (mmHg s/mL).
    compliance : array
        Arterial compliance (mL/mmHg).
    sv : array
        Stroke volume (mL), ejected at a constant rate over `t_ejection`.
    hr : array
        Heart rate (beats/min); the period ``60 / hr`` must exceed `t_ejection`.
    t_ejection : array
        Ejection time (s).

    Returns
    -------
    sbp, dbp, map : arrays
        Pressure at the end of ejection (the maximum), at the end of diastole (the minimum), and the mean.

    Examples
    --------
    >>> [round(float(x), 1) for x in windkessel_pressures(1.0, 1.5, 70.0, 70.0, 0.3)]
    [97.2, 67.0, 81.7]
    """
    period = 60.0 / hr
    tau = r * compliance
    sbp = sv / t_ejection * r * jnp.expm1(-t_ejection / tau) / jnp.expm1(-period / tau)
    dbp = sbp * jnp.exp(-(period - t_ejection) / tau)
    return sbp, dbp, sv * hr / 60.0 * r


@register("cardio.windkessel_emax")
@final
class WindkesselEmax(AbstractStructuralModel):
    """Two-element Windkessel blood pressure with a vasodilator lowering peripheral resistance by Emax.

    Outputs ``conc`` (mg/L), ``sbp``, ``dbp``, ``map`` (mmHg); see the module docstring for the equations
    and Westerhof et al. (2009) for the Windkessel. Parameters: PK (``ka`` 1/h, ``cl`` L/h, ``v`` L, optional
    ``f``, ``tlag``), baseline resistance ``r0`` (mmHg s/mL), arterial compliance ``compliance`` (mL/mmHg), the
    drug's maximal fractional rise of conductance ``emax`` and ``ec50`` (mg/L); optional, usually fixed:
    stroke volume ``sv`` (70 mL), heart rate ``hr`` (70 /min), ejection time ``t_ejection`` (0.3 s).
    Reference values: a hypertensive adult at 127/86 mmHg (MAP 106) untreated.
    """

    compartments: ClassVar[tuple[str, ...]] = ("depot", "central")
    default_dose_compartment: ClassVar[str] = "depot"
    outputs: ClassVar[tuple[str, ...]] = ("conc", "sbp", "dbp", "map")
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"conc", "sbp", "dbp", "map"})
    parameters: ClassVar[Mapping[str, str]] = {
        "ka": "1/h", "cl": "L/h", "v": "L", "r0": "mmHg*s/mL", "compliance": "mL/mmHg", "emax": "dimensionless",
        "ec50": "mg/L"}
    optional_parameters: ClassVar[Mapping[str, tuple[str, float]]] = {
        "f": ("dimensionless", 1.0), "tlag": ("h", 0.0), "sv": ("mL", 70.0), "hr": ("1/min", 70.0),
        "t_ejection": ("s", 0.3)}
    reference_values: ClassVar[Mapping[str, float]] = {
        "ka": 1.0, "cl": 2.0, "v": 20.0, "r0": 1.3, "compliance": 1.1, "emax": 0.4, "ec50": 2.0}
    units: ClassVar[Mapping[str, str]] = {"time": "h", "amt": "mg", "conc": "mg/L", "sbp": "mmHg", "dbp": "mmHg",
                                          "map": "mmHg"}
    description: ClassVar[str] = ("two-element Windkessel arterial pressure, vasodilator Emax on resistance "
                                  "(1-cmt oral PK)")

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Concentration, SBP, DBP and MAP at `times`, shape ``(len(times), 4)``."""
        conc = one_cmt_oral(times, doses, theta["ka"], theta["cl"], theta["v"], f=theta.get("f", 1.0),
                            tlag=theta.get("tlag", 0.0), features=features)
        r = theta["r0"] / (1.0 + drug_effect(conc, theta["emax"], theta["ec50"]))
        sbp, dbp, mean = windkessel_pressures(r, theta["compliance"], theta.get("sv", 70.0), theta.get("hr", 70.0),
                                              theta.get("t_ejection", 0.3))
        return jnp.stack([conc, sbp, dbp, mean], axis=1)
