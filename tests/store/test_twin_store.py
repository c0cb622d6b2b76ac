"""The versioned store: exact round trips, append-only history, records, conflicts, messages."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import arviz as az
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from storekit import assert_idata_identical, make_idata

from bayestwin.exceptions import NotFittedError, StoreConflictError, StoreError
from bayestwin.forecast import Forecast
from bayestwin.store import TwinStore
from bayestwin.store.netcdf import idata_from_bytes, idata_to_bytes


def _commit(store: TwinStore, patient: str, seed: int, parent: int | None, **extra: object) -> int:
    fields = {"data_hash": f"sha256:data{seed}", "spec_hash": "sha256:spec", "population_version": "pop-1",
              "diagnostics": {"ok": True, "max_rhat": 1.004}} | extra
    return store.commit_version(patient, posterior=make_idata(seed), expected_parent=parent, **fields)


def test_round_trip_is_bit_identical_and_file_is_content_addressed(store: TwinStore) -> None:
    idata = make_idata(1)
    v = store.commit_version("P1", posterior=idata, data_hash="sha256:d", spec_hash="sha256:s",
                             population_version="pop-7", diagnostics={"ok": True, "failures": []},
                             expected_parent=None)
    loaded = store.load_version("P1", v)
    assert_idata_identical(idata, loaded.posterior)
    path = store.path / "objects" / f"{loaded.posterior_hash}.nc"
    assert path.read_bytes() == idata_to_bytes(idata)
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == loaded.posterior_hash
    assert (loaded.version, loaded.parent, loaded.population_version) == (1, None, "pop-7")
    assert loaded.diagnostics == {"ok": True, "failures": []}
    assert loaded.actor == "tester" and loaded.created_utc.endswith("Z")


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_]),
                  shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4)))
def test_netcdf_bytes_round_trip_any_array(values: np.ndarray) -> None:
    dims = ("chain", "draw", "x")[: values.ndim]
    idata = az.InferenceData(posterior=xr.Dataset({"theta": (dims, values)}))
    assert_idata_identical(idata, idata_from_bytes(idata_to_bytes(idata)))


def test_history_is_append_only_and_tidy(store: TwinStore) -> None:
    assert store.history("P1").empty and store.head("P1") is None
    for i, parent in enumerate([None, 1, 2]):
        assert _commit(store, "P1", i, parent) == i + 1
    _commit(store, "P2", 9, None)
    hist = store.history("P1")
    assert hist["version"].tolist() == [1, 2, 3]
    assert hist["parent"].tolist() == [None, 1, 2]
    assert hist["data_hash"].tolist() == ["sha256:data0", "sha256:data1", "sha256:data2"]
    assert set(hist["patient"]) == {store.pseudonym("P1")}
    assert (hist["posterior_bytes"] > 0).all() and (hist["n_records"] == 0).all()
    assert store.load_version("P1").version == 3  # default: the latest
    for i in range(3):
        assert_idata_identical(make_idata(i), store.load_version("P1", i + 1).posterior)
    assert sorted(store.patients()) == sorted([store.pseudonym("P1"), store.pseudonym("P2")])
    import sqlite3

    with sqlite3.connect(store.path / "store.sqlite") as raw, pytest.raises(sqlite3.IntegrityError,
                                                                          match=r"append-only"):
        raw.execute("UPDATE versions SET data_hash = 'x'")


def test_same_posterior_twice_shares_one_file(store: TwinStore) -> None:
    _commit(store, "P1", 5, None)
    _commit(store, "P1", 5, 1)
    hist = store.history("P1")
    assert hist["posterior_hash"].nunique() == 1
    assert len(list((store.path / "objects").iterdir())) == 1


def test_records_and_forecasts_attach_to_a_version(store: TwinStore) -> None:
    _commit(store, "MRN-1", 0, None)
    _commit(store, "MRN-1", 1, 1)
    fc = Forecast.from_draws(np.ones((4, 2, 1)), np.ones((4, 2, 1)) * 2, chains=2, times=np.array([1.0, 2.0]),
                             outputs=["conc"], units={"conc": "mg/L"}, time_unit="h",
                             metadata={"patient": "MRN-1", "provenance": {"spec_name": "demo"}})
    store.add_forecast("MRN-1", 1, fc)
    store.add_record("MRN-1", 1, "recommendation", {"dose_mg": 250.0, "interval_h": 12})
    loaded = store.load_version("MRN-1", 1)
    kinds = [r["kind"] for r in loaded.records]
    assert kinds == ["forecast", "recommendation"]
    assert loaded.records[0]["payload"]["patient"] == store.pseudonym("MRN-1")
    assert loaded.records[0]["payload"]["schema"] == "bayestwin.forecast/1"
    assert loaded.records[1]["payload"] == {"dose_mg": 250.0, "interval_h": 12}
    assert store.load_version("MRN-1", 2).records == []
    assert store.history("MRN-1")["n_records"].tolist() == [2, 0]
    with pytest.raises(StoreError, match=r"has no version 7 .*versions: \[1, 2\]"):
        store.add_record("MRN-1", 7, "forecast", {})
    with pytest.raises(StoreError, match=r"record kind 'bad kind!' must be a word"):
        store.add_record("MRN-1", 1, "bad kind!", {})


def test_conflict_when_parent_is_not_latest(store: TwinStore) -> None:
    _commit(store, "P1", 0, None)
    with pytest.raises(StoreConflictError, match=r"latest version is 1, but this commit builds on None.*"
                                                 r"expected_parent=1"):
        _commit(store, "P1", 1, None)
    with pytest.raises(StoreConflictError, match=r"latest version is 1, but this commit builds on 3"):
        _commit(store, "P1", 1, 3)
    assert store.history("P1")["version"].tolist() == [1]


def test_conflict_detected_inside_the_transaction(store: TwinStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process commits between our pre-check and our transaction: the optimistic check still holds."""
    other = TwinStore.open(store.path, actor="other")
    original = TwinStore._put_object

    def put_then_race(self: TwinStore, data: bytes, *, what: str) -> str:
        digest = original(self, data, what=what)
        if self is store:
            _commit(other, "P1", 42, None)  # the rival wins the race
        return digest

    monkeypatch.setattr(TwinStore, "_put_object", put_then_race)
    with pytest.raises(StoreConflictError, match=r"another writer committed first"):
        _commit(store, "P1", 1, None)
    hist = store.history("P1")
    assert hist["version"].tolist() == [1] and hist["actor"].tolist() == ["other"]
    assert_idata_identical(make_idata(42), store.load_version("P1", 1).posterior)
    report = store.check_integrity(raise_on_error=True)
    assert len(report.unreferenced_files) == 1  # the loser's file: durable, never visible
    other.close()


