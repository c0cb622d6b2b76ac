"""Encryption at rest (AES-256-GCM): exact round trips, tamper detection, and clear errors for every key problem."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from storekit import KEY, assert_idata_identical, make_idata

from bayestwin.exceptions import MissingExtraError, StoreError, StoreIntegrityError
from bayestwin.store import TwinStore, load_encryption_key
from bayestwin.store.encryption import MAGIC, ObjectCipher
from bayestwin.store.netcdf import idata_from_bytes, idata_to_bytes

SECRET = "an encryption secret, not the pseudonym key, 0123456789"
OTHER = "another encryption secret that is long enough 0123456789"


def _commit(store: TwinStore, patient: str, seed: int, parent: int | None) -> int:
    return store.commit_version(patient, posterior=make_idata(seed), data_hash=f"d{seed}", spec_hash="s",
                                population_version="pop", diagnostics={"seed": seed}, expected_parent=parent)


@pytest.fixture
def enc(tmp_path: Path) -> Iterator[TwinStore]:
    store = TwinStore.open(tmp_path / "store", encryption_key=SECRET, actor="tester")
    yield store
    store.close()


def test_encrypted_round_trip_dedup_and_integrity(enc: TwinStore, tmp_path: Path) -> None:
    assert enc.encrypted and "encrypted" in repr(enc)
    _commit(enc, "P1", 0, None)
    _commit(enc, "P1", 0, 1)  # same content: one file
    _commit(enc, "P1", 1, 2)
    files = sorted((enc.path / "objects").iterdir())
    assert len(files) == 2 and all(f.name.endswith(".nc.enc") for f in files)
    for version, seed in ((1, 0), (3, 1)):
        loaded = enc.load_version("P1", version)
        assert_idata_identical(make_idata(seed), loaded.posterior)
        plain = idata_to_bytes(make_idata(seed))
        assert loaded.posterior_hash == hashlib.sha256(plain).hexdigest()  # addressed by the plaintext hash
        blob = (enc.path / "objects" / f"{loaded.posterior_hash}.nc.enc").read_bytes()
        assert blob.startswith(MAGIC + b"\x01") and b"HDF" not in blob[:64] and plain[200:264] not in blob
        assert len(blob) == len(plain) + 7 + 12 + 16
    assert enc.history("P1")["posterior_bytes"].tolist()[0] == len(idata_to_bytes(make_idata(0)))
    report = enc.check_integrity(raise_on_error=True)
    assert report.n_files == 2 and report.unreferenced_files == []
    again = TwinStore.open(enc.path, encryption_key=SECRET)
    assert_idata_identical(make_idata(1), again.load_version("P1").posterior)
    again.close()
    out = enc.export_version("P1", 3, tmp_path / "plain")  # exports are plain NetCDF
    assert_idata_identical(make_idata(1), idata_from_bytes(out.read_bytes()))
    deid = enc.export_deidentified(tmp_path / "deid")
    assert deid.n_versions == 3
    assert all(p.read_bytes()[1:4] == b"HDF" for p in (deid.directory / "posteriors").iterdir())


def test_key_problems_are_refused_with_what_to_do(enc: TwinStore, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _commit(enc, "P1", 0, None)
    enc.close()
    with pytest.raises(StoreError, match=r"is encrypted \(aes-256-gcm/1\) and no encryption key is set.*"
                                         r"BAYESTWIN_ENCRYPTION_KEY"):
        TwinStore.open(enc.path)
    with pytest.raises(StoreError, match=r"encrypted with a different encryption key \(fingerprint [0-9a-f]{16}, "
                                         r"yours [0-9a-f]{16}\).*original key; it cannot be recovered"):
        TwinStore.open(enc.path, encryption_key=OTHER)
    monkeypatch.setenv("BAYESTWIN_ENCRYPTION_KEY", SECRET)  # the key from the environment
    with TwinStore.open(enc.path) as store:
        assert_idata_identical(make_idata(0), store.load_version("P1").posterior)
        with pytest.raises(StoreError, match=r"the encryption key is the pseudonymisation key; use two different"):
            TwinStore.open(enc.path, encryption_key=KEY)
    monkeypatch.delenv("BAYESTWIN_ENCRYPTION_KEY")
    key_file = tmp_path / "keys" / "enc.key"
    key_file.parent.mkdir()
    key_file.write_text(SECRET + "\n")
    monkeypatch.setenv("BAYESTWIN_ENCRYPTION_KEY_FILE", str(key_file))
    assert load_encryption_key() == SECRET.encode()
    with TwinStore.open(enc.path) as store:
        assert store.encrypted
    inside = enc.path / "enc.key"
    inside.write_text(SECRET)
    monkeypatch.setenv("BAYESTWIN_ENCRYPTION_KEY_FILE", str(inside))
    with pytest.raises(StoreError, match=r"encryption key file .* lies inside the store directory"):
        TwinStore.open(enc.path)
    monkeypatch.delenv("BAYESTWIN_ENCRYPTION_KEY_FILE")
    with pytest.raises(StoreError, match=r"the encryption key \(argument encryption_key=\) is 5 bytes long"):
        TwinStore.open(enc.path, encryption_key="short")


def test_plain_store_stays_plain(tmp_path: Path) -> None:
    with TwinStore.open(tmp_path / "plain") as store:
        _commit(store, "P1", 0, None)
        assert not store.encrypted
    with pytest.raises(StoreError, match=r"is not encrypted, but an encryption key was given.*not supported yet.*"
                                         r"unset BAYESTWIN_ENCRYPTION_KEY"):
        TwinStore.open(tmp_path / "plain", encryption_key=SECRET)
    with TwinStore.open(tmp_path / "plain") as store:  # still opens, unchanged
        assert_idata_identical(make_idata(0), store.load_version("P1").posterior)
        assert store.check_integrity().ok


def test_tampered_swapped_or_foreign_files_fail_authentication(enc: TwinStore, tmp_path: Path) -> None:
    _commit(enc, "P1", 0, None)
    _commit(enc, "P2", 1, None)
    a, b = (enc.path / "objects" / f"{enc.load_version(p).posterior_hash}.nc.enc" for p in ("P1", "P2"))
    blob_a, blob_b = a.read_bytes(), b.read_bytes()
    flipped = bytearray(blob_a)
    flipped[len(flipped) // 2] ^= 0x01
    a.write_bytes(bytes(flipped))
    with pytest.raises(StoreIntegrityError, match=r"failed its authentication check \(AES-GCM tag\).*altered"):
        enc.load_version("P1")
    report = enc.check_integrity()
    assert not report.ok and "authentication check" in report.problems[0]
    a.write_bytes(blob_b)  # another object's file under this name: the content hash is authenticated
    with pytest.raises(StoreIntegrityError, match=r"renamed to another object's name"):
        enc.load_version("P1")
    other = TwinStore.open(tmp_path / "other", encryption_key=SECRET)  # same secret, another store
    _commit(other, "P1", 0, None)
    a.write_bytes((other.path / "objects" / a.name).read_bytes())
    with pytest.raises(StoreIntegrityError, match=r"copied from another store"):
        enc.load_version("P1")
    other.close()
    a.write_bytes(b"not an object")
    with pytest.raises(StoreIntegrityError, match=r"not an encrypted bayestwin object"):
        enc.load_version("P1")
    a.write_bytes(MAGIC + b"\x02" + blob_a[7:])
    with pytest.raises(StoreError, match=r"uses encryption format version 2; this bayestwin reads version 1"):
        enc.load_version("P1")
    a.write_bytes(blob_a)
    assert enc.check_integrity().ok
    a.unlink()
    with pytest.raises(StoreIntegrityError, match=r"is missing"):
        enc.load_version("P1")
    _commit(enc, "P1", 0, 1)  # committing the same content again repairs the file
    assert enc.check_integrity().ok and a.read_bytes() != blob_a  # a fresh nonce


def test_missing_cryptography_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import cryptography -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'bayestwin\[crypto\]'"):
        TwinStore.open(tmp_path / "store", encryption_key=SECRET)
    assert not (tmp_path / "store").exists()
    with pytest.raises(MissingExtraError, match=r"bayestwin\[crypto\]"):
        ObjectCipher(SECRET.encode(), store_id="0" * 32)
    with pytest.raises(StoreError, match=r"the encryption key is 3 bytes long"):
        ObjectCipher(b"abc", store_id="0" * 32)
