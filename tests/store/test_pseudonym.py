"""Keyed pseudonyms: no direct identifier reaches the disk; key handling errors say how to fix them."""

from __future__ import annotations

from pathlib import Path

import arviz as az
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storekit import KEY, make_idata

from bayestwin.exceptions import StoreError
from bayestwin.store import Pseudonymizer, TwinStore, load_key

RAW_ID = "MRN-00917733-DOE"


def test_store_holds_no_direct_identifier(tmp_path: Path) -> None:
    store = TwinStore.open(tmp_path / "store", actor="nurse")
    store.commit_version(RAW_ID, posterior=make_idata(0), data_hash="sha256:d", spec_hash="sha256:s",
                         population_version="pop-1", diagnostics={"ok": True}, expected_parent=None)
    store.add_record(RAW_ID, 1, "forecast", {"patient": RAW_ID, "schema": "bayestwin.forecast/1", "intervals": []})
    store.add_record(RAW_ID, 1, "recommendation", {"dose_mg": 100})
    store.log_action("export", patient=RAW_ID, output_hash="ab")
    store.export_version(RAW_ID, 1, tmp_path / "exports")
    assert store.history(RAW_ID)["patient"].tolist() == [store.pseudonym(RAW_ID)]
    store.close()
    written = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    written += list((tmp_path / "exports").iterdir())
    assert len(written) >= 3
    for path in written:
        data = path.read_bytes()
        for needle in (RAW_ID, "00917733", KEY):
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                assert needle.encode(encoding) not in data, (path, needle, encoding)


def test_identifiers_elsewhere_are_refused(store: TwinStore) -> None:
    tagged = make_idata(0)
    tagged.posterior.attrs["patient"] = RAW_ID
    with pytest.raises(StoreError, match=r"identifier appears in the posterior of patient p-.* at posterior.attrs"):
        store.commit_version(RAW_ID, posterior=tagged, data_hash="d", spec_hash="s", population_version=None,
                             diagnostics={}, expected_parent=None)
    labelled = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 2, 1))}, coords={"who": [RAW_ID]},
                                                              dims={"cl": ["who"]}, attrs={}))
    with pytest.raises(StoreError, match=r"at posterior.who"):
        store.commit_version(RAW_ID, posterior=labelled, data_hash="d", spec_hash="s", population_version=None,
                             diagnostics={}, expected_parent=None)
    with pytest.raises(StoreError, match=r"identifier appears in the record at failures\[0\]"):
        store.commit_version(RAW_ID, posterior=make_idata(0), data_hash="d", spec_hash="s", population_version=None,
                             diagnostics={"failures": [RAW_ID]}, expected_parent=None)
    store.commit_version(RAW_ID, posterior=make_idata(0), data_hash="d", spec_hash="s", population_version=None,
                         diagnostics={}, expected_parent=None)
    with pytest.raises(StoreError, match=r"at notes.author"):
        store.add_record(RAW_ID, 1, "note", {"notes": {"author": RAW_ID}})
    assert store.load_version(RAW_ID).records == []


def test_missing_key_says_how_to_set_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAYESTWIN_PSEUDONYM_KEY")
    with pytest.raises(StoreError, match=r"no pseudonymisation key is set.*export BAYESTWIN_PSEUDONYM_KEY=.*"
                                         r"BAYESTWIN_PSEUDONYM_KEY_FILE"):
        TwinStore.open(tmp_path / "store")
    assert not (tmp_path / "store").exists()  # nothing created without a key
    monkeypatch.setenv("BAYESTWIN_PSEUDONYM_KEY", "too short")
    with pytest.raises(StoreError, match=r"environment variable BAYESTWIN_PSEUDONYM_KEY\) is 9 bytes long"):
        TwinStore.open(tmp_path / "store")


def test_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAYESTWIN_PSEUDONYM_KEY")
    key_file = tmp_path / "secrets" / "bayestwin.key"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("BAYESTWIN_PSEUDONYM_KEY_FILE", str(key_file))
    assert load_key() == KEY.encode()
    with TwinStore.open(tmp_path / "store") as store:
        assert store.pseudonym("A") == Pseudonymizer(KEY.encode())("A")
    inside = tmp_path / "store" / "key"
    inside.write_text(KEY)
    monkeypatch.setenv("BAYESTWIN_PSEUDONYM_KEY_FILE", str(inside))
    with pytest.raises(StoreError, match=r"lies inside the store directory.*Move it outside the store"):
        TwinStore.open(tmp_path / "store")
    monkeypatch.setenv("BAYESTWIN_PSEUDONYM_KEY_FILE", str(tmp_path / "nope.key"))
    with pytest.raises(StoreError, match=r"cannot read the pseudonymisation key file .*nope.key"):
        load_key()


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    TwinStore.open(tmp_path / "store").close()
    with pytest.raises(StoreError, match=r"created with a different pseudonymisation key .*the original key"):
        TwinStore.open(tmp_path / "store", key="another key that is long enough 0123456789")
    with pytest.raises(StoreError, match=r"empty patient identifier"):
        Pseudonymizer(KEY.encode())("")


@settings(max_examples=100, deadline=None)
@given(a=st.one_of(st.text(min_size=1), st.integers()), b=st.one_of(st.text(min_size=1), st.integers()))
def test_pseudonyms_are_stable_distinct_and_keyed(a: object, b: object) -> None:
    p, q = Pseudonymizer(KEY.encode()), Pseudonymizer((KEY + "!").encode())
    assert p(a) == p(a) and len(p(a)) == 34 and p(a).startswith("p-")
    assert (p(a) == p(b)) == (str(a) == str(b))
    assert p(a) != q(a)
