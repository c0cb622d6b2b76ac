"""One coronary lesion seen by a pressure-and-flow wire at the onset of hyperaemia (``cardio.stenosis_ffr``).

The angiogram gives the lesion length and the reference diameter (fixed below), the guiding catheter the
aortic pressure; the wire records flow (Doppler, mL/s; proportional error ~10 %) and the trans-lesion
gradient (mmHg; additive error ~1 mmHg) at seconds after adenosine. Unknown: the functional minimal lumen
diameter ``mld`` (prior from quantitative coronary angiography, whose error is ~0.2-0.3 mm), the
microvascular resistance at rest and at hyperaemia, and how fast hyperaemia sets in. No random effects:
this is a one-patient twin (see ``notebooks/07_stent_what_if.ipynb``). Pressure drop: Young & Tsai, J Biomech
6:547 (1973); Gould, Circ Res 43:242 (1978); FFR: Pijls et al., NEJM 334:1703 (1996).
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec(*, length: float = 15.0, dref: float = 3.0, pa: float = 92.0, qca_mld: float = 1.3) -> TwinSpec:
    """The lesion's spec: angiographic `length` and `dref` (mm), aortic pressure `pa` (mmHg), QCA `qca_mld` (mm)."""
    ln, hn = Prior.lognormal, Prior.half_normal
    return TwinSpec(
        name="stenosis_lesion", model="cardio.stenosis_ffr", description=__doc__,
        parameters=(
            Parameter("mld", unit="mm", typical=ln(median=qca_mld, sigma=0.2)),
            Parameter("r_hyp", unit="mmHg*s/mL", typical=ln(median=25.0, sigma=0.5)),
            Parameter("r_rest", unit="mmHg*s/mL", typical=ln(median=80.0, sigma=0.5)),
            Parameter("tau", unit="s", typical=ln(median=8.0, sigma=0.5)),
            Parameter("length", unit="mm", fixed=length),
            Parameter("dref", unit="mm", fixed=dref),
            Parameter("pa", unit="mmHg", fixed=pa),
        ),
        error=(ErrorModel("proportional", output="flow", priors=(("sigma_prop", hn(0.2)),)),
               ErrorModel("additive", output="dp", priors=(("sigma_add", hn(2.0)),))),
        units=(("time", "s"), ("amt", "mg"), ("flow", "mL/s"), ("dp", "mmHg")),
        centered=True,
    )
