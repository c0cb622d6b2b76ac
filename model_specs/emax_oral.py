"""Oral drug with a direct Emax effect (``pd.one_cmt_oral_emax``): concentrations and effect both observed.

Illustrative priors (not fitted to a data set): typical values of a drug given as 100 mg tablets, peaking
near 4 mg/L, whose effect rises from a baseline of ~10 % by up to ~20 percentage points with an EC50
near 2 mg/L.
Concentrations (DVID 1) carry proportional error, the effect (DVID 2) additive error in its own unit.
Centred random effects: each patient has a full profile of both outputs (data-rich, as in
``model_specs/two_cmt_iv.py``). Emax models: Holford & Sheiner, Clin Pharmacokinet 6:429 (1981).
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The oral Emax PK/PD spec."""
    ln, hn = Prior.lognormal, Prior.half_normal
    return TwinSpec(
        name="emax_oral", model="pd.one_cmt_oral_emax", description=__doc__,
        parameters=(
            Parameter("ka", unit="1/h", typical=ln(median=1.0, sigma=0.5), bsv=hn(0.5)),
            Parameter("cl", unit="L/h", typical=ln(median=2.0, sigma=0.5), bsv=hn(0.5)),
            Parameter("v", unit="L", typical=ln(median=20.0, sigma=0.5), bsv=hn(0.5)),
            Parameter("e0", unit="%", typical=ln(median=10.0, sigma=0.3), bsv=hn(0.3)),
            Parameter("emax", unit="%", typical=ln(median=20.0, sigma=0.5), bsv=hn(0.3)),
            Parameter("ec50", unit="mg/L", typical=ln(median=2.0, sigma=0.7), bsv=hn(0.5)),
        ),
        error=(ErrorModel("proportional", output="conc", priors=(("sigma_prop", hn(0.3)),)),
               ErrorModel("additive", output="effect", priors=(("sigma_add", hn(2.0)),))),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L"), ("effect", "%")),
        centered=True,
    )
