"""Effect-compartment (ke0) model observed through the effect only (``pd.one_cmt_iv_ke0_emax``).

The classic use: an anaesthetic whose depth-of-anaesthesia index falls from ~95 (awake) with a delay
behind the plasma concentration (Sheiner et al., Clin Pharmacol Ther 25:358, 1979). Only the effect is
measured (no blood samples), so the PK priors carry the information a population PK model would give;
``emax`` is on the identity scale because the effect *falls* (a negative Emax). Illustrative priors,
not fitted to a data set; time in minutes, doses in mg, concentrations in mg/L.
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The effect-site spec (effect observed only)."""
    ln, hn = Prior.lognormal, Prior.half_normal
    return TwinSpec(
        name="emax_effect_site", model="pd.one_cmt_iv_ke0_emax", description=__doc__,
        parameters=(
            Parameter("cl", unit="L/min", typical=ln(median=1.6, sigma=0.2), bsv=hn(0.3)),
            Parameter("v", unit="L", typical=ln(median=20.0, sigma=0.2), bsv=hn(0.3)),
            Parameter("ke0", unit="1/min", typical=ln(median=0.45, sigma=0.5), bsv=hn(0.5)),
            Parameter("e0", unit="dimensionless", typical=ln(median=95.0, sigma=0.05)),
            Parameter("emax", unit="dimensionless", typical=Prior("Normal", mu=-70.0, sigma=10.0),
                      scale="identity"),
            Parameter("ec50", unit="mg/L", typical=ln(median=3.0, sigma=0.5), bsv=hn(0.3)),
        ),
        error=(ErrorModel("additive", output="effect", priors=(("sigma_add", hn(5.0)),)),),
        units=(("time", "min"), ("amt", "mg"), ("conc", "mg/L"), ("effect", "dimensionless")),
        centered=True,
    )
