"""A tamper-evident audit trail: an append-only, hash-chained log kept in the store's SQLite file.

Each record holds who did what, when (UTC), on which subject (a patient
pseudonym), the hashes of its inputs and output, and the bayestwin version. Its
``hash`` is the SHA-256 of the canonical JSON of all those fields *plus its
sequence number and the hash of the record before it*. :meth:`AuditLog.verify`
walks the chain from the first record and names the first record that does not
fit: an edited record fails its own hash, a deleted, inserted or moved record
breaks the sequence or the link to its predecessor.

Limits: anyone who can write the file can rewrite the chain from some point on
and recompute every hash after it. Versions and records in the store keep the
hash of their audit record, so such a rewrite must also edit them; to catch even
that, copy :meth:`AuditLog.head` somewhere else (a ticket, an e-mail, a second
system) and pass it back to ``verify(expected_head=...)``. Deleting the newest
records is detected the same way, and through the versions that refer to them.

Examples
--------
>>> import sqlite3
>>> log = AuditLog(sqlite3.connect(":memory:", isolation_level=None))
>>> log.create_schema()
>>> log.append(actor="dr.a", action="commit", subject="p-1", inputs={"data": "sha256:ab"}, output_hash="cd").seq
1
>>> log.verify().ok
True
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from bayestwin.exceptions import AuditError

__all__ = ["GENESIS", "AuditLog", "AuditRecord", "AuditReport", "software_label"]

GENESIS = "0" * 64  # the "previous hash" of the first record

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        time_utc TEXT NOT NULL,
        subject TEXT,
        inputs TEXT NOT NULL,
        output_hash TEXT,
        software TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    )""",
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
)
_FIELDS = ("seq", "actor", "action", "time_utc", "subject", "inputs", "output_hash", "software", "prev_hash", "hash")


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry. ``inputs`` maps input names to hashes; ``hash`` chains it to ``prev_hash``."""

    seq: int
    actor: str
    action: str
    time_utc: str
    subject: str | None
    inputs: dict[str, str]
    output_hash: str | None
    software: str
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        """SHA-256 of the canonical JSON of every field except ``hash``.

        Examples
        --------
        >>> r = AuditRecord(1, "a", "commit", "2026-01-01T00:00:00Z", None, {}, None, "0.1", GENESIS, "")
        >>> len(r.computed_hash())
        64
        """
        body = {k: v for k, v in asdict(self).items() if k != "hash"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def describe(self) -> str:
        """Short text naming the record (sequence number, action, subject, time)."""
        subject = self.subject or "-"
        return f"audit record {self.seq} ({self.action!r} by {self.actor!r} on {subject} at {self.time_utc})"


@dataclass(frozen=True)
class AuditReport:
    """Outcome of :meth:`AuditLog.verify`: ``ok``, the number of records, and the first bad one."""

    ok: bool
    n_records: int
    first_bad_seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit log OK: {self.n_records} records, chain intact"
        return f"audit log FAILED at record {self.first_bad_seq}: {self.problem}"


class AuditLog:
    """The hash-chained audit log in an open SQLite connection (``isolation_level=None``).

    :meth:`append` does not open a transaction itself: call it inside the caller's
    transaction so that an action and its audit record commit together or not at all.

    Parameters
    ----------
    conn : sqlite3.Connection
        Connection in autocommit mode; the caller manages ``BEGIN``/``COMMIT``.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def create_schema(self) -> None:
        """Create the ``audit`` table and its append-only triggers if missing (inside any open transaction)."""
        for statement in _SCHEMA:
            self.conn.execute(statement)

    def append(self, *, actor: str, action: str, subject: str | None, inputs: Mapping[str, str],
               output_hash: str | None, software: str = "", time_utc: str | None = None) -> AuditRecord:
        """Append one record after the current head; return it (with its hash).

        Examples
        --------
        >>> log = AuditLog(sqlite3.connect(":memory:", isolation_level=None)); log.create_schema()
        >>> a = log.append(actor="x", action="export", subject=None, inputs={}, output_hash=None)
        >>> b = log.append(actor="x", action="export", subject=None, inputs={}, output_hash=None)
        >>> b.prev_hash == a.hash
        True
        """
        row = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (1, GENESIS) if row is None else (row[0] + 1, row[1])
        when = time_utc or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        draft = AuditRecord(seq, actor, action, when, subject, dict(sorted(inputs.items())), output_hash, software,
                            prev, "")
        record = AuditRecord(**{**asdict(draft), "hash": draft.computed_hash()})
        self.conn.execute(f"INSERT INTO audit ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})",
                          _to_row(record))
        return record

    def records(self) -> list[AuditRecord]:
        """Every record in sequence order.

        Examples
        --------
        >>> log = AuditLog(sqlite3.connect(":memory:", isolation_level=None)); log.create_schema()
        >>> log.records()
        []
        """
        rows = self.conn.execute(f"SELECT {', '.join(_FIELDS)} FROM audit ORDER BY seq").fetchall()
        return [_from_row(r) for r in rows]

    def head(self) -> str:
        """Hash of the newest record (``GENESIS`` when empty): keep a copy elsewhere to detect rewrites.

        Examples
        --------
        >>> log = AuditLog(sqlite3.connect(":memory:", isolation_level=None)); log.create_schema()
        >>> log.head() == GENESIS
        True
        """
        row = self.conn.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return GENESIS if row is None else str(row[0])

    def verify(self, *, expected_head: str | None = None, raise_on_error: bool = False) -> AuditReport:
        """Walk the chain; report the first edited, deleted, inserted or reordered record.

        Parameters
        ----------
        expected_head : str, optional
            A head hash saved earlier (:meth:`head`); the chain must contain it, which also catches
            deleted newest records and a chain recomputed from an earlier point.
        raise_on_error : bool
            Raise ``AuditError`` instead of returning a failed report.

        Examples
        --------
        >>> log = AuditLog(sqlite3.connect(":memory:", isolation_level=None)); log.create_schema()
        >>> _ = log.append(actor="x", action="commit", subject="p-1", inputs={}, output_hash="ab")
        >>> print(log.verify())
        audit log OK: 1 records, chain intact
        """
        try:
            records = self.records()
        except (sqlite3.DatabaseError, ValueError, TypeError) as err:
            report = AuditReport(False, 0, None, f"the audit table cannot be read ({err}); restore the store "
                                                 "from a backup")
            return _finish(report, raise_on_error)
        prev: AuditRecord | None = None
        seen: dict[str, int] = {}
        for rec in records:
            bad_seq, problem = _check_one(rec, prev, seen)
            if problem:
                return _finish(AuditReport(False, len(records), bad_seq, problem), raise_on_error)
            seen[rec.hash] = rec.seq
            prev = rec
        if expected_head is not None and expected_head not in {r.hash for r in records}:
            last = prev.seq if prev else 0
            report = AuditReport(False, len(records), last + 1,
                                 f"the saved head {expected_head[:12]}... is not in the log (last record {last}): "
                                 "records were deleted from the end, or the chain was rewritten")
            return _finish(report, raise_on_error)
        return AuditReport(True, len(records))


