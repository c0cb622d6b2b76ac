"""I/O fault injection: ENOSPC, EIO, read-only directory or database. A clear StoreError, the previous state intact."""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from storekit import assert_idata_identical, make_idata

from bayestwin.exceptions import StoreError
from bayestwin.store import TwinStore, files


def _commit(store: TwinStore, seed: int, parent: int | None) -> int:
    return store.commit_version("P1", posterior=make_idata(seed), data_hash=f"d{seed}", spec_hash="s",
                                population_version="pop", diagnostics={"seed": seed}, expected_parent=parent)


def _fail(code: int) -> Callable[..., Any]:
    def raiser(*args: object, **kwargs: object) -> Any:
        raise OSError(code, os.strerror(code))
    return raiser


def _assert_previous_state(store: TwinStore, n_audit: int) -> None:
    """Only version 1 visible and loading exactly; no temporary files; integrity and audit intact."""
    assert store.history("P1")["version"].tolist() == [1]
    assert_idata_identical(make_idata(0), store.load_version("P1", 1).posterior)
    report = store.check_integrity(raise_on_error=True)
    assert report.temporary_files == []
    assert len(store.audit.records()) == n_audit
    again = TwinStore.open(store.path)  # a fresh reader sees the same
    assert again.history("P1")["version"].tolist() == [1]
    again.close()


def _fsync_fails_on_directories(fd: int) -> None:
    import stat

    if stat.S_ISDIR(os.fstat(fd).st_mode):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    os.fsync(fd)


@pytest.mark.parametrize(("target", "fault", "message"), [
    ("_write", _fail(errno.ENOSPC), r"No space left on device \(ENOSPC\).*Nothing was committed"),
    ("_write", _fail(errno.EIO), r"Input/output error \(EIO\).*Nothing was committed"),
    ("_fsync", _fail(errno.EIO), r"Input/output error \(EIO\)"),
    ("_fsync", _fail(errno.ENOSPC), r"No space left on device \(ENOSPC\)"),
    ("_replace", _fail(errno.EIO), r"Input/output error \(EIO\)"),
    ("_fsync", _fsync_fails_on_directories, r"Input/output error \(EIO\)"),  # after the rename
    ("_open", _fail(errno.EROFS), r"Read-only file system \(EROFS\)"),        # read-only directory
    ("_open", _fail(errno.EACCES), r"Permission denied \(EACCES\).*permissions"),
])
def test_file_layer_fault_leaves_previous_state(store: TwinStore, monkeypatch: pytest.MonkeyPatch, target: str,
                                                fault: Callable[..., Any], message: str) -> None:
    _commit(store, 0, None)
    n_audit = len(store.audit.records())
    original = getattr(files, target)
    monkeypatch.setattr(files, target, fault)
    with pytest.raises(StoreError, match=message) as info:
        _commit(store, 1, 1)
    assert "version 2" in str(info.value) and store.pseudonym("P1") in str(info.value)
    monkeypatch.setattr(files, target, original)
    _assert_previous_state(store, n_audit)
    assert _commit(store, 1, 1) == 2  # the fault gone, the same commit succeeds
    assert_idata_identical(make_idata(1), store.load_version("P1", 2).posterior)


def test_database_full_leaves_previous_state(store: TwinStore) -> None:
    _commit(store, 0, None)
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLITE_FULL after a few more pages

    def state() -> tuple[list[int], int, list[int]]:
        return (store.history("P1")["version"].tolist(), len(store.audit.records()),
                store.history("P1")["n_records"].tolist())

    failures = 0
    for i in range(40):  # alternate records and commits until the database is full, then a few more times
        before = state()
        try:
            if i % 2:
                _commit(store, 100 + i, store.head("P1"))
            else:
                store.add_record("P1", 1, "note", {"text": "x" * 3000, "i": i})
        except StoreError as err:
            assert "database or disk is full. Nothing was committed" in str(err)
            assert state() == before
            failures += 1
    assert failures >= 10
    store._conn.execute(f"PRAGMA max_page_count = {2**30}")
    report = store.check_integrity(raise_on_error=True)
    assert report.temporary_files == []
    for version in store.history("P1")["version"]:
        store.load_version("P1", int(version))


def test_read_only_database_leaves_previous_state(store: TwinStore) -> None:
    _commit(store, 0, None)
    n_audit = len(store.audit.records())
    store._conn.execute("PRAGMA query_only = ON")  # every write refused, as on a read-only database
    with pytest.raises(StoreError, match=r"committing version 2 of patient .*failed.*Nothing was committed"):
        _commit(store, 1, 1)
    with pytest.raises(StoreError, match=r"adding a note record to version 1"):
        store.add_record("P1", 1, "note", {})
    store._conn.execute("PRAGMA query_only = OFF")
    _assert_previous_state(store, n_audit)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions; "
                    "the EROFS/EACCES cases above inject the same failure through the file layer")
def test_read_only_directory_on_disk(store: TwinStore) -> None:  # pragma: no cover - runs as non-root only
    _commit(store, 0, None)
    n_audit = len(store.audit.records())
    objects = store.path / "objects"
    objects.chmod(0o555)
    try:
        with pytest.raises(StoreError, match=r"Permission denied"):
            _commit(store, 1, 1)
    finally:
        objects.chmod(0o755)
    _assert_previous_state(store, n_audit)


def test_damaged_file_is_reported_not_loaded(store: TwinStore) -> None:
    _commit(store, 0, None)
    digest = store.load_version("P1").posterior_hash
    path = store.path / "objects" / f"{digest}.nc"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"file .*{digest}.nc has SHA-256 .*altered or corrupted"):
        store.load_version("P1", 1)
    report = store.check_integrity()
    assert not report.ok and "altered or corrupted" in report.problems[0]
    from bayestwin.exceptions import StoreIntegrityError

    with pytest.raises(StoreIntegrityError, match=r"(?s)FAILED its integrity check.*restore it from a backup"):
        store.check_integrity(raise_on_error=True)
    path.unlink()
    assert "is missing" in store.check_integrity().problems[0]
    _commit(store, 0, 1)  # committing the same content again repairs the file (content addressing)
    assert store.check_integrity().ok


def test_sqlite_connection_pragmas(store: TwinStore) -> None:
    conn = store._conn
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert isinstance(conn, sqlite3.Connection)


def test_unwritable_store_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match=r"cannot open the twin store at .*writable"):
        TwinStore.open(blocker / "store")
    assert isinstance(StoreError("x"), OSError)
    del monkeypatch
