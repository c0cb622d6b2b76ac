"""Primary biliary cirrhosis: log serum bilirubin over years, random intercept and slope, treatment arm.

Data: ``load_dataset("pbcseq")`` (Mayo Clinic trial of D-penicillamine vs placebo, real; 312 patients,
1,945 visits). DV = ln(bilirubin in mg/dL): bilirubin is right-skewed (0.3-41 mg/dL) and rises roughly
exponentially as the disease progresses, so its log is close to linear in time with a roughly constant
residual SD. Model ``longitudinal.linear`` on identity-scale parameters, the linear mixed model

    ln bili_ij = (a + b_a trt_i + eta_a,i) + (s + b_s trt_i + eta_s,i) * (t_ij - time_ref) + e_ij

with t in years since registration, ``time_ref`` fixed at 3 years (about the mean visit time, 3.1 years:
centring keeps the random intercepts and slopes nearly uncorrelated, see ``longitudinal.Linear``), the
treatment arm ``trt`` (1 D-penicillamine, 0 placebo) acting on the slope (``b_s``, per year) and on the
level at 3 years (``b_a``: with a slope effect only, randomisation would force the arms apart by
``b_s x 3`` at 3 years), correlated random effects (LKJ(2)), additive residual error on the log scale.
Centred random effects (every patient has 1-16 visits; the rats and eight-schools specs do the same).

Priors are weakly informative, on the log scale: typical level Normal(0.5, 1) (bilirubin 1.6 mg/dL,
normal range up to about 1.2), slope Normal(0, 0.5) per year (a factor e^0.5 per year either way is
fast), treatment effects Normal(0, 0.5) (level) and Normal(0, 0.25) per year (slope), between-patient
SDs HalfNormal(1) and HalfNormal(0.5), residual SD HalfNormal(0.5).
"""

from bayestwin.spec import CovariateEffect, ErrorModel, Parameter, Prior, TwinSpec

TIME_REF = 3.0  #: years since registration; the centring time of intercept and slope


def spec(time_ref: float = TIME_REF) -> TwinSpec:
    """The log-bilirubin spec (``longitudinal.linear``, years, treatment arm on level and slope)."""
    return TwinSpec(
        name="pbcseq.log_bilirubin",
        model="longitudinal.linear",
        description=__doc__,
        parameters=(
            Parameter("intercept", unit="dimensionless", typical=Prior("Normal", mu=0.5, sigma=1.0),
                      bsv=Prior.half_normal(1.0), scale="identity",
                      covariates=(CovariateEffect("trt", form="linear", reference=0.0,
                                                  prior=Prior("Normal", mu=0.0, sigma=0.5)),)),
            Parameter("slope", unit="1/year", typical=Prior("Normal", mu=0.0, sigma=0.5),
                      bsv=Prior.half_normal(0.5), scale="identity",
                      covariates=(CovariateEffect("trt", form="linear", reference=0.0,
                                                  prior=Prior("Normal", mu=0.0, sigma=0.25)),)),
            Parameter("time_ref", unit="year", fixed=time_ref, scale="identity"),
        ),
        error=(ErrorModel("additive", output="value", priors=(("sigma_add", Prior.half_normal(0.5)),)),),
        correlation=Prior("LKJ", eta=2.0),
        centered=True,
        units=(("time", "year"), ("amt", "mg"), ("value", "dimensionless")),
    )