def software_label() -> str:
    """The ``software`` field of new audit records: ``"bayestwin <version>"``.

    Examples
    --------
    >>> software_label().startswith("bayestwin ")
    True
    """
    import bayestwin

    return f"bayestwin {bayestwin.__version__}"


def _check_one(rec: AuditRecord, prev: AuditRecord | None, seen: Mapping[str, int]) -> tuple[int, str]:
    want_seq = 1 if prev is None else prev.seq + 1
    want_prev = GENESIS if prev is None else prev.hash
    if rec.seq != want_seq:
        return rec.seq, (f"{rec.describe()} follows record {want_seq - 1}: record {want_seq} was deleted, or "
                         "records were renumbered; restore the store from a backup")
    if rec.prev_hash != want_prev:
        if prev is not None and seen.get(rec.prev_hash) == prev.seq - 1:
            return prev.seq, (f"{prev.describe()} was inserted: the record after it links to record {prev.seq - 1}, "
                              "skipping it; restore the store from a backup")
        before = "the start of the log" if prev is None else prev.describe()
        return rec.seq, (f"{rec.describe()} does not link to {before}: records were deleted, inserted or moved "
                         "here; restore the store from a backup")
    if rec.computed_hash() != rec.hash:
        return rec.seq, (f"{rec.describe()} was edited: its content no longer matches its hash {rec.hash[:12]}...; "
                         "restore the store from a backup")
    return rec.seq, ""


def _finish(report: AuditReport, raise_on_error: bool) -> AuditReport:
    if raise_on_error and not report.ok:
        raise AuditError(str(report), report)
    return report


def _to_row(r: AuditRecord) -> tuple[object, ...]:
    return (r.seq, r.actor, r.action, r.time_utc, r.subject, json.dumps(r.inputs, sort_keys=True), r.output_hash,
            r.software, r.prev_hash, r.hash)


def _from_row(row: tuple[object, ...]) -> AuditRecord:
    values = dict(zip(_FIELDS, row, strict=True))
    values["inputs"] = json.loads(str(values["inputs"]))
    return AuditRecord(**values)  # type: ignore[arg-type]
