"""Theophylline: one compartment, first-order absorption, log-normal BSV on ka, CL and V, additive error.

The model of the nlmixr2 reference fit (README of nlmixr2; data ``theo_sd``, dose in mg): ka 1.57 /h,
CL 2.76 L/h, V 31.5 L, BSV SDs 0.64 / 0.27 / 0.13, additive SD 0.69 mg/L.

Priors are weakly informative and physiological, set from textbook pharmacology, not from these data:
ka and CL log-normal with a log-scale SD of 1 (a factor of e either way); V log-normal around 35 L (about
0.5 L/kg, distribution in body water, for a 70 kg adult) with a log-scale SD of 0.5 (95% prior range
13-93 L). The one-compartment oral model has a flip-flop twin mode (ka and ke swapped, V = 1.8 L, less
than the plasma volume): a V prior with SD 1 left it about 8 nats below the main mode, and a chain
started near the prior medians could still end in it (R-hat 1.53 with seed 1); this prior rules it out
on physiological grounds.
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
            Parameter("v", unit="L", typical=Prior.lognormal(median=35.0, sigma=0.5), bsv=Prior.half_normal(0.5)),
        ),
        error=(ErrorModel("additive", priors=(("sigma_add", Prior.half_normal(1.0)),)),),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L")),
    )
