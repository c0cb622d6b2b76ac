"""Tumour size (sum of longest diameters, mm) under treatment: Claret TGI and Stein growth-decay specs.

``spec()``: ``oncology.claret_tgi`` (Claret et al. 2009, J Clin Oncol 27:4103), ``dy/dt = kl y - kd
exp(-lam t) y`` on treatment from week 0, ``y(0) = y0``. ``stein_spec()``: ``oncology.stein`` (Stein et
al. 2008/2011), ``y = y0 (exp(-d t) + exp(g t) - 1)``. Time in weeks since the start of treatment.

Priors are weakly informative and set from the scale of RECIST measurements, not from any data set:
baseline size log-normal around 50 mm (log-scale SD 0.7: 95 % range 13-200 mm), rates log-normal with a
log-scale SD of 1 (a factor e either way) around a doubling time of about 35 weeks (kl, g ~ 0.02/week),
an initial shrinkage of 20 %/week (kd) and an effect half-life of about 7 weeks (lam ~ 0.1/week), decay
d ~ 0.1/week; between-patient SDs HalfNormal(0.5) on the log scale; proportional residual error
HalfNormal(0.2) (RECIST diameters carry roughly 10-20 % measurement variability). Non-centred random
effects (as the PK specs; few scans per patient).

A patient's relative dose intensity ``RDI`` (1 = full dose) can scale the shrinkage:
``with_dose_intensity(spec())`` adds ``CovariateEffect("RDI", form="power", reference=1.0, fixed=1.0)`` to
``kd`` (the exposure ``E`` of Claret's model).
"""

import dataclasses

from bayestwin.spec import CovariateEffect, ErrorModel, Parameter, Prior, TwinSpec

_UNITS = (("time", "week"), ("amt", "mg"), ("size", "mm"))
_ERROR = (ErrorModel("proportional", output="size", priors=(("sigma_prop", Prior.half_normal(0.2)),)),)


def _rate(name: str, median: float) -> Parameter:
    return Parameter(name, unit="1/week", typical=Prior.lognormal(median=median, sigma=1.0),
                     bsv=Prior.half_normal(0.5))


def _y0() -> Parameter:
    return Parameter("y0", unit="mm", typical=Prior.lognormal(median=50.0, sigma=0.7), bsv=Prior.half_normal(0.5))


def spec() -> TwinSpec:
    """Claret tumour growth inhibition (``oncology.claret_tgi``)."""
    return TwinSpec(name="tumour.claret_tgi", model="oncology.claret_tgi", description=__doc__,
                    parameters=(_y0(), _rate("kl", 0.02), _rate("kd", 0.2), _rate("lam", 0.1)),
                    error=_ERROR, units=_UNITS)


def stein_spec() -> TwinSpec:
    """Stein biexponential growth-decay (``oncology.stein``)."""
    return TwinSpec(name="tumour.stein", model="oncology.stein", description=__doc__,
                    parameters=(_y0(), _rate("d", 0.1), _rate("g", 0.02)), error=_ERROR, units=_UNITS)


def with_dose_intensity(base: TwinSpec, column: str = "RDI") -> TwinSpec:
    """`base` with ``kd`` proportional to the relative dose intensity in `column` (1 = full dose)."""
    effect = CovariateEffect(column, form="power", reference=1.0, fixed=1.0)
    params = tuple(dataclasses.replace(p, covariates=(*p.covariates, effect)) if p.name == "kd" else p
                   for p in base.parameters)
    return dataclasses.replace(base, parameters=params)