def test_missing_version_and_store_messages(store: TwinStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"patient p-[0-9a-f]{32} has no version None .*versions: none"):
        store.load_version("nobody")
    with pytest.raises(StoreError, match=r"no twin store at .*pass create=True"):
        TwinStore.open(tmp_path / "missing", create=False)
    with pytest.raises(ValueError, match=r"has no groups"):
        store.commit_version("P", posterior=az.InferenceData(), data_hash="d", spec_hash="s",
                             population_version=None, diagnostics={}, expected_parent=None)
    with pytest.raises(TypeError, match=r"cannot store a object in a JSON record"):
        store.add_record("P", 1, "note", {"x": object()})


def test_commit_twin_reads_a_fitted_twin(store: TwinStore) -> None:
    twin = SimpleNamespace(idata_=make_idata(3), patient_id_=12, events_=SimpleNamespace(digest=lambda: "sha256:ev"),
                           spec=SimpleNamespace(digest=lambda: "sha256:sp"),
                           population_version_="pop-abc",
                           diagnostics_=SimpleNamespace(to_dict=lambda: {"ok": True, "max_rhat": 1.01}),
                           population_overridden_=False)
    v = store.commit_twin(twin, expected_parent=None)
    loaded = store.load_version("12", v)  # ids are compared as text
    assert (loaded.data_hash, loaded.spec_hash, loaded.population_version) == ("sha256:ev", "sha256:sp", "pop-abc")
    assert loaded.diagnostics == {"twin": {"ok": True, "max_rhat": 1.01}, "population_overridden": False}
    assert_idata_identical(make_idata(3), loaded.posterior)
    other_events = SimpleNamespace(digest=lambda: "sha256:other")
    store.commit_twin(twin, other_events, expected_parent=1)
    assert store.load_version(12, 2).data_hash == "sha256:other"
    with pytest.raises(NotFittedError, match=r"call twin.fit\(events\) before storing it"):
        store.commit_twin(SimpleNamespace(idata_=None), expected_parent=None)


def test_export_writes_verified_copy_and_audits(store: TwinStore, tmp_path: Path) -> None:
    _commit(store, "P1", 0, None)
    out = store.export_version("P1", 1, tmp_path)
    assert out.name == f"{store.pseudonym('P1')}-v1.nc"
    assert_idata_identical(make_idata(0), idata_from_bytes(out.read_bytes()))
    last = store.audit.records()[-1]
    assert (last.action, last.subject) == ("export", store.pseudonym("P1"))
    assert json.loads(json.dumps(last.inputs))["posterior"] == store.load_version("P1").posterior_hash
