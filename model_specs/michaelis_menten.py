"""One compartment, first-order absorption, Michaelis-Menten elimination (ODE): posteriordb ``one_comp_mm_elim_abs``.

Written to match the Stan model exactly: priors Cauchy(0, 1) truncated to > 0 (half-Cauchy) on k_a, K_m, V_m and
sigma; log-normal error; V = 2 L fixed; one subject (no between-subject variability); time in days.
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The posteriordb Michaelis-Menten spec."""
    half_cauchy = Prior("HalfCauchy", sigma=1.0)
    return TwinSpec(
        name="posteriordb.one_comp_mm_elim_abs",
        model="pk.one_cmt_oral_mm",
        description=__doc__,
        parameters=(
            Parameter("ka", unit="1/day", typical=half_cauchy),
            Parameter("km", unit="mg/L", typical=half_cauchy),
            Parameter("vm", unit="mg/day", typical=half_cauchy),
            Parameter("v", unit="L", fixed=2.0),
        ),
        error=(ErrorModel("lognormal", priors=(("sigma_log", half_cauchy),)),),
        units=(("time", "day"), ("amt", "mg"), ("conc", "mg/L")),
    )
