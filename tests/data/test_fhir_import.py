"""FHIR R4 bundles -> the canonical event table (bundles built here, not downloaded)."""

from __future__ import annotations

import copy
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bayestwin._extras import require_all_deps
from bayestwin.exceptions import DataValidationError, InputError

if not require_all_deps():  # CI sets BAYESTWIN_REQUIRE_ALL_DEPS=1: a missing extra fails there
    pytest.importorskip("fhir.resources", reason="needs the [fhir] extra")

from bayestwin.data.fhir import read_fhir, read_fhir_plan

UCUM, LOINC, SNOMED = "http://unitsofmeasure.org", "http://loinc.org", "http://snomed.info/sct"
THEO = "4049-3"  # theophylline [mass/volume] in serum or plasma
OBS = {THEO: (1, "mg/L")}
PID, MRN = "pat-raw-7", "MRN-0042"


def _q(value: Any, code: str, **extra: Any) -> dict[str, Any]:
    return {"value": value, "system": UCUM, "code": code, **extra}


def _adm(rid: str, dose: dict[str, Any] | None, *, when: str | None = None, period: tuple[str, str] | None = None,
         route: dict[str, Any] | None = None, rate: dict[str, Any] | None = None,
         status: str = "completed") -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "MedicationAdministration", "id": rid, "status": status,
                           "medicationCodeableConcept": {"text": "theophylline"},
                           "subject": {"reference": f"Patient/{PID}"}}
    if period is not None:
        res["effectivePeriod"] = {"start": period[0], "end": period[1]}
    else:
        res["effectiveDateTime"] = when
    dosage: dict[str, Any] = {}
    if dose is not None:
        dosage["dose"] = dose
    if route is not None:
        dosage["route"] = route
    if rate is not None:
        dosage["rateQuantity"] = rate
    res["dosage"] = dosage
    return res


def _lab(rid: str, when: str, quantity: dict[str, Any] | None, code: str = THEO, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Observation", "id": rid, "status": "final",
                           "code": {"coding": [{"system": LOINC, "code": code}]},
                           "subject": {"reference": f"Patient/{PID}"}, "effectiveDateTime": when, **extra}
    if quantity is not None:
        res["valueQuantity"] = quantity
    return res


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


IV = {"coding": [{"system": SNOMED, "code": "47625008", "display": "Intravenous route"}]}
ORAL = {"coding": [{"system": SNOMED, "code": "26643006"}]}


def _complete() -> dict[str, Any]:
    return _bundle(
        {"resourceType": "Patient", "id": PID, "identifier": [{"system": "urn:mrn", "value": MRN}],
         "gender": "female", "birthDate": "1990-01-01"},
        _lab("w1", "2024-03-01T07:30:00Z", _q(154, "[lb_av]"), code="29463-7"),
        _lab("h1", "2024-03-01T07:30:00Z", _q(168, "cm"), code="8302-2"),
        _adm("a1", _q(0.32, "g"), when="2024-03-01T09:00:00+01:00", route=ORAL),  # 08:00 UTC: the origin
        _adm("a2", _q(500, "mg"), period=("2024-03-01T20:00:00Z", "2024-03-01T20:30:00Z"), route=IV),
        _adm("a3", _q(100, "mg"), when="2024-03-02T08:00:00Z", route={"text": "IV push"}),
        _adm("a4", _q(320, "mg"), when="2024-03-01T12:00:00Z", route=ORAL, status="entered-in-error"),
        _lab("o1", "2024-03-01T10:00:00Z", _q(7.4, "mg/L")),
        _lab("o2", "2024-03-01T14:00:00Z", _q(6100, "ug/L")),
        _lab("o3", "2024-03-01T21:00:00Z", _q(12.5, "ug/mL")),
        _lab("o4", "2024-03-03T08:00:00Z", _q(0.5, "mg/L", comparator="<")),
        _lab("x1", "2024-03-01T10:00:00Z", _q(72, "/min"), code="8867-4"),  # not in the mapping: ignored
        {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order",
         "medicationCodeableConcept": {"text": "theophylline"}, "subject": {"reference": f"Patient/{PID}"},
         "dosageInstruction": [{"route": ORAL, "timing": {"repeat": {
             "frequency": 2, "period": 1, "periodUnit": "d",
             "boundsPeriod": {"start": "2024-03-04T08:00:00Z", "end": "2024-03-06T08:00:00Z"}}},
             "doseAndRate": [{"doseQuantity": _q(0.3, "g")}]}]},
    )


