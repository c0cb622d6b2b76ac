"""From an EventTable to padded cohort arrays: shapes, units, dose-time ordering, ADDL/EVID/SS and errors.

Expected values are exact: they are read off the source rows, or are the correctly rounded unit conversion
(``bayestwin.units.convert``) of them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import bayestwin.dynamics  # noqa: F401  - enables jax_enable_x64 before any array is made
from bayestwin.data import load_dataset, read_nonmem
from bayestwin.data.datasets import dataset_path
from bayestwin.exceptions import DataValidationError, SpecError
from bayestwin.inference.arrays import SEGMENT_STARTS, CohortArrays, cohort_arrays
from bayestwin.models import get_model
from bayestwin.spec import add_covariate_effect, example_spec
from bayestwin.units import convert

MODEL = get_model("pk.one_cmt_oral")
UNITS = {"time": "h", "amt": "mg", "dv": "mg/L"}
THEO_UNITS = {"time": "h", "amt": "mg", "dv": "mg/L", "WT": "kg"}


@pytest.fixture(scope="module")
def theo() -> CohortArrays:
    return cohort_arrays(load_dataset("theo_sd"), example_spec(), MODEL)


@pytest.fixture(scope="module")
def theo_raw() -> pd.DataFrame:
    return pd.read_csv(dataset_path("theo_sd"))


def _read_theo(raw: pd.DataFrame, **units: str) -> CohortArrays:
    table = read_nonmem(raw, evid_coding="rxode2", units=THEO_UNITS | units)
    return cohort_arrays(table, example_spec(), MODEL)


def _arrays(rows: dict[str, list], spec: object = None, units: dict[str, str] | None = None, **kw: int) -> CohortArrays:
    table = read_nonmem(pd.DataFrame(rows), units=UNITS if units is None else units)
    return cohort_arrays(table, example_spec() if spec is None else spec, MODEL, **kw)


# --- the bundled theophylline data ----------------------------------------------------------------
def test_theo_shapes_and_dtypes(theo: CohortArrays) -> None:
    assert theo.patients == tuple(range(1, 13)) and theo.n_patients == 12
    # one dose and 11 samples per patient: buckets 2**k or 3 * 2**k, doses at least 1, observations 8
    for name, arr in theo.doses._asdict().items():
        assert arr.shape == (12, 1), name
    for name, arr in theo.obs._asdict().items():
        assert arr.shape == (12, 12), name
    assert {str(a.dtype) for a in (theo.doses.time, theo.doses.amt, theo.doses.rate, theo.doses.ii)} == {"float64"}
    assert {str(a.dtype) for a in (theo.obs.time, theo.obs.value, theo.obs.limit)} == {"float64"}
    assert {str(a.dtype) for a in (theo.doses.cmt, theo.doses.ss, theo.obs.cens, theo.obs.output)} == {"int32"}
    assert str(theo.doses.mask.dtype) == str(theo.obs.mask.dtype) == str(theo.doses.reset.dtype) == "bool"
    assert theo.units == {"time": "h", "amt": "mg", "conc": "mg/L"}
    assert theo.covariates == {}  # the example spec has no covariate effects


def test_theo_doses(theo: CohortArrays) -> None:
    frame = load_dataset("theo_sd").frame
    doses = frame[frame["evid"] == 1]
    d = {k: np.asarray(v) for k, v in theo.doses._asdict().items()}
    np.testing.assert_array_equal(d["amt"][:, 0], doses["amt"].to_numpy())
    np.testing.assert_array_equal(d["time"][:, 0], 0.0)
    np.testing.assert_array_equal(d["cmt"][:, 0], 0)  # CMT 1 is the depot, index 0
    np.testing.assert_array_equal(d["mask"], np.ones((12, 1), dtype=bool))
    for name, pad in {"time": np.inf, "amt": 0.0, "rate": 0.0, "ii": 0.0, "cmt": 0, "ss": 0, "reset": False}.items():
        np.testing.assert_array_equal(d[name][:, 1:], pad, err_msg=name)
    for name in ("rate", "ii", "ss", "reset"):
        np.testing.assert_array_equal(d[name][:, 0], 0, err_msg=name)


def test_theo_observations(theo: CohortArrays) -> None:
    frame = load_dataset("theo_sd").frame
    obs = frame[(frame["evid"] == 0) & (frame["mdv"] == 0)]
    table = theo.observations
    assert len(table) == 132
    assert list(table.columns) == ["patient", "patient_index", "slot", "time", "output", "dv", "cens", "source_row"]
    assert set(table["output"]) == {"conc"}
    np.testing.assert_array_equal(table["patient"], obs["id"])
    np.testing.assert_array_equal(table["patient_index"], obs["id"] - 1)
    np.testing.assert_array_equal(table["slot"], np.tile(np.arange(11), 12))
    np.testing.assert_array_equal(table["time"], obs["time"])
    np.testing.assert_array_equal(table["dv"], obs["dv"])
    np.testing.assert_array_equal(table["cens"], 0)
    np.testing.assert_array_equal(table["source_row"], obs.index)
    # the padded arrays hold the same values at (patient_index, slot)
    o = {k: np.asarray(v) for k, v in theo.obs._asdict().items()}
    at = (table["patient_index"].to_numpy(), table["slot"].to_numpy())
    np.testing.assert_array_equal(o["value"][at], obs["dv"])
    np.testing.assert_array_equal(o["time"][at], obs["time"])  # samples at t = 0 follow the dose: not moved
    np.testing.assert_array_equal(o["mask"], np.broadcast_to(np.arange(12) < 11, (12, 12)))
    assert int(o["mask"].sum()) == 132
    for name, pad in {"time": np.inf, "value": 0.0, "cens": 0, "output": 0}.items():
        np.testing.assert_array_equal(o[name][:, 11:], pad, err_msg=name)
    assert np.isnan(o["limit"]).all()


def test_theo_padding_can_be_chosen(theo: CohortArrays) -> None:
    a = cohort_arrays(load_dataset("theo_sd"), example_spec(), MODEL, n_dose=2, n_obs=11)
    assert a.doses.time.shape == (12, 2) and a.obs.time.shape == (12, 11)
    np.testing.assert_array_equal(np.asarray(a.obs.value), np.asarray(theo.obs.value)[:, :11])
    with pytest.raises(ValueError, match=r"padded sizes n_dose=1, n_obs=10 are smaller than the data \(1, 11\)"):
        cohort_arrays(load_dataset("theo_sd"), example_spec(), MODEL, n_obs=10)
    with pytest.raises(ValueError, match=r"padded sizes n_dose=1, n_obs=16 are smaller than the data \(2, 1\)"):
        _arrays({"ID": [1, 1, 1], "TIME": [0, 1, 2], "AMT": [100, 100, 0], "DV": [".", ".", 2.0],
                 "EVID": [1, 1, 0]}, n_dose=1, n_obs=16)


# --- units ----------------------------------------------------------------------------------------
def test_dv_in_ug_per_l_is_converted_exactly(theo: CohortArrays, theo_raw: pd.DataFrame) -> None:
    raw = theo_raw.assign(DV=np.round(theo_raw["DV"] * 1000))  # DVs have <= 2 decimals: integers in ug/L
    a = _read_theo(raw, dv="ug/L")
    # x / 1000 of an exact integer is correctly rounded: the very double of the mg/L value
    np.testing.assert_array_equal(np.asarray(a.obs.value), np.asarray(theo.obs.value))
    np.testing.assert_array_equal(a.observations["dv"], theo.observations["dv"])


def test_amounts_in_g_are_converted(theo: CohortArrays, theo_raw: pd.DataFrame) -> None:
    raw = theo_raw.assign(AMT=theo_raw["AMT"] / 1000)
    a = _read_theo(raw, amt="g")
    # exact here: for these 12 amounts, (amt / 1000) * 1000 rounds back to amt
    np.testing.assert_array_equal(np.asarray(a.doses.amt), np.asarray(theo.doses.amt))


def test_amounts_in_ug_are_divided_exactly(theo: CohortArrays, theo_raw: pd.DataFrame) -> None:
    # AMT in ug holds exact integers (319992 ...). The mg value is their correctly rounded quotient by 1000,
    # which convert() computes; multiplying by the rounded factor 0.001 is one ulp off for 267840 and 320650.
    raw = theo_raw.assign(AMT=np.round(theo_raw["AMT"] * 1000))
    a = _read_theo(raw, amt="ug")
    expected = convert(raw["AMT"].to_numpy()[raw["EVID"].to_numpy() == 101], "ug", "mg")
    np.testing.assert_array_equal(expected, np.asarray(theo.doses.amt)[:, 0])  # the truth, as read in mg
    np.testing.assert_array_equal(np.asarray(a.doses.amt)[:, 0], expected)


def test_times_in_min_are_divided_exactly() -> None:
    # 23 min is 23/60 h; its correctly rounded value is 23 / 60, not 23 * fl(1/60) (one ulp apart)
    times = [0.0, 23.0, 31.0, 46.0]
    assert any(t * (1 / 60) != t / 60 for t in times)  # the case this test is about
    a = _arrays({"ID": [1] * 4, "TIME": times, "AMT": [100, 0, 0, 0], "DV": [".", 1.0, 2.0, 3.0],
                 "EVID": [1, 0, 0, 0]}, units=UNITS | {"time": "min"})
    np.testing.assert_array_equal(np.asarray(a.obs.time)[0, :3], convert(np.array(times[1:]), "min", "h"))


def test_spec_units_scale_amounts_and_concentrations(theo: CohortArrays) -> None:
    spec = dataclasses.replace(example_spec(), units=(("time", "h"), ("amt", "ug"), ("conc", "ug/L")))
    a = cohort_arrays(load_dataset("theo_sd"), spec, MODEL)
    assert a.units == {"time": "h", "amt": "ug", "conc": "ug/L"}
    # x 1000 is an integer factor: the correctly rounded product of the stored value, as convert() gives
    amt, base_amt = np.asarray(a.doses.amt), np.asarray(theo.doses.amt)
    np.testing.assert_array_equal(amt, base_amt * 1000.0)
    np.testing.assert_array_equal(amt[:, 0], convert(base_amt[:, 0], "mg", "ug"))
    np.testing.assert_array_equal(np.asarray(a.obs.value), np.asarray(theo.obs.value) * 1000.0)
    np.testing.assert_array_equal(a.observations["dv"], theo.observations["dv"] * 1000.0)
    np.testing.assert_array_equal(np.asarray(a.obs.time), np.asarray(theo.obs.time))


def test_spec_time_unit_scales_times_rates_and_intervals() -> None:
    spec = dataclasses.replace(example_spec(), units=(("time", "min"), ("amt", "mg"), ("conc", "mg/L")))
    a = _arrays({"ID": [1] * 3, "TIME": [0.0, 0.25, 1.5], "AMT": [100, 0, 0], "RATE": [50.0, 0, 0],
                 "II": [12.0, 0, 0], "SS": [1, 0, 0], "DV": [".", 1.0, 2.0], "EVID": [1, 0, 0]}, spec=spec)
    assert a.units["time"] == "min"
    np.testing.assert_array_equal(np.asarray(a.obs.time)[0, :2], [15.0, 90.0])
    assert float(a.doses.ii[0, 0]) == 720.0
    assert float(a.doses.rate[0, 0]) == 50.0 / 60.0  # mg/h -> mg/min, one division


def test_infusion_duration_gives_rate() -> None:
    a = _arrays({"ID": [1] * 2, "TIME": [0.0, 1.0], "AMT": [100, 0], "DUR": [4.0, 0], "DV": [".", 1.0],
                 "EVID": [1, 0]})
    assert float(a.doses.rate[0, 0]) == 25.0


def test_censoring_and_limit_are_carried_and_converted() -> None:
    rows = {"ID": [1] * 3, "TIME": [0, 1, 2], "AMT": [100, 0, 0], "DV": [".", 500.0, 2000.0], "EVID": [1, 0, 0],
            "CENS": [0, 1, 0], "LIMIT": [".", 125.0, "."]}
    a = _arrays(rows, units=UNITS | {"dv": "ug/L"})
    np.testing.assert_array_equal(np.asarray(a.obs.cens)[0, :2], [1, 0])
    np.testing.assert_array_equal(np.asarray(a.obs.value)[0, :2], [0.5, 2.0])
    assert float(a.obs.limit[0, 0]) == 0.125 and np.isnan(float(a.obs.limit[0, 1]))
    assert a.observations["cens"].tolist() == [1, 0]


# --- event handling -------------------------------------------------------------------------------
def test_sample_before_a_dose_at_the_same_time_is_a_trough() -> None:
    a = _arrays({"ID": [1] * 5, "TIME": [0.0, 12.0, 12.0, 12.0, 13.0], "AMT": [100, 0, 100, 0, 0],
                 "DV": [".", 1.0, ".", 2.0, 3.0], "EVID": [1, 0, 1, 0, 0]})
    t = np.asarray(a.obs.time)[0, :3]
    assert t[0] == np.nextafter(12.0, -np.inf)  # recorded before the 12 h dose: just before it
    assert t[1] == 12.0 and t[2] == 13.0  # recorded after it: at the dose time
    np.testing.assert_array_equal(np.asarray(a.doses.time)[0, :2], [0.0, 12.0])
    assert a.observations["time"].tolist() == [12.0, 12.0, 13.0]  # the labels keep the recorded time


def test_sample_before_a_dose_is_per_patient() -> None:
    # patient 2's dose at 12 h does not move patient 1's sample at 12 h
    a = _arrays({"ID": [1, 1, 2, 2, 2], "TIME": [0.0, 12.0, 0.0, 12.0, 12.0], "AMT": [100, 0, 100, 0, 100],
                 "DV": [".", 1.0, ".", 2.0, "."], "EVID": [1, 0, 1, 0, 1]})
    assert float(a.obs.time[0, 0]) == 12.0
    assert float(a.obs.time[1, 0]) == np.nextafter(12.0, -np.inf)


def test_addl_doses_are_expanded() -> None:
    a = _arrays({"ID": [1, 1], "TIME": [0.0, 30.0], "AMT": [100, 0], "II": [12.0, 0], "ADDL": [2, 0],
                 "DV": [".", 1.0], "EVID": [1, 0]})
    d = {k: np.asarray(v)[0] for k, v in a.doses._asdict().items()}
    np.testing.assert_array_equal(d["time"], [0.0, 12.0, 24.0])  # bucket 3: no padding
    np.testing.assert_array_equal(d["amt"], [100.0] * 3)
    np.testing.assert_array_equal(d["mask"], True)
    np.testing.assert_array_equal(d["ii"][:3], [12.0, 0.0, 0.0])  # the parent keeps its II
    np.testing.assert_array_equal(d["reset"], False)


def test_addl_expansion_sets_the_dose_bucket() -> None:
    a = _arrays({"ID": [1, 1], "TIME": [0.0, 300.0], "AMT": [100, 0], "II": [12.0, 0], "ADDL": [9, 0],
                 "DV": [".", 1.0], "EVID": [1, 0]})
    assert a.doses.time.shape == (1, 12)  # 10 doses
    np.testing.assert_array_equal(np.asarray(a.doses.time)[0, :10], 12.0 * np.arange(10))


def test_evid_3_and_4_reset() -> None:
    a = _arrays({"ID": [1] * 5, "TIME": [0.0, 1.0, 5.0, 6.0, 7.0], "AMT": [100, 0, 0, 50, 0],
                 "DV": [".", 1.0, ".", ".", 2.0], "EVID": [1, 0, 3, 4, 0]})
    d = {k: np.asarray(v)[0, :3] for k, v in a.doses._asdict().items()}
    np.testing.assert_array_equal(d["time"], [0.0, 5.0, 6.0])
    np.testing.assert_array_equal(d["amt"], [100.0, 0.0, 50.0])  # EVID 3: a reset record with no amount
    np.testing.assert_array_equal(d["reset"], [False, True, True])
    np.testing.assert_array_equal(d["mask"], True)
    np.testing.assert_array_equal(np.asarray(a.obs.time)[0, :2], [1.0, 7.0])


def test_steady_state_1_resets_and_2_does_not() -> None:
    a = _arrays({"ID": [1] * 3, "TIME": [0.0, 1.0, 2.0], "AMT": [100, 100, 0], "II": [12.0, 12.0, 0],
                 "SS": [1, 2, 0], "DV": [".", ".", 2.0], "EVID": [1, 1, 0]})
    d = {k: np.asarray(v)[0, :2] for k, v in a.doses._asdict().items()}
    np.testing.assert_array_equal(d["ss"], [1, 2])
    np.testing.assert_array_equal(d["reset"], [True, False])
    np.testing.assert_array_equal(d["ii"], [12.0, 12.0])


def test_dose_compartment_mapping() -> None:
    # CMT 1 -> depot (0), CMT 2 -> central (1); CMT 0 or missing -> the model's default (depot)
    a = _arrays({"ID": [1] * 4, "TIME": [0.0, 1.0, 2.0, 3.0], "AMT": [100, 50, 25, 0], "CMT": [1, 2, 0, 2],
                 "DV": [".", ".", ".", 2.0], "EVID": [1, 1, 1, 0]})
    np.testing.assert_array_equal(np.asarray(a.doses.cmt)[0, :3], [0, 1, 0])


# --- covariates -----------------------------------------------------------------------------------
def test_baseline_covariates() -> None:
    table = load_dataset("theo_sd")
    spec = add_covariate_effect(example_spec(), "cl", "WT", reference=70.0, fixed=0.75)
    a = cohort_arrays(table, spec, MODEL)
    first = table.frame.groupby("id", sort=False)["WT"].first()
    np.testing.assert_array_equal(a.covariates["WT"], first.to_numpy())
    assert list(a.covariates) == ["WT"]
    # the effect's unit converts (kg -> g: x 1000, exact here as for convert())
    spec_g = add_covariate_effect(example_spec(), "cl", "WT", reference=70000.0, fixed=0.75, unit="g")
    np.testing.assert_array_equal(cohort_arrays(table, spec_g, MODEL).covariates["WT"],
                                  convert(first.to_numpy(), "kg", "g"))


def test_shared_covariate_is_extracted_once() -> None:
    spec = add_covariate_effect(add_covariate_effect(example_spec(), "cl", "WT", reference=70.0, fixed=0.75),
                                "v", "WT", reference=70.0, fixed=1.0)
    a = cohort_arrays(load_dataset("theo_sd"), spec, MODEL)
    assert list(a.covariates) == ["WT"]


def test_covariate_varying_within_a_patient_gives_segments() -> None:
    spec = add_covariate_effect(example_spec(), "cl", "WT", reference=70.0, fixed=0.75)
    rows = {"ID": [1, 1, 1, 2, 2, 2], "TIME": [0, 1, 2, 0, 1, 2], "AMT": [100, 0, 0, 100, 0, 0],
            "DV": [".", 2.0, 1.0, ".", 3.0, 2.0], "EVID": [1, 0, 0, 1, 0, 0], "WT": [70, 70, 70, 60, 65, 65]}
    arrays = _arrays(rows, spec=spec, units=UNITS | {"WT": "kg"})
    # patient 2 weighs 60 kg until 1 h, then 65 kg (last value carried forward); patient 1 is constant
    np.testing.assert_array_equal(arrays.covariates[SEGMENT_STARTS], [[-np.inf, np.inf], [-np.inf, 1.0]])
    np.testing.assert_array_equal(arrays.covariates["WT"], [[70.0, 70.0], [60.0, 65.0]])
    assert "time_varying" in arrays.features


def test_text_covariate_raises() -> None:
    spec = add_covariate_effect(example_spec(), "cl", "SEX", form="indicator", reference=0.5)
    rows = {"ID": [1, 1], "TIME": [0, 1], "AMT": [100, 0], "DV": [".", 2.0], "EVID": [1, 0], "SEX": ["M", "M"]}
    with pytest.raises(SpecError, match=r"covariate 'SEX' holds text codes; covariate effects need numbers"):
        _arrays(rows, spec=spec)


def test_covariate_unit_without_data_unit_raises() -> None:
    spec = add_covariate_effect(example_spec(), "cl", "CRCL", form="linear", reference=100.0, unit="mL/min")
    rows = {"ID": [1, 1], "TIME": [0, 1], "AMT": [100, 0], "DV": [".", 2.0], "EVID": [1, 0], "CRCL": [90, 90]}
    with pytest.raises(SpecError, match=r"the spec wants 'CRCL' in mL/min but the data declare no unit for it"):
        _arrays(rows, spec=spec)


def test_missing_covariate_is_a_data_error() -> None:
    spec = add_covariate_effect(example_spec(), "cl", "WT", reference=70.0, fixed=0.75)
    rows = {"ID": [1, 1], "TIME": [0, 1], "AMT": [100, 0], "DV": [".", 2.0], "EVID": [1, 0]}
    with pytest.raises(DataValidationError, match=r"\[C001\] column WT: required covariate 'WT'") as err:
        _arrays(rows, spec=spec)
    assert err.value.report.rules() == ["C001"]


# --- refused data ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [-1, -2])
def test_modelled_rate_raises(rate: int) -> None:
    rows = {"ID": [1, 1], "TIME": [0, 1], "AMT": [100, 0], "RATE": [rate, 0], "DV": [".", 2.0], "EVID": [1, 0]}
    with pytest.raises(SpecError, match=r"RATE -1/-2 \(modelled infusion rate or duration\) is not supported"):
        _arrays(rows)


def test_compartment_not_in_model_raises() -> None:
    rows = {"ID": [1, 1], "TIME": [0, 1], "AMT": [100, 0], "CMT": [3, 2], "DV": [".", 2.0], "EVID": [1, 0]}
    with pytest.raises(DataValidationError, match=r"\[E006\] patient 1, row 0, column CMT \(value 3\): "
                                                  r"compartment 3 is not in the model") as err:
        _arrays(rows)
    assert err.value.report.rules() == ["E006"]
