"""Model specifications: priors, parameters, error models, TwinSpec, transforms and regimens.

Everything here is exact: specs are frozen values, so round trips compare with ``==`` and
digests with string equality. Every ``SpecError`` path is exercised with its message.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import pytest

from bayestwin._extras import require_all_deps
from bayestwin.exceptions import MissingExtraError, SpecError
from bayestwin.models import get_model
from bayestwin.spec import (
    CovariateEffect,
    ErrorModel,
    Parameter,
    Prior,
    TwinSpec,
    add_covariate_effect,
    example_spec,
    fix_parameter,
    remove_bsv,
    remove_covariate_effect,
    set_bsv,
    set_correlation,
    set_error_model,
    set_parametrization,
    set_prior,
)
from bayestwin.spec.observation import ERROR_KINDS
from bayestwin.spec.prior import PRIOR_FAMILIES
from bayestwin.spec.regimen import Dose, Regimen
from bayestwin.spec.twin_spec import SPEC_SCHEMA_VERSION

NAN = float("nan")
INF = float("inf")

#: one valid parameter set per family; the coverage test below forces an entry for every new family
VALID_PARAMS: dict[str, dict[str, float]] = {
    "Normal": {"mu": -0.5, "sigma": 2.0},
    "StudentT": {"nu": 3.0, "mu": 0.25, "sigma": 1.5},
    "Cauchy": {"mu": 1.0, "sigma": 0.5},
    "LogNormal": {"mu": math.log(3.0), "sigma": 1.0},
    "HalfNormal": {"sigma": 0.5},
    "HalfCauchy": {"sigma": 2.5},
    "HalfStudentT": {"nu": 4.0, "sigma": 1.0},
    "Exponential": {"rate": 0.1},
    "Gamma": {"alpha": 2.0, "beta": 0.5},
    "Uniform": {"lower": -1.0, "upper": 3.0},
    "Beta": {"alpha": 0.5, "beta": 0.5},
    "LKJ": {"eta": 2.0},
    "Flat": {},
    "HalfFlat": {},
}
SUPPORT = {"Normal": "real", "StudentT": "real", "Cauchy": "real", "LogNormal": "positive", "HalfNormal": "positive",
           "HalfCauchy": "positive", "HalfStudentT": "positive", "Exponential": "positive", "Gamma": "positive",
           "Uniform": "interval", "Beta": "unit", "LKJ": "correlation", "Flat": "real", "HalfFlat": "positive"}


def _rich_spec() -> TwinSpec:
    """A spec that uses every field: covariates (prior and fixed), a fixed parameter, two outputs, LKJ, units."""
    return TwinSpec(
        name="rich", model="pk.one_cmt_oral",
        parameters=(
            Parameter("ka", unit="1/h", fixed=1.25),
            Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=0.75), bsv=Prior.half_normal(0.5),
                      covariates=(CovariateEffect("WT", form="power", reference=70.0, fixed=0.75, unit="kg"),
                                  CovariateEffect("CRCL", form="linear", reference=100.0,
                                                  prior=Prior("Normal", mu=0.0, sigma=0.01), unit="mL/min"))),
            Parameter("v", unit="L", typical=Prior("Gamma", alpha=3.0, beta=0.1), bsv=Prior("HalfCauchy", sigma=1.0),
                      covariates=(CovariateEffect("NEO", form="indicator", reference=0.5,
                                                  prior=Prior("Normal", mu=0.0, sigma=1.0)),)),
        ),
        error=(ErrorModel("combined", priors=(("sigma_add", Prior("HalfNormal", sigma=0.2)),)),
               ErrorModel("lognormal", output="metab", censoring="ignore")),
        correlation=Prior("LKJ", eta=2.0), centered=True,
        units=(("time", "min"), ("amt", "ug"), ("conc", "ug/L"), ("metab", "nmol/L")),
        description="every field set",
    )


# --- Prior ------------------------------------------------------------------------------------
def test_valid_params_cover_every_family() -> None:
    assert set(VALID_PARAMS) == set(PRIOR_FAMILIES) == set(SUPPORT)


@pytest.mark.parametrize("family", sorted(PRIOR_FAMILIES))
def test_prior_round_trip_and_support(family: str) -> None:
    p = Prior(family, **VALID_PARAMS[family])
    assert Prior.from_dict(p.to_dict()) == p
    assert Prior.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert hash(Prior.from_dict(p.to_dict())) == hash(p)
    assert p.support == SUPPORT[family]
    assert [name for name, _ in p.params] == list(PRIOR_FAMILIES[family][0])  # the family's order
    assert {name: p.param(name) for name in VALID_PARAMS[family]} == VALID_PARAMS[family]


def test_prior_params_are_normalised() -> None:
    a = Prior("Normal", sigma=2, mu=0)  # keyword order and ints do not matter
    assert a == Prior("Normal", {"mu": 0.0, "sigma": 2.0}) == Prior("Normal", (("mu", 0.0), ("sigma", 2.0)))
    assert a.params == (("mu", 0.0), ("sigma", 2.0))
    assert all(type(v) is float for _, v in a.params)
    assert Prior("Normal", {"mu": 1.0}, sigma=3.0).params == (("mu", 1.0), ("sigma", 3.0))  # mapping + kwargs
    assert repr(a) == "Prior(family='Normal', params=(('mu', 0.0), ('sigma', 2.0)))"


def test_prior_constructors() -> None:
    assert Prior.lognormal(median=3.0, sigma=1.0) == Prior("LogNormal", mu=math.log(3.0), sigma=1.0)
    assert Prior.half_normal(0.5) == Prior("HalfNormal", sigma=0.5)


def test_prior_is_frozen() -> None:
    p = Prior("HalfNormal", sigma=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.family = "Normal"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Prior("Weibull", k=1.0), r"unknown prior family 'Weibull'; use one of \['Beta', 'Cauchy'"),
        (lambda: Prior("Normal", mu=0.0), r"Normal prior takes parameters \['mu', 'sigma'\]; missing \['sigma'\], "
                                          r"unexpected \[\]"),
        (lambda: Prior("HalfNormal", sigma=1.0, mu=0.0), r"missing \[\], unexpected \['mu'\]"),
        (lambda: Prior("Normal", mu=NAN, sigma=1.0), r"Normal prior parameter mu=nan must be finite"),
        (lambda: Prior("Normal", mu=0.0, sigma=INF), r"Normal prior parameter sigma=inf must be finite"),
        (lambda: Prior("HalfNormal", sigma=0.0), r"HalfNormal prior parameter sigma=0.0 must be > 0"),
        (lambda: Prior("Gamma", alpha=2.0, beta=-1.0), r"Gamma prior parameter beta=-1.0 must be > 0"),
        (lambda: Prior("LKJ", eta=0.0), r"LKJ prior parameter eta=0.0 must be > 0"),
        (lambda: Prior("Uniform", lower=2.0, upper=2.0), r"Uniform prior needs lower < upper, got 2.0 >= 2.0"),
        (lambda: Prior("Uniform", lower=3.0, upper=1.0), r"Uniform prior needs lower < upper, got 3.0 >= 1.0"),
        (lambda: Prior.lognormal(median=0.0, sigma=1.0), r"a log-normal prior needs a positive median, got 0.0"),
        (lambda: Prior.lognormal(median=-2.0, sigma=1.0), r"positive median, got -2.0"),
        (lambda: Prior.from_dict({"family": "Normal"}), r"a prior needs 'family' and 'params', got keys \['family'\]"),
        (lambda: Prior.from_dict({"params": {}}), r"a prior needs 'family' and 'params', got keys \['params'\]"),
    ],
)
def test_prior_errors(make: Callable[[], Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        make()


# --- CovariateEffect and Parameter ------------------------------------------------------------
@pytest.mark.parametrize(
    "effect",
    [
        CovariateEffect("WT", form="power", reference=70.0, fixed=0.75, unit="kg"),
        CovariateEffect("AGE", form="linear", reference=40.0, prior=Prior("Normal", mu=0.0, sigma=0.1)),
        CovariateEffect("CRCL", form="exponential", reference=90.0, prior=Prior("StudentT", nu=3.0, mu=0.0, sigma=1.0)),
        CovariateEffect("APGAR", form="indicator", reference=5.0, fixed=-0.3),
    ],
)
def test_covariate_effect_round_trip(effect: CovariateEffect) -> None:
    assert CovariateEffect.from_dict(effect.to_dict()) == effect
    assert CovariateEffect.from_dict(json.loads(json.dumps(effect.to_dict()))) == effect


def test_covariate_effect_defaults() -> None:
    eff = CovariateEffect.from_dict({"covariate": "WT", "fixed": 0.75})
    assert (eff.form, eff.reference, eff.prior, eff.fixed, eff.unit) == ("power", 1.0, None, 0.75, None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"form": "quadratic", "fixed": 1.0}, r"covariate effect form 'quadratic' is not one of \('power', 'linear'"),
        ({"form": "linear"}, r"covariate effect of 'WT': give exactly one of prior= or fixed="),
        ({"form": "linear", "fixed": 1.0, "prior": Prior("Normal", mu=0.0, sigma=1.0)}, r"give exactly one of prior="),
        ({"form": "power", "reference": 0.0, "fixed": 0.75},
         r"power effect of 'WT' needs a positive reference, got 0.0"),
        ({"form": "power", "reference": -70.0, "fixed": 0.75}, r"needs a positive reference, got -70.0"),
    ],
)
def test_covariate_effect_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        CovariateEffect("WT", **kwargs)


def test_parameter_properties_and_round_trip() -> None:
    est = Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0), bsv=Prior.half_normal(0.5),
                    covariates=[CovariateEffect("WT", reference=70.0, fixed=0.75)])  # a list becomes a tuple
    fixed = Parameter("ka", unit="1/h", fixed=1.5)
    assert (est.has_bsv, est.estimated, fixed.has_bsv, fixed.estimated) == (True, True, False, False)
    assert isinstance(est.covariates, tuple)
    for p in (est, fixed):
        assert Parameter.from_dict(p.to_dict()) == p
        assert Parameter.from_dict(json.loads(json.dumps(p.to_dict()))) == p


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "2cl", "fixed": 1.0}, r"parameter name '2cl' must be a Python identifier"),
        ({"name": "cl"}, r"parameter 'cl': give exactly one of typical= \(a prior\) or fixed="),
        ({"name": "cl", "fixed": 1.0, "typical": Prior.half_normal(1.0)}, r"give exactly one of typical="),
        ({"name": "cl", "typical": Prior("Normal", mu=0.0, sigma=1.0)},
         r"parameter 'cl': the typical-value prior must be positive \(LogNormal, HalfNormal, ...\), got Normal"),
        ({"name": "cl", "typical": Prior("Beta", alpha=1.0, beta=1.0)}, r"must be positive .*got Beta"),
        ({"name": "cl", "fixed": 0.0}, r"parameter 'cl': fixed value must be > 0, got 0.0"),
        ({"name": "cl", "fixed": -2.0}, r"fixed value must be > 0, got -2.0"),
        ({"name": "cl", "fixed": 1.0, "bsv": Prior("Normal", mu=0.0, sigma=1.0)},
         r"parameter 'cl': the BSV prior is a prior on an SD and must be positive, got Normal"),
        ({"name": "cl", "fixed": 1.0, "covariates": (CovariateEffect("WT", fixed=0.75),
                                                      CovariateEffect("WT", form="linear", fixed=0.1))},
         r"parameter 'cl': covariate effects repeat a covariate: \['WT', 'WT'\]"),
    ],
)
def test_parameter_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        Parameter(unit="L/h", **kwargs)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Parameter("cl", unit="L/h", fixed=NAN), r"fixed value must be > 0, got nan"),
        (lambda: CovariateEffect("WT", form="power", reference=NAN, fixed=0.75), r"positive reference, got nan"),
    ],
    ids=["Parameter.fixed", "CovariateEffect.reference"],
)
def test_nan_is_not_a_positive_value(make: Callable[[], Any], match: str) -> None:
    # The checks are written `x <= 0`, which NaN passes; the documented rule is "must be > 0".
    with pytest.raises(SpecError, match=match):
        make()


# --- ErrorModel -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(ERROR_KINDS))
def test_error_model_defaults_and_round_trip(kind: str) -> None:
    em = ErrorModel(kind)
    assert em.sigma_names == ERROR_KINDS[kind]
    assert tuple(n for n, _ in em.priors) == ERROR_KINDS[kind]  # every SD gets a prior
    default_sd = {"sigma_add": 1.0, "sigma_prop": 0.5, "sigma_log": 0.5}
    for name in em.sigma_names:
        assert em.prior(name) == Prior("HalfNormal", sigma=default_sd[name])
    assert ErrorModel.from_dict(em.to_dict()) == em
    assert ErrorModel.from_dict(json.loads(json.dumps(em.to_dict()))) == em


def test_error_model_given_prior_kept_others_defaulted() -> None:
    em = ErrorModel("combined", output="metab", priors=(("sigma_prop", Prior("Exponential", rate=10.0)),),
                    censoring="ignore")
    assert em.priors == (("sigma_add", Prior("HalfNormal", sigma=1.0)), ("sigma_prop", Prior("Exponential", rate=10.0)))
    assert ErrorModel.from_dict(em.to_dict()) == em
    assert ErrorModel.from_dict({}) == ErrorModel()  # every key has a default


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "poisson"}, r"error model 'poisson' is not one of \['additive', 'combined', 'known_sd', 'lognormal', "
                              r"'proportional'\]"),
        ({"kind": "additive", "priors": (("sigma_prop", Prior.half_normal(1.0)),)},
         r"additive error model has SDs \('sigma_add',\), not \['sigma_prop'\]"),
        ({"kind": "additive", "priors": (("sigma_add", Prior("Normal", mu=0.0, sigma=1.0)),)},
         r"prior of sigma_add must be positive \(an SD\), got Normal"),
        ({"kind": "additive", "censoring": "m4"}, r"censoring must be 'm3' or 'ignore', got 'm4'"),
    ],
)
def test_error_model_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        ErrorModel(**kwargs)


# --- TwinSpec ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [example_spec, _rich_spec], ids=["example", "rich"])
def test_twin_spec_dict_round_trip(make: Callable[[], TwinSpec]) -> None:
    spec = make()
    back = TwinSpec.from_dict(spec.to_dict())
    assert back == spec
    assert back.description == spec.description  # not part of ==, so checked on its own
    assert back.to_dict() == spec.to_dict()
    assert back.digest() == spec.digest()


@pytest.mark.parametrize("make", [example_spec, _rich_spec], ids=["example", "rich"])
def test_twin_spec_json_round_trip(make: Callable[[], TwinSpec], tmp_path: Any) -> None:
    spec = make()
    path = spec.save(tmp_path / "spec.json")
    assert path == tmp_path / "spec.json"
    assert path.read_text(encoding="utf-8") == spec.to_json() + "\n"
    loaded = TwinSpec.load(path)
    assert loaded.digest() == spec.digest()
    assert loaded.description == spec.description
    # to_json sorts keys (also those of `units`); the loaded spec must still equal the saved one
    assert TwinSpec.from_dict(json.loads(spec.to_json())) == spec
    assert loaded == spec


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
@pytest.mark.parametrize("make", [example_spec, _rich_spec], ids=["example", "rich"])
def test_twin_spec_yaml_round_trip(make: Callable[[], TwinSpec], suffix: str, tmp_path: Any) -> None:
    if not require_all_deps():  # CI sets BAYESTWIN_REQUIRE_ALL_DEPS=1: a missing extra fails there
        pytest.importorskip("yaml", reason="needs the [yaml] extra")  # missing extra: see the test below
    spec = make()
    loaded = TwinSpec.load(spec.save(tmp_path / f"spec{suffix}"))
    assert loaded == spec and loaded.description == spec.description
    assert loaded.digest() == spec.digest()


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_twin_spec_yaml_without_pyyaml_names_the_extra(
    suffix: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` raise ImportError
    match = r"needs 'yaml', which is not installed; install the extra with pip install 'bayestwin\[yaml\]'"
    with pytest.raises(MissingExtraError, match=match):
        example_spec().save(tmp_path / f"x{suffix}")
    assert not (tmp_path / f"x{suffix}").exists()
    (tmp_path / f"y{suffix}").write_text("name: y\n", encoding="utf-8")
    with pytest.raises(MissingExtraError, match=match):
        TwinSpec.load(tmp_path / f"y{suffix}")


def test_twin_spec_queries() -> None:
    spec = _rich_spec()
    assert spec.parameter_names == ("ka", "cl", "v")
    assert spec.bsv_parameters == ("cl", "v")
    assert spec.covariates == ("WT", "CRCL", "NEO")
    assert spec.parameter("cl") is spec.parameters[1]
    assert (spec.unit("time"), spec.unit("amt"), spec.unit("metab")) == ("min", "ug", "nmol/L")
    assert dict(example_spec().units) == {"time": "h", "amt": "mg", "conc": "mg/L"}


def test_example_spec() -> None:
    spec = example_spec()
    assert (spec.name, spec.model) == ("example.one_cmt_oral", "pk.one_cmt_oral")
    assert spec.parameter_names == ("ka", "cl", "v") and spec.bsv_parameters == ("cl", "v")
    assert spec.parameter("v").typical == Prior.lognormal(median=30.0, sigma=1.0)
    assert spec.error == (ErrorModel("additive"),)
    assert (spec.correlation, spec.centered, spec.covariates) == (None, False, ())
    assert example_spec() == spec and example_spec() is not spec  # a fresh value each call


def test_twin_spec_normalises_sequences() -> None:
    spec = TwinSpec(name="s", model="pk.one_cmt_oral", parameters=[Parameter("cl", unit="L/h", fixed=1.0)],
                    error=[ErrorModel()], units={"time": "h", "amt": "mg"})  # type: ignore[arg-type]
    assert isinstance(spec.parameters, tuple) and isinstance(spec.error, tuple)
    assert isinstance(spec.units, tuple) and dict(spec.units) == {"time": "h", "amt": "mg"}
    hash(spec)  # frozen and hashable: usable as a cache key


def test_twin_spec_from_dict_defaults() -> None:
    minimal = {"name": "m", "model": "pk.one_cmt_oral", "parameters": [{"name": "cl", "unit": "L/h", "fixed": 2.0}]}
    spec = TwinSpec.from_dict(minimal)
    assert spec == TwinSpec(name="m", model="pk.one_cmt_oral", parameters=(Parameter("cl", unit="L/h", fixed=2.0),))
    assert spec.error == (ErrorModel("additive"),)
    assert (spec.correlation, spec.centered, spec.description) == (None, False, "")
    assert spec.to_dict()["schema_version"] == SPEC_SCHEMA_VERSION


def _cl(**kwargs: Any) -> Parameter:
    return Parameter("cl", unit="L/h", typical=Prior.half_normal(3.0), **kwargs)


def _v(**kwargs: Any) -> Parameter:
    return Parameter("v", unit="L", typical=Prior.half_normal(30.0), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"parameters": (_cl(), _cl())}, r"spec 's' defines a parameter twice: \['cl', 'cl'\]"),
        ({"parameters": ()}, r"spec 's' has no parameters"),
        ({"parameters": (_cl(),), "error": (ErrorModel("additive"), ErrorModel("proportional"))},
         r"spec 's' has two error models for one output: \['conc', 'conc'\]"),
        ({"parameters": (_cl(bsv=Prior.half_normal(1.0)), _v(bsv=Prior.half_normal(1.0))),
          "correlation": Prior("HalfNormal", sigma=1.0)}, r"correlation prior must be LKJ, got HalfNormal"),
        ({"parameters": (_cl(bsv=Prior.half_normal(1.0)), _v()), "correlation": Prior("LKJ", eta=1.0)},
         r"correlated BSV needs at least two parameters with BSV"),
        ({"parameters": (_cl(),), "units": (("amt", "mg"),)}, r"spec 's' must give the unit of 'time' in units="),
        ({"parameters": (_cl(),), "units": (("time", "h"), ("conc", "mg/L"))},
         r"spec 's' must give the unit of 'amt' in units="),
    ],
)
def test_twin_spec_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        TwinSpec(name="s", model="pk.one_cmt_oral", **kwargs)


def test_twin_spec_lookup_errors() -> None:
    spec = example_spec()
    with pytest.raises(SpecError, match=r"spec 'example.one_cmt_oral' has no parameter 'q'; it has \['ka', 'cl', 'v'"):
        spec.parameter("q")
    with pytest.raises(SpecError, match=r"spec 'example.one_cmt_oral' gives no unit for 'metab'; units: \{[^}]*'time'"):
        spec.unit("metab")


def test_twin_spec_from_dict_errors() -> None:
    data = example_spec().to_dict()
    with pytest.raises(SpecError, match=r"spec schema version 2 is newer than this bayestwin supports \(1\); "
                                        r"upgrade bayestwin"):
        TwinSpec.from_dict(data | {"schema_version": SPEC_SCHEMA_VERSION + 1})
    for key in ("name", "model", "parameters"):
        broken = {k: v for k, v in data.items() if k != key}
        with pytest.raises(SpecError, match=rf"spec dict is missing the key '{key}'"):
            TwinSpec.from_dict(broken)
    no_unit = data | {"parameters": [{k: v for k, v in data["parameters"][0].items() if k != "unit"}]}
    with pytest.raises(SpecError, match=r"spec dict is missing the key 'unit'"):
        TwinSpec.from_dict(no_unit)


# --- digest -----------------------------------------------------------------------------------
def test_digest_format_and_stability(tmp_path: Any) -> None:
    spec = _rich_spec()
    d = spec.digest()
    assert d.startswith("sha256:") and len(d) == len("sha256:") + 64
    assert int(d.removeprefix("sha256:"), 16) >= 0  # hexadecimal
    assert TwinSpec.from_dict(spec.to_dict()).digest() == d
    assert TwinSpec.load(spec.save(tmp_path / "s.json")).digest() == d
    assert _rich_spec().digest() == d  # a fresh but equal spec


def test_digest_ignores_description() -> None:
    spec = example_spec()
    other = dataclasses.replace(spec, description="a completely different note")
    assert other == spec and other.digest() == spec.digest()


SPEC_CHANGES: dict[str, Callable[[TwinSpec], TwinSpec]] = {
    "typical prior sigma": lambda s: set_prior(s, "cl", Prior.lognormal(median=3.0, sigma=0.5)),
    "typical prior median": lambda s: set_prior(s, "v", Prior.lognormal(median=31.0, sigma=1.0)),
    "typical prior family": lambda s: set_prior(s, "ka", Prior("HalfNormal", sigma=1.0)),
    "bsv prior": lambda s: set_bsv(s, "cl", Prior.half_normal(0.25)),
    "new bsv": lambda s: set_bsv(s, "ka", Prior.half_normal(1.0)),
    "remove bsv": lambda s: remove_bsv(s, "v"),
    "fix parameter": lambda s: fix_parameter(s, "ka", 1.0),
    "covariate": lambda s: add_covariate_effect(s, "cl", "WT", reference=70.0, fixed=0.75),
    "error prior": lambda s: set_error_model(
        s, ErrorModel("additive", priors=(("sigma_add", Prior.half_normal(2.0)),))),
    "error kind": lambda s: set_error_model(s, ErrorModel("proportional")),
    "censoring": lambda s: set_error_model(s, ErrorModel("additive", censoring="ignore")),
    "correlation": lambda s: set_correlation(s, Prior("LKJ", eta=2.0)),
    "centered": lambda s: set_parametrization(s, centered=True),
    "units": lambda s: dataclasses.replace(s, units=(("time", "min"), ("amt", "mg"), ("conc", "mg/L"))),
    "name": lambda s: dataclasses.replace(s, name="renamed"),
    "model": lambda s: dataclasses.replace(s, model="pk.one_cmt_oral_lag"),
}


@pytest.mark.parametrize("change", list(SPEC_CHANGES))
def test_digest_changes_with_the_model(change: str) -> None:
    spec = example_spec()
    changed = SPEC_CHANGES[change](spec)
    assert changed != spec
    assert changed.digest() != spec.digest()


def test_digest_distinguishes_every_change() -> None:
    digests = {name: f(example_spec()).digest() for name, f in SPEC_CHANGES.items()}
    assert len(set(digests.values())) == len(digests)


# --- transforms -------------------------------------------------------------------------------
def _corr_spec() -> TwinSpec:
    return set_correlation(example_spec(), Prior("LKJ", eta=2.0))


TRANSFORMS: dict[str, tuple[Callable[[], TwinSpec], Callable[[TwinSpec], TwinSpec], Callable[[TwinSpec], None]]] = {}


def _transform(name: str, start: Callable[[], TwinSpec], apply: Callable[[TwinSpec], TwinSpec]):
    def register(check: Callable[[TwinSpec], None]) -> Callable[[TwinSpec], None]:
        TRANSFORMS[name] = (start, apply, check)
        return check

    return register


@_transform("set_prior", example_spec, lambda s: set_prior(s, "v", Prior.lognormal(median=40.0, sigma=0.5)))
def _(s: TwinSpec) -> None:
    assert s.parameter("v").typical == Prior.lognormal(median=40.0, sigma=0.5)
    assert s.parameter("v").bsv == Prior.half_normal(0.5)  # BSV untouched


@_transform("set_prior on a fixed parameter", lambda: fix_parameter(example_spec(), "ka", 1.5),
            lambda s: set_prior(s, "ka", Prior.half_normal(2.0)))
def _(s: TwinSpec) -> None:
    assert (s.parameter("ka").typical, s.parameter("ka").fixed, s.parameter("ka").estimated) == (
        Prior.half_normal(2.0), None, True)


@_transform("fix_parameter", example_spec, lambda s: fix_parameter(s, "cl", 3))
def _(s: TwinSpec) -> None:
    cl = s.parameter("cl")
    assert (cl.typical, cl.fixed, cl.estimated, cl.bsv) == (None, 3.0, False, Prior.half_normal(0.5))
    assert type(cl.fixed) is float


@_transform("set_bsv", example_spec, lambda s: set_bsv(s, "ka", Prior.half_normal(1.0)))
def _(s: TwinSpec) -> None:
    assert s.bsv_parameters == ("ka", "cl", "v")
    assert s.parameter("ka").bsv == Prior.half_normal(1.0)


@_transform("remove_bsv", example_spec, lambda s: remove_bsv(s, "v"))
def _(s: TwinSpec) -> None:
    assert s.bsv_parameters == ("cl",)
    assert s.parameter("v").bsv is None


@_transform("remove_bsv keeps LKJ with >= 2 BSV left", lambda: set_bsv(_corr_spec(), "ka", Prior.half_normal(1.0)),
            lambda s: remove_bsv(s, "v"))
def _(s: TwinSpec) -> None:
    assert s.bsv_parameters == ("ka", "cl")
    assert s.correlation == Prior("LKJ", eta=2.0)


@_transform("remove_bsv drops LKJ with < 2 BSV left", _corr_spec, lambda s: remove_bsv(s, "v"))
def _(s: TwinSpec) -> None:
    assert s.bsv_parameters == ("cl",)
    assert s.correlation is None


@_transform("add_covariate_effect default prior", example_spec,
            lambda s: add_covariate_effect(s, "v", "WT", reference=70.0, unit="kg"))
def _(s: TwinSpec) -> None:
    assert s.parameter("v").covariates == (
        CovariateEffect("WT", form="power", reference=70.0, prior=Prior("Normal", mu=0.0, sigma=1.0), unit="kg"),)
    assert s.covariates == ("WT",)


@_transform("add_covariate_effect appends", lambda: add_covariate_effect(example_spec(), "cl", "WT", fixed=0.75,
                                                                          reference=70.0),
            lambda s: add_covariate_effect(s, "cl", "AGE", form="linear", reference=40.0,
                                           prior=Prior("Normal", mu=0.0, sigma=0.1)))
def _(s: TwinSpec) -> None:
    assert [(c.covariate, c.form, c.fixed, c.prior) for c in s.parameter("cl").covariates] == [
        ("WT", "power", 0.75, None), ("AGE", "linear", None, Prior("Normal", mu=0.0, sigma=0.1))]


@_transform("remove_covariate_effect", lambda: add_covariate_effect(
    add_covariate_effect(example_spec(), "cl", "WT", fixed=0.75, reference=70.0), "cl", "AGE", form="linear",
    reference=40.0), lambda s: remove_covariate_effect(s, "cl", "WT"))
def _(s: TwinSpec) -> None:
    assert [c.covariate for c in s.parameter("cl").covariates] == ["AGE"]


@_transform("set_error_model replaces", example_spec, lambda s: set_error_model(s, ErrorModel("combined")))
def _(s: TwinSpec) -> None:
    assert s.error == (ErrorModel("combined"),)


@_transform("set_error_model adds", example_spec,
            lambda s: set_error_model(s, ErrorModel("lognormal", output="metab")))
def _(s: TwinSpec) -> None:
    assert s.error == (ErrorModel("additive"), ErrorModel("lognormal", output="metab"))


@_transform("set_correlation", example_spec, lambda s: set_correlation(s, Prior("LKJ", eta=4.0)))
def _(s: TwinSpec) -> None:
    assert s.correlation == Prior("LKJ", eta=4.0)


@_transform("set_correlation None", _corr_spec, lambda s: set_correlation(s, None))
def _(s: TwinSpec) -> None:
    assert s.correlation is None


@_transform("set_parametrization", example_spec, lambda s: set_parametrization(s, centered=True))
def _(s: TwinSpec) -> None:
    assert s.centered is True


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_returns_new_spec_and_leaves_old_unchanged(name: str) -> None:
    start, apply, check = TRANSFORMS[name]
    spec = start()
    before, before_digest = spec.to_dict(), spec.digest()
    out = apply(spec)
    assert out is not spec
    assert spec.to_dict() == before and spec.digest() == before_digest  # the old spec is untouched
    assert spec == start()
    assert out != spec
    check(out)
    assert TwinSpec.from_dict(out.to_dict()) == out  # still a valid, serialisable spec


def test_spec_is_frozen() -> None:
    spec = example_spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.centered = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.parameters[0].fixed = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("apply", "match"),
    [
        (lambda s: set_prior(s, "q", Prior.half_normal(1.0)), r"spec 'example.one_cmt_oral' has no parameter 'q'; "
                                                              r"it has \['ka', 'cl', 'v'\]"),
        (lambda s: fix_parameter(s, "q", 1.0), r"has no parameter 'q'"),
        (lambda s: set_bsv(s, "q", Prior.half_normal(1.0)), r"has no parameter 'q'"),
        (lambda s: remove_bsv(s, "q"), r"has no parameter 'q'"),
        (lambda s: add_covariate_effect(s, "q", "WT"), r"has no parameter 'q'"),
        (lambda s: remove_covariate_effect(s, "q", "WT"), r"has no parameter 'q'"),
        (lambda s: set_prior(s, "cl", Prior("Normal", mu=0.0, sigma=1.0)),
         r"parameter 'cl': the typical-value prior must be positive"),
        (lambda s: fix_parameter(s, "cl", 0.0), r"parameter 'cl': fixed value must be > 0, got 0.0"),
        (lambda s: set_bsv(s, "cl", Prior("Normal", mu=0.0, sigma=1.0)), r"the BSV prior is a prior on an SD"),
        (lambda s: add_covariate_effect(add_covariate_effect(s, "cl", "WT", reference=70.0), "cl", "WT"),
         r"parameter 'cl' already depends on 'WT'; remove that effect first"),
        (lambda s: add_covariate_effect(s, "cl", "WT", reference=70.0, fixed=0.75, prior=Prior.half_normal(1.0)),
         r"give exactly one of prior= or fixed="),
        (lambda s: remove_covariate_effect(add_covariate_effect(s, "cl", "WT", reference=70.0), "cl", "AGE"),
         r"parameter 'cl' has no effect of 'AGE'; it has \['WT'\]"),
        (lambda s: remove_covariate_effect(s, "v", "AGE"), r"parameter 'v' has no effect of 'AGE'; it has \[\]"),
        (lambda s: set_correlation(s, Prior("Normal", mu=0.0, sigma=1.0)), r"correlation prior must be LKJ"),
        (lambda s: set_correlation(remove_bsv(s, "v"), Prior("LKJ", eta=1.0)),
         r"correlated BSV needs at least two parameters with BSV"),
        (lambda s: set_error_model(s, ErrorModel("combined", priors=(("sigma_log", Prior.half_normal(1.0)),))),
         r"combined error model has SDs \('sigma_add', 'sigma_prop'\), not \['sigma_log'\]"),
    ],
)
def test_transform_errors_leave_spec_unchanged(apply: Callable[[TwinSpec], TwinSpec], match: str) -> None:
    spec = example_spec()
    before = spec.to_dict()
    with pytest.raises(SpecError, match=match):
        apply(spec)
    assert spec.to_dict() == before


# --- structural model compartments ---------------------------------------------------------------
def test_compartment_index() -> None:
    model = get_model("pk.one_cmt_oral")  # compartments ("depot", "central"), doses default to the depot
    assert [model.compartment_index(c) for c in (0, 1, 2, "depot", "central")] == [0, 0, 1, 0, 1]
    assert model.compartment_map() == {1: "depot", 2: "central"}
    assert repr(model) == "OneCmtOral(name='pk.one_cmt_oral')"
    with pytest.raises(KeyError, match=r"model 'pk.one_cmt_oral' has no compartment 'gut'; it has \('depot', "
                                       r"'central'\)"):
        model.compartment_index("gut")
    for cmt in (3, -1):
        with pytest.raises(KeyError, match=rf"model 'pk.one_cmt_oral' has compartments 1-2 \('depot', 'central'\); "
                                           rf"CMT {cmt} is not one of them"):
            model.compartment_index(cmt)


# --- Regimen and Dose -------------------------------------------------------------------------
def test_regimen_repeat_times() -> None:
    r = Regimen.repeat(amt=300.0, every=12.0, count=3, start=24.0)
    assert [d.time for d in r.doses] == [24.0, 36.0, 48.0]
    assert [(d.amt, d.rate, d.cmt) for d in r.doses] == [(300.0, 0.0, 0)] * 3
    assert (r.time_unit, r.amt_unit, r.name) == ("h", "mg", "300 mg every 12 h x 3")


def test_regimen_repeat_options_and_records() -> None:
    r = Regimen.repeat(amt=0.5, every=1.5, count=4, rate=0.25, cmt="central", time_unit="day", amt_unit="g",
                       name="plan A")
    assert [d.time for d in r.doses] == [0.0, 1.5, 3.0, 4.5]  # exact: multiples of a power-of-two fraction
    assert r.name == "plan A"
    assert r.to_records()[1] == {"time": 1.5, "amt": 0.5, "rate": 0.25, "cmt": "central", "time_unit": "day",
                                 "amt_unit": "g"}
    assert len(r.to_records()) == 4
    assert Regimen.repeat(amt=100.0, every=8.0, count=1).doses == (Dose(0.0, 100.0),)


def test_regimen_sorts_doses_and_ignores_name_in_equality() -> None:
    a = Regimen((Dose(12.0, 100.0), Dose(0.0, 200.0), Dose(6.0, 50.0, rate=25.0)), name="a")
    assert [d.time for d in a.doses] == [0.0, 6.0, 12.0]
    assert a == Regimen((Dose(0.0, 200.0), Dose(6.0, 50.0, rate=25.0), Dose(12.0, 100.0)), name="b")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Dose(0.0, 0.0), r"a planned dose needs a finite amount > 0, got 0.0"),
        (lambda: Dose(0.0, -10.0), r"a planned dose needs a finite amount > 0, got -10.0"),
        (lambda: Dose(0.0, 100.0, rate=-1.0), r"a planned infusion rate must be finite and >= 0, got -1.0"),
        (lambda: Regimen(()), r"a regimen needs at least one dose"),
        (lambda: Regimen.repeat(amt=100.0, every=12.0, count=0),
         r"repeat needs count >= 1, a finite every > 0 and a finite start, got count=0, every=12.0"),
        (lambda: Regimen.repeat(amt=100.0, every=0.0, count=3), r"got count=3, every=0.0"),
        (lambda: Regimen.repeat(amt=100.0, every=-12.0, count=3), r"got count=3, every=-12.0"),
        (lambda: Regimen.repeat(amt=-100.0, every=12.0, count=3),
         r"a planned dose needs a finite amount > 0, got -100.0"),
    ],
)
def test_regimen_and_dose_errors(make: Callable[[], Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Dose(0.0, NAN), r"a planned dose needs a finite amount > 0, got nan"),
        (lambda: Dose(0.0, 100.0, rate=NAN), r"a planned infusion rate must be finite and >= 0, got nan"),
        (lambda: Regimen.repeat(amt=100.0, every=NAN, count=3), r"repeat needs count >= 1, a finite every > 0"),
        (lambda: Dose(NAN, 100.0), r"a planned dose needs a finite time, got nan"),
        (lambda: Dose(0.0, float("inf")), r"a planned dose needs a finite amount > 0, got inf"),
        (lambda: Dose(0.0, 100.0, rate=float("inf")), r"infusion rate must be finite and >= 0, got inf"),
        (lambda: Regimen.repeat(amt=100.0, every=float("inf"), count=2), r"a finite every > 0 .* every=inf"),
        (lambda: Regimen.repeat(amt=100.0, every=12.0, count=2, start=NAN), r"and a finite start, .* start=nan"),
    ],
    ids=["Dose.amt", "Dose.rate", "Regimen.repeat.every", "Dose.time", "Dose.amt.inf", "Dose.rate.inf",
         "Regimen.repeat.every.inf", "Regimen.repeat.start"],
)
def test_regimen_nan_is_refused(make: Callable[[], Any], match: str) -> None:
    # `amt <= 0`, `rate < 0` and `every <= 0` are all False for NaN, so NaN slips through the documented rules;
    # an infinite time, amount, rate or interval (inf * 0 is NaN) must be refused too.
    with pytest.raises(SpecError, match=match):
        make()


def test_dose_is_frozen() -> None:
    d = Dose(0.0, 100.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.amt = 5.0  # type: ignore[misc]