def test_complete_bundle_gives_the_exact_event_table() -> None:
    table = read_fhir(_complete(), observations=OBS)
    f = table.frame
    expected = pd.DataFrame({
        "id": [MRN] * 7,
        "time": [0.0, 2.0, 6.0, 12.0, 13.0, 24.0, 48.0],
        "evid": [1, 0, 0, 1, 0, 1, 0],
        "amt": [320.0, 0.0, 0.0, 500.0, 0.0, 100.0, 0.0],
        "rate": [0.0, 0.0, 0.0, 1000.0, 0.0, 0.0, 0.0],
        "dur": [0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0],
        "cmt": ["depot", 0, 0, "central", 0, "central", 0],
        "dv": [math.nan, 7.4, 6.1, math.nan, 12.5, math.nan, 0.5],
        "cens": [0, 0, 0, 0, 0, 0, 1],
        "dvid": [1] * 7,
    }, index=pd.Index(["MedicationAdministration/a1", "Observation/o1", "Observation/o2",
                       "MedicationAdministration/a2", "Observation/o3", "MedicationAdministration/a3",
                       "Observation/o4"]))
    got = f[list(expected.columns)]
    assert list(got.index) == list(expected.index)
    for col in expected.columns:
        assert got[col].tolist() == pytest.approx(expected[col].tolist(), nan_ok=True) if col not in (
            "id", "cmt") else got[col].tolist() == expected[col].tolist(), col
    assert f["mdv"].tolist() == [1, 0, 0, 1, 0, 1, 0]
    assert f.loc["Observation/o4", "lloq"] == 0.5 and f["lloq"].drop("Observation/o4").isna().all()
    # demographics: sex, age at the first event (08:00 UTC on 2024-03-01), first weight and height
    age = (pd.Timestamp("2024-03-01T08:00Z") - pd.Timestamp("1990-01-01", tz="UTC")).total_seconds() / (
        365.25 * 86400)
    assert table.covariates == ("SEX", "AGE", "WT", "HT")
    assert set(f["SEX"]) == {"female"} and np.allclose(f["AGE"], age, rtol=0, atol=1e-12)
    assert np.allclose(f["WT"], 154 * 0.45359237, rtol=1e-15) and (f["HT"] == 168.0).all()
    assert dict(table.units) == {"time": "h", "amt": "mg", "dv": "mg/L", "AGE": "year", "WT": "kg", "HT": "cm"}
    # row accounting: 3 + 1 administrations and 4 results in; the entered-in-error dose set aside, with its reason
    acc = table.accounting
    assert (acc.rows_in, acc.rows_used) == (8, 7)
    assert acc.reasons() == {"FHIR status entered-in-error": 1}
    assert acc.excluded["row"].tolist() == ["MedicationAdministration/a4"]
    assert table.report.ok and len(table.report) == 0


