"""The whole path through the REAL server: register a spec, fit a population (job), create a twin (job),
forecast, compare plans with a recorded recommendation, history; FHIR = CSV; audit actors; object-level
authorisation on a real twin.

Fits are small (2 chains x 150 + 150 on theophylline subjects 1-11, the twin on subject 12's first 3
samples), as in tests/cli/test_cli_store.py: they check plumbing, not estimates, and run once per module.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _service_env import PSEUDONYM_KEY

from bayestwin.client import event_rows, fhir_bundle
from bayestwin.data import load_dataset, write_nonmem
from bayestwin.exceptions import ServiceRequestError
from bayestwin.store import TwinStore

SAMPLER = {"chains": 2, "warmup": 150, "draws": 150, "seed": 2, "init": "prior"}
GATE = {"max_rhat": 1.1, "min_ess": 50}
PATIENT = "12"
THEO, LOINC, UCUM = "4049-3", "http://loinc.org", "http://unitsofmeasure.org"


def rows(table: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The table as request rows, exactly as a NONMEM CSV file holds them (via write_nonmem)."""
    folder = tmp_path_factory.mktemp("rows")
    write_nonmem(table, folder / "t.csv")
    frame = pd.read_csv(io.StringIO((folder / "t.csv").read_text()))
    units = {k.lower(): v for k, v in json.loads((folder / "t.csv.units.json").read_text()).items()}
    return event_rows(frame.to_dict("records"), units)


def bundle(table: Any) -> dict[str, Any]:
    """A FHIR R4 Bundle of the same events (doses, weights, theophylline levels in ug/L), MRN-style ids."""
    def stamp(hours: float) -> str:
        return (pd.Timestamp("2024-01-01T08:00:00Z") + pd.Timedelta(microseconds=round(hours * 3.6e9))).isoformat()

    res: list[dict[str, Any]] = []
    for label, r in table.frame.iterrows():
        subject = {"reference": f"Patient/{int(r['id'])}"}
        when = stamp(r["time"])
        if r["evid"] == 1:
            res.append({"resourceType": "MedicationAdministration", "id": f"a{label}", "status": "completed",
                        "medicationCodeableConcept": {"text": "theophylline"}, "subject": subject,
                        "effectiveDateTime": when, "dosage": {"dose": {"value": r["amt"], "system": UCUM,
                                                                       "code": "mg"}}})
            code, value, unit = "29463-7", r["WT"], "kg"
        else:
            code, value, unit = THEO, float(Decimal(repr(float(r["dv"]))) * 1000), "ug/L"
        res.append({"resourceType": "Observation", "id": f"o{label}", "status": "final", "subject": subject,
                    "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": when,
                    "valueQuantity": {"value": value, "system": UCUM, "code": unit}})
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in res]}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    theo = load_dataset("theo_sd")
    p12 = theo.patient(12)
    later = p12.frame.index.isin(p12.frame.index[p12.frame["evid"] == 0][3:])
    cohort = theo.exclude((theo.frame["id"] == 12).to_numpy(), reason="the twin's patient")
    return {"cohort": rows(cohort, tmp_path_factory), "first": rows(p12.exclude(later, reason="later"),
                                                                      tmp_path_factory),
            "all12_rows": rows(p12, tmp_path_factory), "all12_fhir": bundle(p12)}


@pytest.fixture(scope="module")
def fitted(server, data) -> dict[str, Any]:
    """Spec registered, population fitted, twin of patient 12 fitted -- each through the service's jobs."""
    from bayestwin.cli.demo import load_spec_file

    spec = load_spec_file(Path(__file__).resolve().parents[2] / "model_specs" / "theophylline.py")
    with server.client(server.token("dr-model", "modeler")) as modeler:
        spec_id = modeler.register_spec(spec.to_dict())["spec_id"]
        job = modeler.fit_population(spec_id, data["cohort"], sampler=SAMPLER, gate=GATE)
        assert job["status"] in ("queued", "running")
        pop = modeler.wait(job, timeout_s=400)
    assert pop["status"] == "succeeded", pop
    with server.client(server.token("dr-who", "clinician", [PATIENT])) as clinician:
        twin = clinician.wait(clinician.create_twin(PATIENT, data["first"], sampler=SAMPLER, gate=GATE),
                              timeout_s=300)
    assert twin["status"] == "succeeded", twin
    return {"spec_id": spec_id, "population": pop, "twin": twin}


