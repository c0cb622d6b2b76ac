"""FHIR R4 Observation bundles -> canonical stream frame (bundles built here, not downloaded)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bayestwin._extras import require_all_deps
from bayestwin.exceptions import InputError, MissingExtraError

if not require_all_deps():  # CI sets BAYESTWIN_REQUIRE_ALL_DEPS=1: a missing extra fails there
    pytest.importorskip("fhir.resources", reason="needs the [fhir] extra")

from bayestwin.data.ingest.fhir_observation import read_fhir_rows
from bayestwin.monitor.fhir import read_fhir_streams

UCUM = "http://unitsofmeasure.org"


def _obs(rid: str, code: str, value: Any = None, unit: str | None = None, *, patient: str = "p1",
         when: str = "2024-05-01T08:00:00Z", **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Observation", "id": rid, "status": "final",
                           "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                           "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": when}
    if value is not None:
        res["valueQuantity"] = {"value": value, "system": UCUM, "code": unit}
    res.update(extra)
    return res


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def test_valid_bundle_maps_loinc_codes_and_converts_units() -> None:
    bundle = _bundle(
        _obs("hr1", "8867-4", 72, "/min", device={"reference": "Device/watch-7"}),
        _obs("t1", "8310-5", 100.4, "[degF]", when="2024-05-01T09:00:00+02:00"),
        _obs("w1", "29463-7", 180, "[lb_av]", when="2024-05-01T07:30:00Z"),
        _obs("g1", "15074-8", 7.0, "mmol/L", issued="2024-05-01T10:00:00Z"),
        _obs("s1", "59408-5", 95, "%", patient="p2"),
        {"resourceType": "Patient", "id": "p1"},  # other resource types are not observations: skipped
    )
    f = read_fhir_streams(bundle).set_index("source")
    assert len(f) == 5
    assert f.loc["Observation/hr1", ["signal", "value", "unit", "device", "loinc"]].tolist() == [
        "heart_rate", 72.0, "/min", "watch-7", "8867-4"]
    assert f.loc["Observation/t1", "value"] == pytest.approx(38.0, abs=1e-12)
    # 09:00+02:00 is 07:00 UTC, p1's first observation: its clock origin
    assert f.loc["Observation/t1", "timestamp"] == pd.Timestamp("2024-05-01T07:00:00Z")
    assert f.loc[["Observation/t1", "Observation/w1", "Observation/hr1"], "time_h"].tolist() == [0.0, 0.5, 1.0]
    assert f.loc["Observation/w1", "value"] == pytest.approx(180 * 0.45359237, rel=1e-15)
    assert f.loc["Observation/g1", "value"] == pytest.approx(7.0 * 18.0156, rel=1e-12)
    assert f.loc["Observation/g1", "received_h"] - f.loc["Observation/g1", "time_h"] == 2.0  # issued 2 h later
    assert (f["status"] == "ok").all()
    assert f.loc["Observation/s1", "patient"] == "p2"


def test_blood_pressure_panel_components_become_two_rows() -> None:
    panel = _obs("bp1", "85354-9", component=[
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 142, "system": UCUM, "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 91, "system": UCUM, "code": "mm[Hg]"}}])
    f = read_fhir_streams(_bundle(panel))
    assert f[["signal", "value", "source"]].values.tolist() == [
        ["dbp", 91.0, "Observation/bp1.component[1]"], ["sbp", 142.0, "Observation/bp1.component[0]"]]


def test_wrong_unit_missing_value_unknown_code_and_retraction_are_flagged_with_reasons() -> None:
    bundle = _bundle(
        _obs("u1", "8867-4", 72, "mm[Hg]"),
        _obs("m1", "8480-6", dataAbsentReason={"coding": [{"code": "not-performed"}]}),
        _obs("x1", "2160-0", 1.1, "mg/dL"),  # creatinine: not a vital sign
        _obs("e1", "8867-4", 75, "/min", status="entered-in-error"),
        _obs("i1", "59408-5", 130, "%"),
    )
    f = read_fhir_streams(bundle).set_index("source")
    assert len(f) == 5
    assert f["status"].to_dict() == {"Observation/e1": "retracted", "Observation/i1": "implausible",
                                     "Observation/m1": "missing", "Observation/u1": "unit_error",
                                     "Observation/x1": "unknown_code"}
    assert f.loc["Observation/u1", "reason"].startswith("unit 'mm[Hg]' is not a unit of heart rate; accepted:")
    assert f.loc["Observation/m1", "reason"] == "no value: not-performed"
    assert f.loc["Observation/x1", "reason"] == "LOINC code '2160-0' is not a vital sign the monitor knows"
    assert f.loc["Observation/e1", ["signal", "reason"]].tolist() == ["heart_rate", "FHIR status entered-in-error"]
    assert "rule spo2_range: 130 %" in f.loc["Observation/i1", "reason"]
    with pytest.raises(InputError, match=r"Observation/x1: LOINC code '2160-0' is not a vital sign"):
        read_fhir_streams(bundle, unknown="error")


def _without(rid: str, field: str) -> dict[str, Any]:
    return {k: v for k, v in _obs(rid, "8867-4", 70, "/min").items() if k != field}


@pytest.mark.parametrize(("resource", "match"), [
    (_obs("v1", "8867-4", "fast", "/min"), r"Observation/v1\.valueQuantity\.value: .*\(got 'fast'\)"),
    (_without("c1", "code"), r"Observation/c1\.code: Field required"),
    (_without("s1", "subject"), r"Observation/s1\.subject"),
    (_without("d1", "effectiveDateTime"), r"Observation/d1\.effective\[x\]"),
    (_obs("n1", "8867-4", valueQuantity={"value": 70}),
     r"Observation/n1\.valueQuantity\.code: the quantity 70.0 has no unit"),
    (_obs("q1", "8867-4", valueString="normal"),
     r"Observation/q1\.valueString: a vital-sign value must be a valueQuantity"),
])  # fmt: skip
def test_malformed_resources_raise_with_the_json_path(resource: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        read_fhir_streams(_bundle(_obs("ok1", "8867-4", 70, "/min"), resource))


def test_file_json_string_and_lone_resource_inputs(tmp_path: Path) -> None:
    bundle = _bundle(_obs("hr1", "8867-4", 72, "/min"))
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    assert read_fhir_streams(path)["value"].tolist() == [72.0]
    assert read_fhir_streams(str(path))["value"].tolist() == [72.0]
    assert read_fhir_streams(json.dumps(bundle))["value"].tolist() == [72.0]
    assert read_fhir_rows(_obs("hr9", "8867-4", 80, "/min"))["source"].tolist() == ["Observation/hr9"]
    with pytest.raises(InputError, match="does not exist"):
        read_fhir_streams(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"'bad.json' is not valid JSON \(line 1"):
        read_fhir_streams(tmp_path / "bad.json")
    with pytest.raises(InputError, match="no FHIR parser for resource type 'Encounter'"):
        read_fhir_rows(bundle, "Encounter")


def test_missing_fhir_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fhir.resources.R4B.observation", None)  # `import` raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'bayestwin\[fhir\]'"):
        read_fhir_streams(_bundle(_obs("hr1", "8867-4", 72, "/min")))