def test_planned_doses_are_expanded_on_the_table_clock() -> None:
    plan = read_fhir_plan(_complete(), observations=OBS)
    assert plan["time"].tolist() == [72.0, 84.0, 96.0, 108.0]  # 2/day from day 4 08:00, before day 6 08:00
    assert set(plan["amt"]) == {300.0} and set(plan["cmt"]) == {"depot"} and set(plan["id"]) == {MRN}
    assert plan["dose_number"].tolist() == [1, 2, 3, 4] and set(plan["fhir_status"]) == {"active"}
    for end, n in (("2024-03-06T07:00:00Z", 4), ("2024-03-06T08:00:01Z", 5)):  # doses strictly before the end
        doc = copy.deepcopy(_complete())
        doc["entry"][-1]["resource"]["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["end"] = end
        assert len(read_fhir_plan(doc, observations=OBS)) == n
    counted = copy.deepcopy(_complete())
    repeat = counted["entry"][-1]["resource"]["dosageInstruction"][0]["timing"]["repeat"]
    repeat.update(count=3, frequency=1)
    del repeat["boundsPeriod"]["end"]
    assert read_fhir_plan(counted, observations=OBS)["time"].tolist() == [72.0, 96.0, 120.0]


def test_infusion_from_rate_quantity_and_unit_conversion() -> None:
    doc = _bundle(_adm("a1", _q(0.5, "g"), when="2024-03-01T08:00:00Z", route=IV, rate=_q(250, "mg/h")),
                  _lab("o1", "2024-03-01T09:30:00Z", _q(2500, "ng/mL")))
    f = read_fhir(doc, observations=OBS).frame
    assert f[["amt", "rate", "dur"]].iloc[0].tolist() == [500.0, 250.0, 2.0]
    assert f["dv"].iloc[1] == 2.5 and f["time"].iloc[1] == 1.5


def test_pseudonymised_ids_never_hold_the_raw_identifier() -> None:
    from bayestwin.store import Pseudonymizer

    pseudo = Pseudonymizer(b"k" * 32)
    table = read_fhir(_complete(), observations=OBS, pseudonymizer=pseudo)
    assert set(table.frame["id"]) == {pseudo(MRN)}
    text = table.frame.to_csv() + table.accounting.excluded.to_csv() + table.describe() + repr(table.notes)
    assert MRN not in text and PID not in text
    plan = read_fhir_plan(_complete(), observations=OBS, pseudonymizer=pseudo)
    assert set(plan["id"]) == {pseudo(MRN)}
    # without a Patient resource the subject reference is the key, pseudonymised too
    no_patient = _bundle(_adm("a1", _q(1, "mg"), when="2024-03-01T08:00:00Z"))
    assert read_fhir(no_patient, observations=OBS, pseudonymizer=pseudo).frame["id"].tolist() == [pseudo(PID)]


@pytest.mark.parametrize(("resource", "where"), [
    (_adm("a1", _q(5, "mL"), when="2024-03-01T08:00:00Z"), "MedicationAdministration/a1.dosage.dose"),
    (_adm("a1", None, when="2024-03-01T08:00:00Z"), "MedicationAdministration/a1.dosage.dose.value"),
    (_adm("a1", _q(5, "mg"), when="2024-03-01T08:00:00Z", route={"text": "intrathecal"}),
     "MedicationAdministration/a1.dosage.route"),
    (_adm("a1", _q(5, "mg"), when="2024-03-01T08:00:00Z", route=IV, rate=_q(10, "mL/h")),
     "MedicationAdministration/a1.dosage.rateQuantity"),
    (_adm("a1", _q("abc", "mg"), when="2024-03-01T08:00:00Z"), "MedicationAdministration/a1.dosage.dose.value"),
    (_adm("a1", _q(5, "mg"), when="2024-03-01T08:00:00"), "MedicationAdministration/a1.effectiveDateTime"),
    (_lab("o1", "2024-03-01T08:00:00Z", None), "Observation/o1.valueQuantity.value"),
    (_lab("o1", "2024-03-01T08:00:00Z", _q(3, "mmol/L")), "Observation/o1.valueQuantity.code"),
    (_lab("o1", "2024-03-01T08:00:00Z", _q(3, "")), "Observation/o1.valueQuantity.code"),
])
def test_malformed_fields_name_the_resource_and_json_path(resource: dict[str, Any], where: str) -> None:
    with pytest.raises(InputError) as info:
        read_fhir(_bundle(resource), observations=OBS)
    assert where in str(info.value)


def test_absent_and_retracted_results_are_set_aside_with_a_reason() -> None:
    doc = _bundle(_adm("a1", _q(5, "mg"), when="2024-03-01T08:00:00Z"),
                  _lab("o1", "2024-03-01T09:00:00Z", None, dataAbsentReason={"text": "haemolysed"}),
                  {**_lab("o2", "2024-03-01T10:00:00Z", _q(1.0, "mg/L")), "status": "entered-in-error"},
                  _lab("o3", "2024-03-01T11:00:00Z", _q(1.0, "mg/L")))
    table = read_fhir(doc, observations=OBS)
    assert list(table.frame.index) == ["MedicationAdministration/a1", "Observation/o3"]
    assert table.accounting.reasons() == {"no value (haemolysed)": 1, "FHIR status entered-in-error": 1}
    assert table.accounting.rows_in == 4


def test_event_rules_apply_as_for_other_readers() -> None:
    doc = _bundle(_adm("a1", _q(5, "mg"), when="2024-03-01T08:00:00Z"),
                  _lab("o1", "2024-03-01T09:00:00Z", _q(-1.0, "mg/L", comparator="<")))
    with pytest.raises(DataValidationError):  # a negative LLOQ breaks an observation rule
        read_fhir(doc, observations={THEO: (1, "mg/L")})


def test_fhir_table_fits_the_theophylline_twin_data_path() -> None:
    import importlib.util
    from pathlib import Path

    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.models import get_model

    path = Path(__file__).resolve().parents[2] / "model_specs" / "theophylline.py"
    module_spec = importlib.util.spec_from_file_location("theophylline_spec", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    spec = module.spec()
    arrays = cohort_arrays(read_fhir(_complete(), observations={THEO: (1, "mg/L")}), spec, get_model(spec.model))
    assert len(arrays.observations) == 4


def _stamp(hours: float) -> str:
    micro = round(hours * 3_600_000_000)  # exact microseconds: Timedelta(hours=float) can round off a nanosecond
    return (pd.Timestamp("2024-01-01T08:00:00Z") + pd.Timedelta(microseconds=micro)).isoformat()


def test_bundle_built_from_theo_sd_reads_to_the_csv_table() -> None:
    from bayestwin.data import load_dataset

    csv = load_dataset("theo_sd")
    resources: list[dict[str, Any]] = []
    for label, r in csv.frame.iterrows():
        subject = {"reference": f"Patient/{int(r['id'])}"}
        if r["evid"] == 1:
            adm = _adm(f"a{label}", _q(r["amt"], "mg"), when=_stamp(r["time"]), route=ORAL)
            resources += [{**adm, "subject": subject},
                          {**_lab(f"w{label}", _stamp(r["time"]), _q(r["WT"], "kg"), code="29463-7"),
                           "subject": subject}]
        else:
            ug_per_l = float(Decimal(repr(float(r["dv"]))) * 1000)  # exact decimal, so mg/L comes back exactly
            resources.append({**_lab(f"o{label}", _stamp(r["time"]), _q(ug_per_l, "ug/L")), "subject": subject})
    table = read_fhir(_bundle(*resources), observations=OBS, routes={"oral": 1})
    f, g = table.frame.reset_index(drop=True), csv.frame.reset_index(drop=True)
    assert len(f) == len(g) == 144 and table.covariates == ("WT",)
    assert f["id"].tolist() == g["id"].tolist()  # numeric ids read as numbers, as from the CSV
    for col in ("time", "evid", "amt", "rate", "dur", "mdv", "cens", "dvid", "WT"):
        assert f[col].tolist() == g[col].tolist(), col
    obs = g["evid"] == 0
    assert f["dv"][obs].tolist() == g["dv"][obs].tolist()  # exact: ug/L -> mg/L divides by 1000
    assert (f["cmt"][~obs] == g["cmt"][~obs]).all() and table.accounting.rows_in == 144
    assert table.report.rules() == csv.report.rules()  # the same warnings (pre-dose samples) as from the CSV


def test_second_output_gets_its_dvid_and_unit() -> None:
    doc = _bundle(_adm("a1", _q(5, "mg"), when="2024-03-01T08:00:00Z"),
                  _lab("o1", "2024-03-01T09:00:00Z", _q(1.0, "mg/L")),
                  _lab("c1", "2024-03-01T09:00:00Z", _q(1.1, "mg/dL"), code="2160-0"))
    table = read_fhir(doc, observations={THEO: (1, "mg/L"), "2160-0": (2, "g/L")})
    f = table.frame
    assert f.loc["Observation/c1", "dvid"] == 2 and f.loc["Observation/c1", "dv"] == pytest.approx(0.011, rel=1e-15)
    assert (table.dv_unit(1), table.dv_unit(2)) == ("mg/L", "g/L")