def test_fhir_bundle_reads_to_the_csv_rows(server, data) -> None:
    with server.client(server.token("etl", "service", [PATIENT])) as etl:
        from_rows = etl.check_events(PATIENT, data["all12_rows"])
        from_fhir = etl.check_events(PATIENT, fhir_bundle(data["all12_fhir"], {THEO: (1, "mg/L")},
                                                          routes={"oral": 1}))
    assert from_rows["rows"] == from_fhir["rows"] == 12 and from_fhir["observations"] == 11

    def events(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # as in tests/data/test_fhir_import.py: a dose row's DV (CSV 0, FHIR null) and a sample's CMT (DVID picks
        # the output) carry no information; every other field must agree exactly
        unused = {1: "dv", 0: "cmt"}
        return [{k: v for k, v in r.items() if k != unused.get(r["evid"])} for r in table]

    assert events(from_fhir["table"]) == events(from_rows["table"])
    assert from_fhir["warnings"] == from_rows["warnings"]


def test_a_bundle_of_another_patient_is_refused(server, data) -> None:
    other = json.loads(json.dumps(data["all12_fhir"]).replace("Patient/12", "Patient/13"))
    with server.client(server.token("etl", "service", [PATIENT])) as etl, pytest.raises(ServiceRequestError) as err:
        etl.check_events(PATIENT, fhir_bundle(other, {THEO: (1, "mg/L")}, routes={"oral": 1}))
    assert err.value.status == 422 and "other than '12'" in err.value.body["detail"]
    assert "13" not in err.value.body["detail"].replace("'12'", "")  # the bundle's own id is not echoed


def test_fit_jobs_forecast_and_history(server, fitted) -> None:
    assert fitted["population"]["result_url"].startswith("/v1/populations/pop-")
    assert fitted["twin"]["result"]["version"] == 1 and fitted["twin"]["result"]["converged"]
    with server.client(server.token("dr-who", "clinician", [PATIENT])) as clinician:
        fc = clinician.forecast(PATIENT, [1.0, 4.0, 12.0], levels=[0.8, 0.95])
        history = clinician.history(PATIENT)
    doc = fc["forecast"]
    assert doc["schema"] == "bayestwin.forecast/1" and fc["version"] == 1 and fc["status"] == "ok"
    rows = [r for r in doc["intervals"] if r["quantity"] == "ipred" and r["prob"] == 0.95]
    assert [r["time"] for r in rows] == [1.0, 4.0, 12.0]
    assert all(r["lower"] < r["median"] < r["upper"] for r in rows)
    assert [v["version"] for v in history["versions"]] == [1] and history["versions"][0]["actor"] == "dr-who"
    assert history["versions"][0]["records"] >= 1  # the forecast is recorded with the version


def test_compare_records_a_recommendation(server, fitted) -> None:
    plans = [{"name": "320 mg q12h x2", "dose": 320.0, "interval": 12.0, "count": 2, "start": 24.0},
             {"name": "nothing", "kind": "none"}]
    targets = [{"name": "2-20 at 48 h", "kind": "in_window", "lo": 2.0, "hi": 20.0, "at": 48.0}]
    with server.client(server.token("dr-who", "clinician", [PATIENT])) as clinician:
        out = clinician.compare(PATIENT, plans, targets, [24.0, 36.0, 48.0], interval_draws=100,
                                recommend={"chosen": "320 mg q12h x2", "rule": "highest P(2-20 mg/L at 48 h)"})
        recs = clinician.recommendations(PATIENT)
    summary = {r["plan"]: r["estimate"] for r in out["comparison"]["summary"]}
    assert summary["320 mg q12h x2"] > summary["nothing"]  # doses raise the trough; no doses leave it near 0
    assert out["recommendation_record"] is not None
    assert recs["records"][-1]["payload"]["chosen"] == "320 mg q12h x2"
    assert recs["records"][-1]["actor"] == "dr-who"


def test_a_token_for_another_patient_never_reaches_the_twin(server, fitted) -> None:
    with server.client(server.token("dr-other", "clinician", ["99"])) as other:
        for call in (lambda: other.forecast(PATIENT, [1.0]), lambda: other.history(PATIENT),
                     lambda: other.recommendations(PATIENT), lambda: other.job(fitted["twin"]["id"])):
            with pytest.raises(ServiceRequestError) as err:
                call()
            assert err.value.status in (403, 404)  # 404 for the job: its existence is not revealed
            assert "4049" not in json.dumps(err.value.body)


def test_audit_trail_carries_the_token_subjects(server, fitted) -> None:
    with TwinStore.open(server.store, key=PSEUDONYM_KEY, create=False) as store:
        records = store.audit.records()
        pseudo = store.pseudonym(PATIENT)
        assert store.verify_audit().ok
    by_action: dict[str, set[str]] = {}
    for r in records:
        by_action.setdefault(r.action, set()).add(r.actor)
    assert by_action["service.register_spec"] == {"dr-model"} and "dr-model" in by_action["service.fit_population"]
    assert "dr-who" in by_action["service.create_twin"] and "dr-who" in by_action["service.forecast"]
    twin_records = [r for r in records if r.subject == pseudo]
    assert twin_records and {r.actor for r in twin_records} >= {"dr-who"}
    assert all(r.subject != PATIENT for r in records)
