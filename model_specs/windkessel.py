"""Blood pressure under a once-daily vasodilator (``cardio.windkessel_emax``): SBP and DBP observed.

A two-element Windkessel (Westerhof et al., Med Biol Eng Comput 47:131, 2009) whose peripheral
resistance the drug lowers by an Emax function of its plasma concentration (see
``bayestwin.models.cardio.windkessel``). Observed: systolic and diastolic pressure (ambulatory cuff,
additive error ~5 mmHg); the drug concentration is not measured, so the PK priors carry the information
of the drug's label. Stroke volume, heart rate and ejection time keep their fixed defaults (70 mL,
70/min, 0.3 s). Illustrative priors for an untreated hypertensive adult (~130/85 mmHg), not fitted to data.
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The Windkessel + vasodilator spec."""
    ln, hn = Prior.lognormal, Prior.half_normal
    return TwinSpec(
        name="windkessel_vasodilator", model="cardio.windkessel_emax", description=__doc__,
        parameters=(
            Parameter("ka", unit="1/h", typical=ln(median=1.0, sigma=0.3)),
            Parameter("cl", unit="L/h", typical=ln(median=2.0, sigma=0.3), bsv=hn(0.3)),
            Parameter("v", unit="L", typical=ln(median=20.0, sigma=0.3)),
            Parameter("r0", unit="mmHg*s/mL", typical=ln(median=1.3, sigma=0.2), bsv=hn(0.2)),
            Parameter("compliance", unit="mL/mmHg", typical=ln(median=1.1, sigma=0.3), bsv=hn(0.3)),
            Parameter("emax", unit="dimensionless", typical=ln(median=0.4, sigma=0.5), bsv=hn(0.3)),
            Parameter("ec50", unit="mg/L", typical=ln(median=2.0, sigma=0.5), bsv=hn(0.3)),
        ),
        error=(ErrorModel("additive", output="sbp", priors=(("sigma_add", hn(8.0)),)),
               ErrorModel("additive", output="dbp", priors=(("sigma_add", hn(6.0)),))),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L"), ("sbp", "mmHg"), ("dbp", "mmHg"), ("map", "mmHg")),
        centered=True,
    )
