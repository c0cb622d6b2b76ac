"""Tests for bayestwin.units: parsing, labels, kinds, exact conversions, plausibility ranges."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pint
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayestwin import plausibility, units
from bayestwin.exceptions import UnitError
from bayestwin.plausibility import MOLAR_MASSES, PLAUSIBLE_RANGES, descriptor_for, plausible_range
from bayestwin.units import (
    KINDS,
    conversion_factor,
    convert,
    dose_per_weight_to_amount,
    format_unit,
    kind_of,
    parse_unit,
    require_kind,
    ureg,
)

GLUCOSE = "180.156 g/mol"

# ---------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ug", "microgram"), ("µg", "microgram"), ("μg", "microgram"), ("mcg", "microgram"),
        ("h", "hour"), ("hr", "hour"), ("hour", "hour"), ("hours", "hour"), ("min", "minute"),
        ("d", "day"), ("day", "day"), ("days", "day"), ("week", "week"), ("L", "liter"), ("l", "liter"),
        ("mL", "milliliter"), ("mg/dL", "milligram/deciliter"), ("mmol/L", "millimole/liter"),
        ("kg", "kilogram"), ("g", "gram"), ("cm", "centimeter"), ("year", "year"), ("yr", "year"),
        ("1/h", "1/hour"), ("bpm", "beats_per_minute"), ("IU", "international_unit"),
        ("mmHg", "millimeter_Hg"), ("degC", "degree_Celsius"), ("µmol/L", "micromole/liter"),
        ("μmol/L", "micromole/liter"), ("umol/L", "micromole/liter"), ("mcmol/L", "micromole/liter"),
        ("uL", "microliter"), ("mcL", "microliter"), ("  mg / L \t", "milligram/liter"),
        ("mg/kg/h", "milligram/kilogram/hour"), ("dimensionless", "dimensionless"), ("1", "dimensionless"),
    ],
)  # fmt: skip
def test_parse_unit_accepts_spellings(text: str, expected: str) -> None:
    unit = parse_unit(text)
    assert isinstance(unit, ureg.Unit)
    assert unit == ureg.Unit(expected)


def test_registry_definitions() -> None:
    assert isinstance(ureg, pint.UnitRegistry)
    assert ureg.Unit("IU").dimensionality == ureg.get_dimensionality("[international_unit]")
    assert conversion_factor("bpm", "1/min") == 1.0
    assert conversion_factor("mIU", "IU") == 0.001
    mg = ureg.Unit("mg")
    assert parse_unit(mg) is mg
    assert parse_unit(pint.UnitRegistry().Unit("mg/L")) == ureg.Unit("mg/L")  # foreign registry


@pytest.mark.parametrize("text", [None, "", "   ", "\t"])
def test_parse_unit_missing(text: str | None) -> None:
    with pytest.raises(UnitError, match=r"column AMT: no unit given .*Accepted spellings include mg"):
        parse_unit(text, where="column AMT")  # type: ignore[arg-type]


def test_parse_unit_not_a_string() -> None:
    with pytest.raises(UnitError, match=r"column AMT: a unit must be a string \(got 5\)"):
        parse_unit(5, where="column AMT")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["foo", "mgs", "mg/", "(mg/L", "mg-h", "mg**", "ugg/L"])
def test_parse_unit_unknown(text: str) -> None:
    with pytest.raises(UnitError, match=rf"column DV: unknown unit: '{re.escape(text)}'\..*Accepted spellings"):
        parse_unit(text, where="column DV")


@pytest.mark.parametrize(("text", "suggestion"), [("KG", "kg"), ("NG/ml", "ng/mL"), ("MMOL/L", "mmol/L")])
def test_parse_unit_suggests_lower_case(text: str, suggestion: str) -> None:
    with pytest.raises(UnitError, match=rf"unknown unit: '{text}'\. Did you mean '{suggestion}'\?"):
        parse_unit(text, where="column DV")


@pytest.mark.parametrize("text", ["1000 mg", "2/h", "mg*2"])
def test_parse_unit_numeric_factor(text: str) -> None:
    with pytest.raises(UnitError, match=r"column AMT: a unit cannot contain a numeric factor"):
        parse_unit(text, where="column AMT")


@pytest.mark.parametrize(
    ("text", "means", "fix"),
    [("MG", "megagauss", "mg"), ("MG/L", "megagauss", "mg"), ("ML", "megaliter", "mL"),
     ("NG/ML", "megaliter", "mL"), ("H", "henry", "h"), ("D", "debye", "day"), ("G", "gauss", "g"),
     ("C", "coulomb", "degC")],
)  # fmt: skip
def test_parse_unit_refuses_capital_traps(text: str, means: str, fix: str) -> None:
    with pytest.raises(UnitError, match=rf"column DV: unit '{text}' is ambiguous: .*means {means}\. Write '{fix}"):
        parse_unit(text, where="column DV")


# ------------------------------------------------------------------------------------------- formatting

LABELS = [
    "mg", "ug", "ng", "mg/L", "ug/L", "ng/mL", "mg/dL", "mmol/L", "umol/L", "h", "min", "day", "week",
    "kg", "g", "L", "mL", "mg/kg", "1/h", "1/min", "L/h", "mL/min", "mg/h", "bpm", "year", "cm", "mmHg",
    "g/dL", "IU", "IU/L", "mIU/mL", "degC", "mg/kg/h", "L/kg/h", "kg*m^2/s^2", "percent", "dimensionless",
]  # fmt: skip


@pytest.mark.parametrize("label", LABELS)
def test_format_unit_is_canonical_and_round_trips(label: str) -> None:
    assert format_unit(label) == label
    assert format_unit(parse_unit(format_unit(label))) == format_unit(label)
    assert format_unit(label).isascii()


@pytest.mark.parametrize(
    ("text", "label"),
    [("µg", "ug"), ("μg/l", "ug/L"), ("mcg/mL", "ug/mL"), ("hours", "h"), ("hr", "h"), ("d", "day"),
     ("days", "day"), ("yr", "year"), ("l", "L"), ("milligram / liter", "mg/L"), ("h^-1", "1/h"),
     ("1/hr", "1/h"), ("1/L*mg", "mg/L"), ("mg/h/kg", "mg/kg/h"), ("L/h/kg", "L/kg/h"), ("", "")],
)  # fmt: skip
def test_format_unit_normalises(text: str, label: str) -> None:
    if not text:
        with pytest.raises(UnitError, match="no unit given"):
            format_unit(text)
        return
    assert format_unit(text) == label
    assert format_unit(parse_unit(text)) == label


# ------------------------------------------------------------------------------------------------ kinds


@pytest.mark.parametrize(
    ("unit", "kind"),
    [("h", "time"), ("min", "time"), ("mg", "mass"), ("mmol", "substance"), ("mL", "volume"),
     ("mg/L", "mass_concentration"), ("ng/mL", "mass_concentration"), ("mmol/L", "molar_concentration"),
     ("mg/kg", "mass_per_mass"), ("ug/kg", "mass_per_mass"), ("mg/h", "mass_rate"), ("L/h", "volume_rate"),
     ("1/h", "rate_constant"), ("1/min", "rate_constant"), ("bpm", "rate_constant"), ("cm", "length"),
     ("dimensionless", "dimensionless"), ("percent", "dimensionless"), ("IU", "international_unit"),
     ("degC", "temperature"), ("mmHg", "pressure"), ("mg/kg/h", "other"), ("IU/L", "other"),
     ("L/h/kg", "other")],
)  # fmt: skip
def test_kind_of(unit: str, kind: str) -> None:
    assert kind in KINDS
    assert kind_of(unit) == kind


def test_require_kind_accepts() -> None:
    assert require_kind("mg", "mass", where="column AMT") == ureg.Unit("mg")
    assert require_kind("mmol", ("mass", "substance"), where="column AMT") == ureg.Unit("mmol")


def test_require_kind_rejects_other_kind() -> None:
    msg = r"column AMT: unit 'mg/L' is a mass_concentration unit, but a mass or substance unit is needed"
    with pytest.raises(UnitError, match=msg + r"\. Use e\.g\. mass: mg, ug"):
        require_kind("mg/L", ["mass", "substance"], where="column AMT")


@pytest.mark.parametrize("kinds", ["weight", ["mass", "amount"], []])
def test_require_kind_unknown_kind_name(kinds: str | list[str]) -> None:
    with pytest.raises(UnitError, match=r"column AMT: unknown unit kind in .*known kinds: time, mass"):
        require_kind("mg", kinds, where="column AMT")


def test_require_kind_bad_unit_names_where() -> None:
    with pytest.raises(UnitError, match=r"column AMT: unknown unit: 'mgg'"):
        require_kind("mgg", "mass", where="column AMT")


# ------------------------------------------------------------------------------------ exact conversions


def test_convert_mg_ug_exact_both_ways() -> None:
    mg = np.array([1.7, 0.1, 319.992])
    ug = convert(mg, "mg", "ug")
    np.testing.assert_array_equal(ug, np.array([1700.0, 100.0, 319992.0]))
    np.testing.assert_array_equal(convert(ug, "ug", "mg"), mg)


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [(2500.0, "ug/L", "mg/L", 2.5), (2.5, "mg/L", "ug/L", 2500.0), (1000.0, "ng/mL", "mg/L", 1.0),
     (1.0, "mg/L", "ng/mL", 1000.0), (0.1, "mg/L", "ug/L", 100.0), (37.5, "ng/mL", "ug/L", 37.5),
     (90.0, "min", "h", 1.5), (1.5, "h", "min", 90.0), (2.0, "day", "h", 48.0), (36.0, "h", "day", 1.5),
     (2.0, "week", "day", 14.0), (1.0, "week", "h", 168.0), (45.0, "min", "day", 0.03125),
     (250.0, "mL", "L", 0.25), (0.3, "g", "mg", 300.0), (4.25, "mg/kg", "ug/kg", 4250.0),
     (60.0, "bpm", "1/h", 3600.0), (0.125, "1/h", "1/day", 3.0), (1.0, "mg/dL", "mg/L", 10.0),
     (100.0, "mL/min", "L/h", 6.0), (12.0, "month", "year", 1.0), (1.2, "mg/h", "ug/min", 20.0)],
)  # fmt: skip
def test_convert_exact(value: float, src: str, dst: str, expected: float) -> None:
    assert convert(value, src, dst) == expected


def test_convert_multiplies_the_stored_binary_value() -> None:
    # x * N is the correctly rounded product of the double nearest 4.02, which lies just below 4.02;
    # dividing an exactly representable value (4020.0) by N does give the decimal result.
    assert convert(4.02, "mg", "ug") == 4019.9999999999995
    assert convert(4020.0, "ug", "mg") == 4.02


@pytest.mark.parametrize(
    ("src", "dst", "factor"),
    [("ng/mL", "mg/L", 0.001), ("mg/L", "ng/mL", 1000.0), ("ug/L", "mg/L", 0.001), ("day", "h", 24.0),
     ("h", "min", 60.0), ("min", "h", 1 / 60), ("mL/min", "L/h", 0.06), ("mg/dL", "g/L", 0.01),
     ("bpm", "1/h", 60.0), ("mg", "mg", 1.0), ("year", "day", 365.25), ("mmHg", "kPa", 0.133322387415)],
)  # fmt: skip
def test_conversion_factor(src: str, dst: str, factor: float) -> None:
    assert conversion_factor(src, dst) == factor


@pytest.mark.parametrize(("src", "dst"), [("mg", "h"), ("mg/L", "mg"), ("mg/kg", "dimensionless"),
                                          ("mg/kg/h", "1/h"), ("IU", "mg"), ("L/h", "1/h")])  # fmt: skip
def test_incompatible_units_raise(src: str, dst: str) -> None:
    msg = rf"column DV: cannot convert '{src}' \({kind_of(src)}\) to '{dst}' \({kind_of(dst)}\).*such as"
    with pytest.raises(UnitError, match=msg):
        conversion_factor(src, dst, where="column DV")
    with pytest.raises(UnitError, match=msg):
        convert([1.0], src, dst, where="column DV")


def test_conversion_factor_refuses_molar() -> None:
    with pytest.raises(UnitError, match=r"column DV: cannot convert 'mg/dL'.*need a molar mass.*convert\(\)"):
        conversion_factor("mg/dL", "mmol/L", where="column DV")


def test_conversion_factor_refuses_offset_units() -> None:
    with pytest.raises(UnitError, match=r"column TEMP: 'degC' -> 'degF' is not a single factor.*convert\(\)"):
        conversion_factor("degC", "degF", where="column TEMP")
    assert conversion_factor("degC", "degC") == 1.0


def test_convert_molar_needs_molar_mass() -> None:
    msg = r"column DV: cannot convert 'mg/dL' \(mass_concentration\) to 'mmol/L'.*molar_mass='180\.156 g/mol'"
    with pytest.raises(UnitError, match=msg):
        convert(180.156, "mg/dL", "mmol/L", where="column DV")


@pytest.mark.parametrize("molar_mass", [GLUCOSE, 180.156, "180.156", "0.180156 kg/mol", "180156 mg/mol"])
def test_convert_glucose_molar(molar_mass: str | float) -> None:
    assert convert(180.156, "mg/dL", "mmol/L", molar_mass=molar_mass) == 10.0
    assert convert(10.0, "mmol/L", "mg/dL", molar_mass=molar_mass) == 180.156
    np.testing.assert_allclose(convert([90.078, 360.312], "mg/dL", "mmol/L", molar_mass=molar_mass), [5, 20])


def test_convert_mass_to_substance() -> None:
    assert convert(180.156, "mg", "mmol", molar_mass=GLUCOSE) == 1.0
    assert convert(1.0, "mol", "g", molar_mass=GLUCOSE) == 180.156


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "abc", "5 mg", "180 g/L", True, [1.0]])
def test_convert_bad_molar_mass(bad: object) -> None:
    with pytest.raises(UnitError, match=r"column DV: molar_mass=.* is not a molar mass; give a positive number"):
        convert(1.0, "mg/dL", "mmol/L", molar_mass=bad, where="column DV")  # type: ignore[arg-type]


def test_convert_temperature() -> None:
    assert convert(15.0, "degC", "degF") == 59.0
    assert convert(113.0, "degF", "degC") == 45.0
    assert convert(37.0, "degC", "K") == 310.15
    assert convert(98.6, "degF", "degC") == pytest.approx(37.0, rel=1e-15)
    with pytest.raises(UnitError, match=r"column TEMP: cannot convert 'degC' \(temperature\) to 'mg'"):
        convert(37.0, "degC", "mg", where="column TEMP")


def test_convert_types() -> None:
    series = pd.Series([1.0, None, 2.5], index=["a", "b", "c"], name="AMT", dtype="Float64")
    out = convert(series, "mg", "ug")
    assert isinstance(out, pd.Series)
    assert out.name == "AMT" and list(out.index) == ["a", "b", "c"]
    np.testing.assert_array_equal(out.to_numpy(), [1000.0, np.nan, 2500.0])
    assert type(convert(3, "h", "min")) is float
    assert type(convert(np.float32(3), "h", "min")) is float
    result = convert([1, 2], "h", "min")
    assert isinstance(result, np.ndarray) and result.dtype == np.float64
    np.testing.assert_array_equal(convert(np.array([[1.0], [2.0]]), "g", "mg"), [[1000.0], [2000.0]])
    values = np.array([1.0, 2.0])
    convert(values, "mg", "mg")[0] = 99.0  # a new array, never a view of the input
    assert values[0] == 1.0


def test_convert_nan_stays_nan_and_inf_stays_inf() -> None:
    out = convert(np.array([np.nan, np.inf, -np.inf, 1.0]), "mg/dL", "mmol/L", molar_mass=GLUCOSE)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf and np.isfinite(out[3])


PAIRS = [("mg", "ug"), ("mg/L", "ng/mL"), ("h", "min"), ("day", "h"), ("ug/L", "mg/L"), ("mL/min", "L/h")]
FINITE = st.floats(allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize(("a", "b"), PAIRS)
@settings(deadline=None, max_examples=200)
@given(x=st.floats(min_value=1e-6, max_value=1e9))
def test_round_trip_within_two_ulp(a: str, b: str, x: float) -> None:
    # Each conversion is one correctly rounded multiply or divide (relative error <= u = 2**-53),
    # so the round trip is within (1 + u)**2 - 1 ~ 2.2e-16 relative; 4e-16 leaves margin.
    back = convert(convert(x, a, b), b, a)
    assert np.isclose(back, x, rtol=4e-16, atol=0.0)


@pytest.mark.parametrize(("a", "b"), [*PAIRS, ("mg/dL", "mmol/L"), ("mmol/L", "mg/dL"), ("mmHg", "kPa")])
@settings(deadline=None, max_examples=100)
@given(x=FINITE)
def test_finite_input_never_gives_nan(a: str, b: str, x: float) -> None:
    out = convert(np.array([x]), a, b, molar_mass=GLUCOSE)
    assert not np.isnan(out).any()
    assert np.sign(out[0]) == np.sign(x) or out[0] == 0.0


# ---------------------------------------------------------------------------------- dose per weight


def test_dose_per_weight_mg_per_kg() -> None:
    # The unit factor is exact (1); the product is floating point, hence the tolerance.
    amount = dose_per_weight_to_amount(4.02, "mg/kg", 79.6, "kg")
    assert type(amount) is float
    np.testing.assert_allclose(amount, 319.992, rtol=1e-12)


@pytest.mark.parametrize(
    ("dose", "dose_unit", "weight", "weight_unit", "to", "expected"),
    [(4.0, "ug/kg", 3500.0, "g", "mg", 0.014), (10.0, "mg/kg", 70.0, "kg", "g", 0.7),
     (2.0, "mg/kg", 3.5, "kg", "ug", 7000.0), (0.5, "mg/g", 2.0, "kg", "mg", 1000.0)],
)  # fmt: skip
def test_dose_per_weight_units(
    dose: float, dose_unit: str, weight: float, weight_unit: str, to: str, expected: float
) -> None:
    out = dose_per_weight_to_amount(dose, dose_unit, weight, weight_unit, to=to)
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def test_dose_per_weight_broadcasts() -> None:
    out = dose_per_weight_to_amount([1.0, 2.0], "mg/kg", pd.Series([10.0, 20.0]), "kg")
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [10.0, 40.0])


@pytest.mark.parametrize(
    ("dose_unit", "weight_unit", "to", "msg"),
    [("mg", "kg", "mg", r"column DOSE: unit 'mg' is a mass unit, but a mass_per_mass unit is needed"),
     ("mg/L", "kg", "mg", r"column DOSE: unit 'mg/L' is a mass_concentration unit, but a mass_per_mass"),
     ("mg/kg", "cm", "mg", r"column DOSE \(weight unit\): unit 'cm' is a length unit, but a mass unit"),
     ("mg/kg", "kg", "mL", r"column DOSE \(target unit\): unit 'mL' is a volume unit, but a mass unit")],
)  # fmt: skip
def test_dose_per_weight_rejects_kinds(dose_unit: str, weight_unit: str, to: str, msg: str) -> None:
    with pytest.raises(UnitError, match=msg):
        dose_per_weight_to_amount(1.0, dose_unit, 70.0, weight_unit, to=to, where="column DOSE")


# ------------------------------------------------------------------------------------------ plausibility


@pytest.mark.parametrize(
    ("column", "descriptor"),
    [(c, "body weight") for c in ["WT", "weight", "BW", "wgt", "BWT", "Wt_kg", "WT (kg)", "BODY WEIGHT"]]
    + [(c, "height") for c in ["HT", "height", "HT_CM"]]
    + [("AGE", "age"), ("age_yr", "age"), ("APGR", "apgar score"), ("apgar", "apgar score")]
    + [(c, "serum creatinine") for c in ["SCR", "creat", "SCREAT", "SCR_UMOL_L"]]
    + [(c, "creatinine clearance") for c in ["CRCL", "clcr", "CRCL_ML_MIN"]]
    + [(c, "glucose") for c in ["GLU", "glucose", "GL", "GLUCOSE_MG_DL", "Glucose (mg/dL)"]]
    + [("HR", "heart rate"), ("heart_rate", "heart rate"), ("HR_BL", "heart rate"), ("SBP", "systolic blood pressure")]
    + [("dbp", "diastolic blood pressure"), ("TEMP", "body temperature"), ("temp_c", "body temperature")]
    + [("ALB", "albumin"), ("albumin", "albumin"), ("BILI", "bilirubin"), ("Bilirubin", "bilirubin")]
    + [(c, None) for c in ["DOSE", "TIME", "DV", "AMT", "ID", "WT_RATIO", "", "HRX", "KG"]],
)
def test_descriptor_for(column: str, descriptor: str | None) -> None:
    assert descriptor_for(column) == descriptor


@pytest.mark.parametrize("descriptor", list(PLAUSIBLE_RANGES))
def test_plausible_ranges_table(descriptor: str) -> None:
    unit, low, high = PLAUSIBLE_RANGES[descriptor]
    assert format_unit(unit) == unit and low < high
    assert plausible_range(descriptor, unit) == (low, high)
    assert descriptor_for(descriptor) == descriptor


def test_plausible_ranges_read_only() -> None:
    with pytest.raises(TypeError):
        PLAUSIBLE_RANGES["body weight"] = ("kg", 0.0, 1.0)  # type: ignore[index]
    assert set(MOLAR_MASSES) <= set(PLAUSIBLE_RANGES)


@pytest.mark.parametrize(
    ("descriptor", "unit", "expected"),
    [("body weight", "g", (200.0, 400000.0)), ("WT", "kg", (0.2, 400.0)), ("age", "month", (0.0, 1500.0)),
     ("height", "m", (0.2, 2.6)), ("heart rate", "1/h", (900.0, 21000.0)), ("HR", "1/min", (15.0, 350.0)),
     ("creatinine clearance", "L/h", (0.06, 18.0)), ("albumin", "g/L", (5.0, 80.0)),
     ("body temperature", "degF", (59.0, 113.0)), ("serum creatinine", "mg/L", (0.5, 300.0))],
)  # fmt: skip
def test_plausible_range_converted(descriptor: str, unit: str, expected: tuple[float, float]) -> None:
    assert plausible_range(descriptor, unit) == expected


@pytest.mark.parametrize(
    ("descriptor", "unit", "low", "high"),
    [("glucose", "mmol/L", 10 / 18.0156, 1500 / 18.0156), ("serum creatinine", "umol/L", 4.42, 2652.0),
     ("bilirubin", "umol/L", 0.855, 1026.24)],
)  # fmt: skip
def test_plausible_range_molar(descriptor: str, unit: str, low: float, high: float) -> None:
    np.testing.assert_allclose(plausible_range(descriptor, unit), (low, high), rtol=2e-3)


@pytest.mark.parametrize(("descriptor", "unit", "kind"), [("glucose", "kg", "mass_concentration"),
                                                          ("body weight", "mg/kg", "mass"),
                                                          ("albumin", "mmol/L", "mass_concentration"),
                                                          ("heart rate", "min", "rate_constant")])  # fmt: skip
def test_plausible_range_incompatible(descriptor: str, unit: str, kind: str) -> None:
    with pytest.raises(UnitError, match=rf"plausible range of '{descriptor}': cannot express .* {kind} unit"):
        plausible_range(descriptor, unit)


def test_plausible_range_unknown_descriptor() -> None:
    with pytest.raises(UnitError, match=r"unknown quantity 'shoe size'; known: body weight, height"):
        plausible_range("shoe size", "cm")


def test_plausible_range_bad_unit_names_descriptor() -> None:
    with pytest.raises(UnitError, match=r"plausible range of 'height': unknown unit: 'furlongz'"):
        plausible_range("height", "furlongz")


# ------------------------------------------------------------------------------------------------ module


def test_public_api() -> None:
    assert set(units.__all__) <= set(dir(units))
    assert {"ureg", "parse_unit", "format_unit", "kind_of", "require_kind", "conversion_factor", "convert",
            "dose_per_weight_to_amount"} <= set(units.__all__)  # fmt: skip
    assert set(plausibility.__all__) == {"MOLAR_MASSES", "PLAUSIBLE_RANGES", "descriptor_for", "plausible_range"}
    assert set(plausibility.__all__) <= set(dir(plausibility))


def test_import_is_light() -> None:
    code = "import sys, bayestwin.units; print(sorted(m for m in ('jax', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
