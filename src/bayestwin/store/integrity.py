"""The store's integrity check: files, rows and audit links, all verified.

Checks, in order: SQLite's own ``integrity_check`` and ``foreign_key_check``;
every object row has its file, of the recorded size and SHA-256 (in an encrypted store,
after its AES-GCM tag authenticates it: the check needs the key); every patient's
versions run 1, 2, ... without gaps; every version and record points at the audit
record that logged it (same hash); the audit chain verifies. Files nobody refers
to (left by a crash between the file write and the commit) and temporary files
are listed, not counted as problems: they are invisible to readers, and may be
deleted while no writer is running.

Examples
--------
>>> import tempfile
>>> from bayestwin.store.twin_store import TwinStore
>>> print(check_integrity(TwinStore.open(tempfile.mkdtemp(), key="k" * 32)))
store OK: 0 versions of 0 patients, 0 records, 0 files, 0 audit records
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bayestwin.exceptions import StoreError, StoreIntegrityError
from bayestwin.store import files

if TYPE_CHECKING:  # pragma: no cover
    from bayestwin.store.twin_store import TwinStore

__all__ = ["IntegrityReport", "check_integrity"]


@dataclass(frozen=True)
class IntegrityReport:
    """Outcome of :func:`check_integrity`: ``ok``, counts, one line per problem, and leftover files."""

    ok: bool
    problems: list[str]
    n_versions: int
    n_patients: int
    n_records: int
    n_files: int
    n_audit: int
    unreferenced_files: list[Path] = field(default_factory=list)
    temporary_files: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        head = (f"{self.n_versions} versions of {self.n_patients} patients, {self.n_records} records, "
                f"{self.n_files} files, {self.n_audit} audit records")
        if self.ok:
            return f"store OK: {head}"
        return f"store FAILED its integrity check ({head}):\n" + "\n".join(f"  - {p}" for p in self.problems)


def check_integrity(store: TwinStore, *, raise_on_error: bool = False) -> IntegrityReport:
    """Check `store` completely; with `raise_on_error`, raise ``StoreIntegrityError`` on any problem."""
    conn = store._conn
    problems: list[str] = []
    conn.execute("BEGIN")  # one read snapshot for all row checks
    try:
        problems += [f"SQLite: {r[0]}" for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"row {rowid} of table {table} refers to a missing row of {parent}"
                     for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check")]
        objects = conn.execute("SELECT hash, size FROM objects").fetchall()
        versions = conn.execute("SELECT patient, version, audit_seq, audit_hash FROM versions "
                                "ORDER BY patient, version").fetchall()
        records = conn.execute("SELECT id, audit_seq, audit_hash FROM records").fetchall()
        audit = {r.seq: r for r in store.audit.records()}
    finally:
        conn.execute("COMMIT")
    for digest, size in objects:
        path = store._object_path(digest)
        try:
            data = store._objects.read(digest)
        except StoreError as err:
            problems.append(str(err))
            continue
        if len(data) != size:
            problems.append(f"file {path} has {len(data)} bytes, the store recorded {size}")
    expected: dict[str, int] = {}
    for patient, version, seq, digest in versions:
        want = expected.get(patient, 0) + 1
        if version != want:
            problems.append(f"patient {patient}: version {version} follows {want - 1}; versions are missing")
        expected[patient] = version
        if seq not in audit or audit[seq].hash != digest or audit[seq].action != "commit":
            problems.append(f"patient {patient}, version {version}: its audit record {seq} is missing or altered")
    for rid, seq, digest in records:
        if seq not in audit or audit[seq].hash != digest:
            problems.append(f"record {rid}: its audit record {seq} is missing or altered")
    chain = store.audit.verify()
    if not chain.ok:
        problems.append(str(chain))
    known = {store._object_path(d).name for d, _ in objects}
    present = sorted((store.path / "objects").iterdir()) if (store.path / "objects").is_dir() else []
    report = IntegrityReport(
        ok=not problems, problems=problems, n_versions=len(versions), n_patients=len(expected),
        n_records=len(records), n_files=len(objects), n_audit=len(audit),
        unreferenced_files=[p for p in present if p.name not in known and not p.name.startswith(files.TMP_PREFIX)],
        temporary_files=[p for p in present if p.name.startswith(files.TMP_PREFIX)])
    if raise_on_error and not report.ok:
        raise StoreIntegrityError(f"{report}\nThe store at {store.path} is damaged; restore it from a backup.",
                                  report)
    return report
