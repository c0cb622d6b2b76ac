"""One coronary lesion seen by a pressure-and-flow wire at the onset of hyperaemia (``cardio.stenosis_ffr``).

The angiogram gives the lesion length and the reference diameter (fixed below), the guiding catheter the
aortic pressure; the wire records flow (Doppler, mL/s; proportional error ~10 %) and the trans-lesion
gradient (mmHg; additive error ~1 mmHg) at seconds after adenosine. Unknown: the functional minimal lumen
diameter ``mld`` (prior from quantitative coronary angiography, whose error is ~0.2-0.3 mm), the
microvascular resistance at rest and at hyperaemia, how fast hyperaemia sets in, and the resistance of
diffuse disease along the rest of the vessel (``r_diffuse``, which a stent leaves in place). The gradient's
linear term is ``(Fv + r_diffuse) Q``, so the lesion data alone barely separate ``r_diffuse`` from the lesion:
its prior must come from elsewhere, here the hyperaemic pressure pullback along the vessel (median given,
log-scale SD 0.3). Measured: with a vague prior (log-scale SD 1) the one-patient fit diverged (72 of 2,000
transitions, R-hat 1.07). No random effects:
this is a one-patient twin (see ``notebooks/07_stent_what_if.ipynb``). Pressure drop: Young & Tsai, J Biomech
6:547 (1973); Gould, Circ Res 43:242 (1978); FFR: Pijls et al., NEJM 334:1703 (1996).
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec(*, length: float = 15.0, dref: float = 3.0, pa: float = 92.0, qca_mld: float = 1.3,
         r_diffuse: float = 3.0) -> TwinSpec:
    """The lesion's spec: angiographic `length` and `dref` (mm), aortic pressure `pa` (mmHg), QCA `qca_mld` (mm),
    and the diffuse-disease resistance `r_diffuse` (mmHg s/mL) that the pressure pullback suggests."""
    ln, hn = Prior.lognormal, Prior.half_normal
    return TwinSpec(
        name="stenosis_lesion", model="cardio.stenosis_ffr", description=__doc__,
        parameters=(
            Parameter("mld", unit="mm", typical=ln(median=qca_mld, sigma=0.2)),
            Parameter("r_hyp", unit="mmHg*s/mL", typical=ln(median=25.0, sigma=0.5)),
            Parameter("r_rest", unit="mmHg*s/mL", typical=ln(median=80.0, sigma=0.5)),
            Parameter("tau", unit="s", typical=ln(median=8.0, sigma=0.5)),
            Parameter("r_diffuse", unit="mmHg*s/mL", typical=ln(median=r_diffuse, sigma=0.3)),
            Parameter("length", unit="mm", fixed=length),
            Parameter("dref", unit="mm", fixed=dref),
            Parameter("pa", unit="mmHg", fixed=pa),
        ),
        error=(ErrorModel("proportional", output="flow", priors=(("sigma_prop", hn(0.2)),)),
               ErrorModel("additive", output="dp", priors=(("sigma_add", hn(2.0)),))),
        units=(("time", "s"), ("amt", "mg"), ("flow", "mL/s"), ("dp", "mmHg")),
        centered=True,
    )
