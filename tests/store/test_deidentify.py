"""De-identified export (HIPAA Safe Harbor): identifiers and free text removed, keyed date shifts, ages grouped."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from storekit import KEY

from bayestwin.exceptions import StoreError
from bayestwin.forecast import Forecast
from bayestwin.store import DeidentifiedExport, Pseudonymizer, TwinStore
from bayestwin.store.deidentify import manifest_digest
from bayestwin.store.netcdf import idata_from_bytes
from bayestwin.store.safe_harbor import Deidentifier, removal_reason, shift_iso_text

PSEUDO = Pseudonymizer(KEY.encode())
T0 = np.datetime64("2026-03-14T08:30:00", "ns")
HOURS = np.array([0.0, 1.5, 6.0, 30.25])
DOSE_HOURS = np.array([0.0, 24.0])


def _shift(patient: str) -> int:
    return PSEUDO.date_shift_days(PSEUDO(patient))


def clinical_idata(seed: int, *, age: float) -> az.InferenceData:
    """A twin posterior as a user might commit it: absolute clock times, covariates, free text, a source link."""
    rng = np.random.default_rng(seed)
    clock = T0 + (HOURS * 3600e9).astype("timedelta64[ns]")
    posterior = xr.Dataset({"cl": (("chain", "draw"), rng.lognormal(size=(2, 20)))},
                           coords={"chain": [0, 1], "draw": np.arange(20)},
                           attrs={"created_at": "2026-03-16T09:15:00.123456+00:00", "inference_library": "numpyro",
                                  "hospital": "St Elsewhere", "seed": seed})
    posterior["cl"].attrs["unit"] = "L/h"
    observed = xr.Dataset({"obs": ("observation", rng.lognormal(size=4))},
                          coords={"observation_time": ("observation", HOURS),
                                  "observation_datetime": ("observation", clock),
                                  "observation_output": ("observation", ["conc"] * 4),
                                  "observation_site": ("observation", ["ward 7"] * 4),
                                  "source_row": ("observation", ["12", "13", "14", "15"])},
                          attrs={"time_unit": "h"})
    constant = xr.Dataset({"AGE": ((), age), "WT": ((), 71.5), "ID": ((), 17),
                           "DOSE_DATETIME": ("dose", T0 + (DOSE_HOURS * 3600e9).astype("timedelta64[ns]")),
                           "DOSE_TIME": ("dose", DOSE_HOURS), "comment": ((), "tolerated well, wife present")})
    return az.InferenceData(posterior=posterior, observed_data=observed, constant_data=constant)


def _commit(store: TwinStore, patient: str, seed: int, parent: int | None, *, age: float) -> int:
    return store.commit_version(patient, posterior=clinical_idata(seed, age=age), data_hash=f"sha256:data{seed}",
                                spec_hash="sha256:spec", population_version="pop-1",
                                diagnostics={"ok": True, "max_rhat": 1.004}, expected_parent=parent)


@pytest.fixture
def filled(store: TwinStore) -> TwinStore:
    _commit(store, "P1", 1, None, age=93.0)
    _commit(store, "P1", 2, 1, age=93.0)
    _commit(store, "P2", 3, None, age=45.0)
    fc = Forecast.from_draws(np.ones((4, 2, 1)), np.ones((4, 2, 1)) * 2, chains=2, times=np.array([1.0, 2.0]),
                             outputs=["conc"], units={"conc": "mg/L"}, time_unit="h",
                             metadata={"patient": "P1", "provenance": {"spec_name": "demo", "data_digest": "sha:x"}})
    store.add_forecast("P1", 1, fc)
    store.add_record("P1", 2, "recommendation", {"dose_mg": 250, "given_at": "2026-03-15T08:00:00Z",
                                                 "note": "discussed with daughter", "age": 93})
    return store


def test_export_removes_shifts_groups_and_keeps_the_rest(filled: TwinStore, tmp_path: Path) -> None:
    store = filled
    export = store.export_deidentified(tmp_path / "deid")
    assert isinstance(export, DeidentifiedExport) and (export.n_versions, export.n_records) == (3, 2)
    assert sorted(export.subjects) == sorted([store.pseudonym("P1"), store.pseudonym("P2")])
    assert sorted(export.subjects.values()) == ["subject-001", "subject-002"]
    code = {p: export.subjects[store.pseudonym(p)] for p in ("P1", "P2")}
    shift = {p: _shift(p) for p in ("P1", "P2")}
    assert shift["P1"] != shift["P2"] and all(1 <= abs(s) <= 365 for s in shift.values())

    versions = pd.read_csv(export.directory / "versions.csv")
    assert list(versions.columns) == ["subject", "version", "parent", "created_utc", "spec_hash",
                                      "population_version", "posterior_file", "diagnostics"]
    for _, row in versions.iterrows():
        patient = "P1" if row["subject"] == code["P1"] else "P2"
        created = store.history(patient).set_index("version").loc[row["version"], "created_utc"]
        moved = pd.Timestamp(row["created_utc"]) - pd.Timestamp(created)
        assert moved == pd.Timedelta(days=shift[patient])  # whole days; time of day kept to the microsecond
        assert json.loads(row["diagnostics"]) == {"ok": True, "max_rhat": 1.004}

    for patient, versions_of, age in (("P1", (1, 2), 90.0), ("P2", (1,), 45.0)):
        for version in versions_of:
            path = export.directory / "posteriors" / f"{code[patient]}-v{version}.nc"
            out = idata_from_bytes(path.read_bytes())
            orig = store.load_version(patient, version).posterior
            days = np.timedelta64(shift[patient], "D")
            np.testing.assert_array_equal(out.observed_data["observation_datetime"].values,
                                          orig.observed_data["observation_datetime"].values + days)
            np.testing.assert_array_equal(out.constant_data["DOSE_DATETIME"].values,
                                          orig.constant_data["DOSE_DATETIME"].values + days)
            np.testing.assert_array_equal(out.observed_data["observation_time"].values, HOURS)  # relative: as is
            np.testing.assert_array_equal(out.posterior["cl"].values, orig.posterior["cl"].values)
            assert float(out.constant_data["AGE"]) == age and float(out.constant_data["WT"]) == 71.5
            assert {"source_row", "observation_site"}.isdisjoint(out.observed_data.variables)
            assert {"ID", "comment"}.isdisjoint(out.constant_data.variables)
            assert out.observed_data["observation_output"].values.tolist() == ["conc"] * 4
            assert out.posterior.attrs == {"created_at": shift_iso_text("2026-03-16T09:15:00.123456+00:00",
                                                                        shift[patient]),
                                           "inference_library": "numpyro", "seed": orig.posterior.attrs["seed"]}
            assert out.posterior["cl"].attrs == {"unit": "L/h"}

    lines = [json.loads(line) for line in (export.directory / "records.jsonl").read_text().splitlines()]
    forecast, recommendation = sorted(lines, key=lambda r: r["kind"])
    assert forecast["subject"] == code["P1"] and "patient" not in forecast["payload"]
    assert forecast["payload"]["provenance"] == {"spec_name": "demo"}
    assert [r["time"] for r in forecast["payload"]["intervals"]][:2] == [1.0, 2.0]
    created = dt.datetime.fromisoformat(forecast["payload"]["created"])
    assert recommendation["payload"] == {"dose_mg": 250, "age": 90,
                                         "given_at": shift_iso_text("2026-03-15T08:00:00Z", shift["P1"])}
    assert created.tzinfo is not None

    manifest = json.loads((export.directory / "manifest.json").read_text())
    assert manifest == export.manifest and manifest["counts"] == {"subjects": 2, "versions": 3, "records": 2}
    removed = {r["field"]: r["reason"] for r in manifest["removed"]}
    for name in ("posteriors.observed_data.source_row", "posteriors.observed_data.observation_site",
                 "posteriors.constant_data.ID", "posteriors.constant_data.comment",
                 "posteriors.posterior.attrs.hospital", "records[recommendation].payload:note",
                 "records[forecast].payload:patient", "records[forecast].payload:provenance.data_digest",
                 "versions.actor", "versions.data_hash", "versions.patient"):
        assert name in removed, name
    assert set(manifest["shifted"]["fields"]) >= {
        "posteriors.observed_data.observation_datetime", "posteriors.constant_data.DOSE_DATETIME",
        "posteriors.posterior.attrs.created_at", "versions.created_utc", "records.created_utc",
        "records[forecast].payload:created", "records[recommendation].payload:given_at"}
    assert {"field": "posteriors.constant_data.AGE", "values_grouped": 2} in manifest["grouped"]["fields"]
    assert manifest["grouped"]["value"] == 90 and manifest["shifted"]["range_days"] == [-365, 365]
    for name, digest in manifest["files"].items():
        import hashlib

        assert digest == "sha256:" + hashlib.sha256((export.directory / name).read_bytes()).hexdigest()

    last = store.audit.records()[-1]
    assert (last.action, last.subject, last.seq) == ("export_deidentified", None, export.audit_seq)
    assert last.output_hash == manifest_digest(export.directory)
    assert store.verify_audit().ok and store.check_integrity().ok

    leaks = [store.pseudonym("P1"), store.pseudonym("P2"), "St Elsewhere", "ward 7", "daughter", "wife", "sha:x",
             "tester", "sha256:data1", "2026-03-14 08:30", "2026-03-14T08:30"]
    for path in export.directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in leaks:
                assert needle.encode() not in data, (path.name, needle)


def test_latest_only_selected_patients_and_refusals(filled: TwinStore, tmp_path: Path) -> None:
    export = filled.export_deidentified(tmp_path / "one", ["P1", "P1"], latest_only=True)
    versions = pd.read_csv(export.directory / "versions.csv")
    assert versions["version"].tolist() == [2] and export.n_records == 1 and len(export.subjects) == 1
    assert str(export).startswith(f"de-identified export at {export.directory}: 1 subjects, 1 versions")
    with pytest.raises(StoreError, match=r"exists and is not an empty directory; choose a new one"):
        filled.export_deidentified(tmp_path / "one")
    with pytest.raises(StoreError, match=r"lies inside the store"):
        filled.export_deidentified(filled.path / "exports")
    with pytest.raises(StoreError, match=r"patient p-[0-9a-f]{32} has no versions in .*store.patients\(\) lists"):
        filled.export_deidentified(tmp_path / "none", ["P9"])
    assert not (tmp_path / "none").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"cannot create the export directory"):
        filled.export_deidentified(blocker / "sub")


def test_date_shifts_are_keyed_stable_and_spread() -> None:
    pseudonyms = [PSEUDO(f"MRN-{i}") for i in range(300)]
    shifts = [PSEUDO.date_shift_days(p) for p in pseudonyms]
    assert shifts == [PSEUDO.date_shift_days(p) for p in pseudonyms]
    assert all(1 <= abs(s) <= 365 for s in shifts) and min(shifts) < 0 < max(shifts)
    assert len(set(shifts)) > 200  # 300 draws from 730 offsets: ~246 distinct expected
    other = Pseudonymizer((KEY + "!").encode())
    assert sum(a != other.date_shift_days(p) for a, p in zip(shifts, pseudonyms, strict=True)) > 290
    assert PSEUDO.date_shift_days(pseudonyms[0], max_days=1) in (-1, 1)
    with pytest.raises(StoreError, match=r"max_days=0: a date shift needs a range"):
        PSEUDO.date_shift_days(pseudonyms[0], max_days=0)


_INSTANTS = st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2150, 1, 1))


@settings(max_examples=60, deadline=None)
@given(patient=st.text(min_size=1, max_size=20), times=st.lists(_INSTANTS, min_size=1, max_size=12),
       zone=st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=-5, minutes=-30))]))
def test_intervals_are_preserved_exactly_for_any_event_times(patient: str, times: list[dt.datetime],
                                                             zone: dt.tzinfo | None) -> None:
    shift = PSEUDO.date_shift_days(PSEUDO(patient))
    clock = np.array(times, dtype="datetime64[ns]")
    ds = xr.Dataset({"DATETIME": ("event", clock), "TIME": ("event", np.arange(len(times), dtype=float))})
    out = Deidentifier(shift).dataset(ds, "events")
    moved = out["DATETIME"].values - clock
    assert (moved == np.timedelta64(shift, "D")).all()
    np.testing.assert_array_equal(np.diff(out["DATETIME"].values), np.diff(clock))
    np.testing.assert_array_equal(out["TIME"].values, ds["TIME"].values)
    texts = [t.replace(tzinfo=zone).isoformat() for t in times]
    shifted = Deidentifier(shift).json({"times": texts}, "rec")["times"]
    back = [dt.datetime.fromisoformat(s) for s in shifted]
    assert [b - dt.datetime.fromisoformat(t) for b, t in zip(back, texts, strict=True)] == \
        [dt.timedelta(days=shift)] * len(texts)


def test_rules_on_an_event_table() -> None:
    from bayestwin.data import load_dataset

    frame = load_dataset("theo_sd").frame.copy()
    frame["AGE"] = np.where(frame["id"] == 1, 91.0, 40.0)
    frame["DATETIME"] = pd.Timestamp("2026-01-05T07:00", tz="UTC") + pd.to_timedelta(frame["time"], unit="h")
    frame["NOTE"] = "free text"
    findings_of = Deidentifier(-3)
    out = findings_of.frame(frame, "events")
    assert "id" not in out and "source_row" not in out and "NOTE" not in out
    np.testing.assert_array_equal(out["time"].to_numpy(), frame["time"].to_numpy())
    assert set(out["AGE"]) == {90.0, 40.0}
    assert (out["DATETIME"].to_numpy() - frame["DATETIME"].to_numpy() == np.timedelta64(-3, "D")).all()
    assert findings_of.findings.removed["events.source_row"] == "links the record to the source data"
    assert findings_of.findings.grouped["events.AGE"] == int((frame["id"] == 1).sum())


@pytest.mark.parametrize(("name", "reason"), [
    ("ID", "identifier-like name"), ("observation_patient", "identifier-like name"),
    ("patientId", "identifier-like name"), ("first_name", "identifier-like name"), ("DOB", "identifier-like name"),
    ("zip_code", "identifier-like name"), ("Comments", "free text"),
    ("twin_fit_id", "links the record to the source data"),
    ("WT", None), ("observation_time", None), ("spec_name", None), ("segment_start", None), ("AGE", None)])
def test_removal_reason(name: str, reason: str | None) -> None:
    assert removal_reason(name) == reason


def test_text_ages_and_attributes() -> None:
    d = Deidentifier(10)
    ds = xr.Dataset({"age": ("i", np.array(["34", "95", "unknown"]))},
                    attrs={"Age": 97, "age_years": np.array([12.0, 101.0]), "tags": ["a"], "unit": "h"})
    out = d.dataset(ds, "d")
    assert out["age"].values.tolist() == ["34", "90+", "unknown"]
    assert out.attrs["Age"] == 90 and out.attrs["age_years"].tolist() == [12.0, 90.0] and out.attrs["unit"] == "h"
    assert d.findings.removed["d.attrs.tags"] == "free text (non-numeric attribute)"
    assert d.json({"AGE": "92"}, "r") == {"AGE": "90+"}
    assert shift_iso_text("2026-02-30", 1) is None and shift_iso_text("20260301", 1) is None
