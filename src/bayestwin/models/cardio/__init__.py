"""Cardiovascular models: blood pressure under a vasodilator, and a coronary stenosis with its FFR.

* ``cardio.windkessel_emax`` (``bayestwin.models.cardio.windkessel``): two-element Windkessel pressures
  with an antihypertensive drug lowering peripheral resistance (Frank 1899; Westerhof et al. 2009).
* ``cardio.stenosis_ffr`` (``bayestwin.models.cardio.stenosis``): pressure drop ``Fv Q + Fs Q^2`` over a
  lesion (Young & Tsai 1973; Gould 1978), flow and fractional flow reserve, and the post-stent FFR what-if.
"""

from bayestwin.models.cardio.stenosis import (
    BLOOD_DENSITY,
    BLOOD_VISCOSITY,
    EXPANSION_LOSS,
    StenosisFFR,
    coronary_flow,
    ffr,
    post_stent_ffr,
    stenosis_coefficients,
)
from bayestwin.models.cardio.windkessel import WindkesselEmax, windkessel_pressures

__all__ = ["BLOOD_DENSITY", "BLOOD_VISCOSITY", "EXPANSION_LOSS", "StenosisFFR", "WindkesselEmax", "coronary_flow",
           "ffr", "post_stent_ffr", "stenosis_coefficients", "windkessel_pressures"]
