"""Theophylline: one compartment, first-order absorption, log-normal BSV on ka, CL and V, additive error.

The model of the nlmixr2 reference fit (README of nlmixr2; data ``theo_sd``, dose in mg): ka 1.57 /h,
CL 2.76 L/h, V 31.5 L, BSV SDs 0.64 / 0.27 / 0.13, additive SD 0.69 mg/L. Priors are weakly informative:
log-normal with a log-scale SD of 1 around textbook values (a factor of e either way).
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The theophylline population spec."""
    return TwinSpec(
        name="theophylline.one_cmt_oral",
        model="pk.one_cmt_oral",
        description=__doc__,
        parameters=(
            Parameter("ka", unit="1/h", typical=Prior.lognormal(median=1.5, sigma=1.0), bsv=Prior.half_normal(1.0)),
            Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
            Parameter("v", unit="L", typical=Prior.lognormal(median=30.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
        ),
        error=(ErrorModel("additive", priors=(("sigma_add", Prior.half_normal(1.0)),)),),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L")),
    )
