"""Spec-language features for mixed models: identity-scale parameters, flat priors, the known-SD error model.

Exact, like the rest of tests/spec: round trips compare with ``==`` and every ``SpecError`` path is
exercised with its message.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from bayestwin.exceptions import SpecError
from bayestwin.spec import (
    CovariateEffect,
    ErrorModel,
    Parameter,
    Prior,
    TwinSpec,
    add_covariate_effect,
    example_spec,
)

NORMAL = Prior("Normal", mu=0.0, sigma=5.0)


def _identity(**changes: Any) -> Parameter:
    kwargs: dict[str, Any] = {"unit": "g", "typical": NORMAL, "bsv": Prior("HalfCauchy", sigma=5.0),
                              "scale": "identity"}
    return Parameter("level", **(kwargs | changes))


def _spec(*parameters: Parameter, error: ErrorModel | None = None) -> TwinSpec:
    return TwinSpec(name="mixed", model="longitudinal.linear", parameters=parameters,
                    error=(error or ErrorModel("additive", output="value"),),
                    units=(("time", "day"), ("amt", "mg"), ("value", "g")))


# --- Parameter(scale=...) ----------------------------------------------------------------------------
def test_log_is_the_default_and_is_not_written() -> None:
    p = Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0))
    assert p.scale == "log"
    assert "scale" not in p.to_dict()  # specs written before scales existed keep their digest
    assert Parameter.from_dict(p.to_dict()) == p


def test_identity_round_trips_through_dict_json_and_spec() -> None:
    p = _identity(covariates=(CovariateEffect("x", form="linear", reference=2.0, prior=NORMAL),))
    assert p.to_dict()["scale"] == "identity"
    assert Parameter.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    spec = _spec(Parameter("intercept", unit="g", typical=NORMAL, scale="identity"),
                 Parameter("slope", unit="g/day", typical=Prior("Flat"), bsv=Prior("HalfFlat"), scale="identity"),
                 Parameter("time_ref", unit="day", fixed=22.0, scale="identity"))
    again = TwinSpec.from_dict(json.loads(spec.to_json()))
    assert again == spec and again.digest() == spec.digest()
    assert again.parameter("slope").scale == "identity"
    assert spec.digest() != _spec(*[Parameter.from_dict(p.to_dict() | {"scale": "log"}) if p.name == "time_ref"
                                    else p for p in spec.parameters]).digest()


@pytest.mark.parametrize("typical", [NORMAL, Prior("Cauchy", mu=1.0, sigma=2.0), Prior("StudentT", nu=3.0, mu=0.0,
                                     sigma=1.0), Prior("Flat"), Prior("HalfNormal", sigma=1.0)])
def test_identity_typical_value_may_have_real_support(typical: Prior) -> None:
    assert _identity(typical=typical).typical == typical


@pytest.mark.parametrize("value", [-3.5, 0.0, 22.0])
def test_identity_fixed_value_may_be_any_finite_number(value: float) -> None:
    assert _identity(typical=None, fixed=value, bsv=None).fixed == value


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": "logit"}, r"parameter 'level': scale 'logit' is not one of \('log', 'identity'\)"),
        ({"typical": Prior("LKJ", eta=2.0)}, r"parameter 'level': an LKJ prior is for correlation matrices"),
        ({"typical": None, "fixed": math.inf}, r"parameter 'level': fixed value must be a finite number, got inf"),
        ({"typical": None, "fixed": math.nan}, r"parameter 'level': fixed value must be a finite number, got nan"),
        ({"covariates": (CovariateEffect("WT", form="power", reference=70.0, fixed=0.75),)},
         r"parameter 'level' is on the identity scale, where covariate effects add: the effect of 'WT' must have "
         r"form='linear' \(beta \* \(cov - ref\)\), not 'power'; use scale='log'"),
        ({"covariates": (CovariateEffect("SEX", form="indicator", reference=0.5, fixed=0.1),)}, r"not 'indicator'"),
        ({"covariates": (CovariateEffect("AGE", form="exponential", fixed=0.1),)}, r"not 'exponential'"),
        ({"bsv": Prior("Flat")},
         r"parameter 'level': the BSV prior is a prior on an SD and must be positive, got Flat"),
    ],
)
def test_identity_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        _identity(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"typical": NORMAL}, r"the typical-value prior must be positive \(LogNormal, HalfNormal, ...\), got Normal; "
                              r"for a parameter that can be negative use scale='identity'"),
        ({"typical": Prior("Flat")}, r"must be positive .* got Flat"),
        ({"typical": None, "fixed": -1.0}, r"fixed value must be > 0, got -1.0 \(a log-scale parameter\); use "
                                           r"scale='identity'"),
    ],
)
def test_log_scale_errors_point_to_the_identity_scale(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        Parameter("cl", unit="L/h", **kwargs)


def test_add_covariate_effect_defaults_to_the_additive_form_on_the_identity_scale() -> None:
    spec = _spec(Parameter("intercept", unit="g", typical=NORMAL, scale="identity"),
                 Parameter("slope", unit="g/day", typical=NORMAL, scale="identity"))
    effect = add_covariate_effect(spec, "intercept", "SEX", reference=0.0).parameter("intercept").covariates[0]
    assert (effect.form, effect.reference) == ("linear", 0.0)
    on_log = add_covariate_effect(example_spec(), "cl", "WT", reference=70.0)
    assert on_log.parameter("cl").covariates[0].form == "power"
    with pytest.raises(SpecError, match=r"the effect of 'WT' must have form='linear'"):
        add_covariate_effect(spec, "slope", "WT", form="power", reference=70.0)


# --- flat priors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("family", "support"), [("Flat", "real"), ("HalfFlat", "positive")])
def test_flat_priors(family: str, support: str) -> None:
    p = Prior(family)
    assert (p.support, p.proper, p.params) == (support, False, ())
    assert Prior.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert Prior("HalfNormal", sigma=1.0).proper


def test_flat_priors_take_no_parameters() -> None:
    with pytest.raises(SpecError, match=r"HalfFlat prior takes parameters \[\]; missing \[\], unexpected \['sigma'\]"):
        Prior("HalfFlat", sigma=1.0)


def test_half_flat_is_accepted_for_sds_and_flat_is_not() -> None:
    em = ErrorModel("additive", priors=(("sigma_add", Prior("HalfFlat")),))
    assert em.prior("sigma_add") == Prior("HalfFlat")
    with pytest.raises(SpecError, match=r"prior of sigma_add must be positive \(an SD\), got Flat"):
        ErrorModel("additive", priors=(("sigma_add", Prior("Flat")),))
    assert Parameter("cl", unit="L/h", typical=Prior("HalfFlat")).typical.family == "HalfFlat"


# --- known_sd --------------------------------------------------------------------------------------------
def test_known_sd_error_model_estimates_no_sd() -> None:
    em = ErrorModel("known_sd", output="value")
    assert (em.sigma_names, em.priors, em.known_sd) == ((), (), True)
    assert ErrorModel.from_dict(json.loads(json.dumps(em.to_dict()))) == em
    assert not ErrorModel("additive").known_sd
    spec = _spec(Parameter("intercept", unit="g", typical=NORMAL, scale="identity"),
                 Parameter("slope", unit="g/day", typical=NORMAL, scale="identity"), error=em)
    assert spec.sigma_names == () and spec.sigma_sites == ()
    assert TwinSpec.from_dict(spec.to_dict()) == spec


def test_known_sd_takes_no_priors() -> None:
    with pytest.raises(SpecError, match=r"a known_sd error model estimates no residual SD \(each observation's SD "
                                        r"comes from the DVSD column of the data\), so it takes no priors; "
                                        r"remove \['sigma_add'\]"):
        ErrorModel("known_sd", priors=(("sigma_add", Prior.half_normal(1.0)),))
