"""Phenobarbital in newborns: one compartment IV, CL and V proportional to weight, Apgar < 5 on V.

As in the published NONMEM model (Grasela & Donn 1985; Pharmpy ``pheno_real``): CL = theta1 * WT * exp(eta1),
V = theta2 * WT * (1 + theta3 if APGR < 5) * exp(eta2), proportional error. Reference estimates: theta1
0.00470 L/h/kg, theta2 0.984 L/kg, theta3 0.159, omega 0.171 / 0.167, proportional SD 0.115. Here the Apgar
effect is exp(beta) (beta = log(1 + theta3) = 0.148), which keeps V positive for any beta.
"""

from bayestwin.spec import CovariateEffect, ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The phenobarbital population spec (tv_cl in L/h per kg, tv_v in L per kg)."""
    per_kg = CovariateEffect("WT", form="power", reference=1.0, fixed=1.0, unit="kg")
    return TwinSpec(
        name="phenobarbital.one_cmt_iv",
        model="pk.one_cmt_iv",
        description=__doc__,
        parameters=(
            Parameter("cl", unit="L/h", typical=Prior.lognormal(median=0.005, sigma=1.0), bsv=Prior.half_normal(0.5),
                      covariates=(per_kg,)),
            Parameter("v", unit="L", typical=Prior.lognormal(median=1.0, sigma=1.0), bsv=Prior.half_normal(0.5),
                      covariates=(per_kg, CovariateEffect("APGR", form="indicator", reference=5.0,
                                                          prior=Prior("Normal", mu=0.0, sigma=0.5)))),
        ),
        error=(ErrorModel("proportional", priors=(("sigma_prop", Prior.half_normal(0.5)),)),),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L")),
    )
