"""Simulated one-compartment oral PK (nlmixr2data ``Oral_1CPT``, ACOP 2016): recovery of known truth.

Typical values used to simulate: CL 4.10 L/h, V 68.4 L, KA 1.00 /h. Weakly informative log-normal priors
(log-scale SD 1 for CL and KA; 0.5 for V, which keeps the flip-flop twin mode, V = 4 L, out of reach),
log-normal BSV on all three, proportional residual error. Data are in ug and ug/L; the spec works in mg
and mg/L (the adapter converts exactly).

Centred random effects: every subject has ~19 samples, so the data pin each subject's parameters down and
the centred form is the well-conditioned one (measured, SD == 1 rows, 4 x (500 + 500), diagonal mass matrix:
non-centred min ESS 142 on tv_cl, centred 172; centred with a dense mass matrix 1,385, R-hat 1.005).
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The Oral_1CPT recovery spec."""
    return TwinSpec(
        name="oral_1cpt.one_cmt_oral",
        model="pk.one_cmt_oral",
        description=__doc__,
        parameters=(
            Parameter("ka", unit="1/h", typical=Prior.lognormal(median=1.5, sigma=1.0), bsv=Prior.half_normal(1.0)),
            Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
            Parameter("v", unit="L", typical=Prior.lognormal(median=50.0, sigma=0.5), bsv=Prior.half_normal(0.5)),
        ),
        error=(ErrorModel("proportional", priors=(("sigma_prop", Prior.half_normal(0.5)),)),),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L")),
        centered=True,
    )
