"""eGFR decline in chronic kidney disease (mL/min per 1.73 m², years): linear and exponential specs.

``spec()``: ``renal.egfr_linear``, ``egfr = egfr_ref + slope (t - time_ref)`` with a treatment indicator
``TRT`` (0/1) adding ``beta`` mL/min/year to the slope (``CovariateEffect("TRT", form="linear")``).
``exponential_spec()``: ``renal.egfr_exponential``, ``egfr = egfr_ref exp(-k (t - time_ref))`` with the
treatment multiplying ``k`` by ``exp(beta)`` (``form="exponential"``). Time in years since the first
visit, centred at ``time_ref`` (fixed, default 2 years: the middle of a 4-year follow-up).

Priors are weakly informative, from the scale of CKD cohorts, not from any data set: eGFR at 2 years
Normal(45, 20) mL/min, between-patient SD HalfNormal(15); slope Normal(-2, 3) mL/min/year (CKD patients
lose about 1-5 per year), between-patient SD HalfNormal(2); treatment effect on the slope Normal(0, 2);
exponential rate log-normal around 5 %/year (log-scale SD 1), BSV HalfNormal(0.5), treatment effect
Normal(0, 0.5) on the log rate; residual SD HalfNormal(5) mL/min (additive, linear) or HalfNormal(0.15)
(proportional, exponential). There is no bundled real eGFR data set: the notebook and tests simulate.

Sampling: the linear spec is centred (patients with a visit every 3 months are data-rich). Start the chains
from prior draws (``SamplerConfig(init="prior")``): a start climbed to the joint mode of a centred model can
sit at the funnel's neck (omega_slope -> 0); on the notebook's simulated cohort one of two such chains
stayed there (R-hat 2.3), prior starts mixed on two seeds (R-hat <= 1.016).
"""

from bayestwin.spec import CovariateEffect, ErrorModel, Parameter, Prior, TwinSpec

TIME_REF = 2.0  #: years; centring time of the level and the rate
_UNITS = (("time", "year"), ("amt", "mg"), ("egfr", "mL/min"))


def spec(time_ref: float = TIME_REF) -> TwinSpec:
    """Linear eGFR decline with a treatment effect on the slope (identity scale, centred)."""
    return TwinSpec(
        name="ckd.egfr_linear", model="renal.egfr_linear", description=__doc__,
        parameters=(
            Parameter("egfr_ref", unit="mL/min", typical=Prior("Normal", mu=45.0, sigma=20.0),
                      bsv=Prior.half_normal(15.0), scale="identity"),
            Parameter("slope", unit="mL/min/year", typical=Prior("Normal", mu=-2.0, sigma=3.0),
                      bsv=Prior.half_normal(2.0), scale="identity",
                      covariates=(CovariateEffect("TRT", form="linear", reference=0.0,
                                                  prior=Prior("Normal", mu=0.0, sigma=2.0)),)),
            Parameter("time_ref", unit="year", fixed=time_ref, scale="identity"),
        ),
        error=(ErrorModel("additive", output="egfr", priors=(("sigma_add", Prior.half_normal(5.0)),)),),
        centered=True, units=_UNITS,
    )


def exponential_spec(time_ref: float = TIME_REF) -> TwinSpec:
    """Exponential eGFR decline with a multiplicative treatment effect on the rate (log scale)."""
    return TwinSpec(
        name="ckd.egfr_exponential", model="renal.egfr_exponential", description=__doc__,
        parameters=(
            Parameter("egfr_ref", unit="mL/min", typical=Prior.lognormal(median=45.0, sigma=0.5),
                      bsv=Prior.half_normal(0.5)),
            Parameter("k", unit="1/year", typical=Prior.lognormal(median=0.05, sigma=1.0), bsv=Prior.half_normal(0.5),
                      covariates=(CovariateEffect("TRT", form="exponential", reference=0.0,
                                                  prior=Prior("Normal", mu=0.0, sigma=0.5)),)),
            Parameter("time_ref", unit="year", fixed=time_ref, scale="identity"),
        ),
        error=(ErrorModel("proportional", output="egfr", priors=(("sigma_prop", Prior.half_normal(0.15)),)),),
        units=_UNITS,
    )
