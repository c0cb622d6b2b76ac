"""The hash-chained audit log: every edit, deletion, insertion and reordering is detected and located."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storekit import make_idata

from bayestwin.exceptions import AuditError
from bayestwin.store import AuditLog, AuditRecord, TwinStore


def _filled(store: TwinStore) -> None:
    """Six audit records: three commits, two records, one export."""
    for v in (1, 2, 3):
        store.commit_version("P1", posterior=make_idata(v), data_hash=f"d{v}", spec_hash="s", population_version="pop",
                             diagnostics={}, expected_parent=v - 1 or None)
    store.add_record("P1", 2, "forecast", {"median": 1.5})
    store.add_record("P1", 3, "recommendation", {"dose_mg": 200})
    store.log_action("export", patient="P1", inputs={"posterior": "ab"}, output_hash="cd")


def _tamper(store: TwinStore, *statements: tuple[str, tuple[object, ...]]) -> None:
    """What an attacker with the file can do: drop the append-only triggers and rewrite rows."""
    with sqlite3.connect(store.path / "store.sqlite") as raw:
        raw.execute("DROP TRIGGER audit_no_update")
        raw.execute("DROP TRIGGER audit_no_delete")
        for sql, args in statements:
            raw.execute(sql, args)


def _record(store: TwinStore, seq: int) -> AuditRecord:
    return next(r for r in store.audit.records() if r.seq == seq)


def test_intact_log_verifies_and_records_every_action(store: TwinStore) -> None:
    _filled(store)
    report = store.verify_audit(expected_head=store.audit.head())
    assert report.ok and report.n_records == 6
    records = store.audit.records()
    assert [r.action for r in records] == ["commit", "commit", "commit", "forecast", "recommendation", "export"]
    assert all(r.subject == store.pseudonym("P1") and r.actor == "tester" for r in records)
    assert all(r.time_utc.endswith("Z") and r.software.startswith("bayestwin ") for r in records)
    assert records[0].inputs == {"data": "d1", "parent": "None", "population": "pop", "spec": "s"}
    assert records[0].output_hash == store.load_version("P1", 1).posterior_hash
    with sqlite3.connect(store.path / "store.sqlite") as raw, pytest.raises(sqlite3.IntegrityError,
                                                                          match=r"append-only"):
        raw.execute("DELETE FROM audit WHERE seq = 6")


def test_edited_record_is_named(store: TwinStore) -> None:
    _filled(store)
    _tamper(store, ("UPDATE audit SET actor = 'mallory' WHERE seq = 3", ()))
    report = store.verify_audit()
    assert (report.ok, report.first_bad_seq) == (False, 3)
    with pytest.raises(AuditError, match=r"FAILED at record 3: audit record 3 \('commit' by 'mallory'.*was edited"):
        store.verify_audit(raise_on_error=True)
    assert not store.check_integrity().ok


def test_deleted_record_is_named(store: TwinStore) -> None:
    _filled(store)
    _tamper(store, ("DELETE FROM audit WHERE seq = 3", ()))
    report = store.verify_audit()
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert "record 3 was deleted" in report.problem
    assert any("version 3: its audit record 3 is missing" in p for p in store.check_integrity().problems)


def test_deleted_and_renumbered_record_is_named(store: TwinStore) -> None:
    _filled(store)
    _tamper(store, ("DELETE FROM audit WHERE seq = 3", ()), ("UPDATE audit SET seq = seq + 100 WHERE seq > 3", ()),
            ("UPDATE audit SET seq = seq - 101 WHERE seq > 100", ()))
    report = store.verify_audit()
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "does not link to audit record 2" in report.problem


def test_deleted_newest_record_is_caught_by_the_saved_head(store: TwinStore) -> None:
    _filled(store)
    head = store.audit.head()
    _tamper(store, ("DELETE FROM audit WHERE seq = 6", ()))
    assert store.verify_audit().ok  # the chain alone cannot see a cut tail ...
    report = store.verify_audit(expected_head=head)  # ... the head saved elsewhere can
    assert (report.ok, report.first_bad_seq) == (False, 6)
    assert "saved head" in report.problem and "deleted from the end" in report.problem
    with pytest.raises(AuditError, match=r"FAILED at record 6"):
        store.verify_audit(expected_head=head, raise_on_error=True)


def test_inserted_record_is_named(store: TwinStore) -> None:
    _filled(store)
    before = _record(store, 2)
    forged = AuditRecord(3, "mallory", "commit", before.time_utc, before.subject, {}, "ff" * 32, before.software,
                         before.hash, "")
    forged = AuditRecord(**{**asdict(forged), "hash": forged.computed_hash()})  # a well-formed forgery
    row = (forged.seq, forged.actor, forged.action, forged.time_utc, forged.subject, "{}", forged.output_hash,
           forged.software, forged.prev_hash, forged.hash)
    _tamper(store, ("UPDATE audit SET seq = seq + 100 WHERE seq >= 3", ()),
            ("UPDATE audit SET seq = seq - 99 WHERE seq > 100", ()),
            ("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row))
    report = store.verify_audit()
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "audit record 3 ('commit' by 'mallory'" in report.problem and "was inserted" in report.problem


def test_naively_inserted_record_is_named(store: TwinStore) -> None:
    _filled(store)
    _tamper(store, ("UPDATE audit SET seq = seq + 100 WHERE seq >= 4", ()),
            ("UPDATE audit SET seq = seq - 99 WHERE seq > 100", ()),
            ("INSERT INTO audit SELECT 4, 'mallory', action, time_utc, subject, inputs, output_hash, software, "
             "hash, 'ab' FROM audit WHERE seq = 3", ()))
    report = store.verify_audit()
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_reordered_records_are_named(store: TwinStore) -> None:
    _filled(store)
    _tamper(store, ("UPDATE audit SET seq = 100 WHERE seq = 4", ()), ("UPDATE audit SET seq = 4 WHERE seq = 5", ()),
            ("UPDATE audit SET seq = 5 WHERE seq = 100", ()))
    report = store.verify_audit()
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert "audit record 4 ('recommendation'" in report.problem and "moved" in report.problem


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_any_single_edit_is_located(n: int, data: st.DataObject) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    log = AuditLog(conn)
    log.create_schema()
    for i in range(n):
        log.append(actor=f"a{i}", action="commit", subject=f"p-{i}", inputs={"x": str(i)}, output_hash=str(i))
    seq = data.draw(st.integers(1, n))
    column = data.draw(st.sampled_from(["actor", "action", "time_utc", "subject", "inputs", "output_hash",
                                        "software"]))
    value = data.draw(st.text(min_size=1, max_size=8))
    old = conn.execute(f"SELECT {column} FROM audit WHERE seq = ?", (seq,)).fetchone()[0]
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute(f"UPDATE audit SET {column} = ? WHERE seq = ?", ('{"y": "1"}' if column == "inputs" else value, seq))
    report = log.verify()
    changed = conn.execute(f"SELECT {column} FROM audit WHERE seq = ?", (seq,)).fetchone()[0] != old
    assert report.ok is not changed
    if changed:
        assert report.first_bad_seq == seq


def test_unreadable_audit_table_is_reported(tmp_path: Path) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY)")
    report = AuditLog(conn).verify()
    assert not report.ok and "cannot be read" in report.problem
