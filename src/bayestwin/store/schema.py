"""The store's SQLite schema and connection settings.

Journal mode: we choose SQLite's classic **rollback journal** (``journal_mode=DELETE``), not WAL.
Commits are rare (one per fit, forecast or recommendation, seconds to minutes apart),
so WAL's faster commits and concurrent readers buy nothing here, while the rollback
journal keeps every committed transaction inside ``store.sqlite`` itself: copying or
backing up the store directory can never miss commits still sitting in a ``-wal``
file, and the store also works on network file systems, where WAL's shared-memory
index does not. With ``synchronous=FULL`` a transaction is on disk when ``COMMIT``
returns; after a crash SQLite rolls back any half-written transaction from the journal.

Tables: ``meta`` (schema version, key fingerprint), ``objects`` (content-addressed
posterior files), ``versions`` (each twin's append-only history), ``records``
(forecasts and recommendations made from a version) and ``audit`` (the hash chain,
see :mod:`bayestwin.store.audit`). Triggers refuse ``UPDATE`` and ``DELETE`` on all of
them but ``meta``: history is appended to, never rewritten.

Examples
--------
>>> import tempfile, os
>>> conn = connect(os.path.join(tempfile.mkdtemp(), "store.sqlite"))
>>> create_schema(conn)
>>> conn.execute("PRAGMA foreign_keys").fetchone()[0], conn.execute("PRAGMA synchronous").fetchone()[0]
(1, 2)
"""

from __future__ import annotations

import os
import sqlite3

from bayestwin.store.audit import AuditLog

__all__ = ["DB_NAME", "SCHEMA_VERSION", "connect", "create_schema"]

DB_NAME = "store.sqlite"
SCHEMA_VERSION = "1"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    hash TEXT PRIMARY KEY CHECK (length(hash) = 64),
    size INTEGER NOT NULL CHECK (size >= 0),
    kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    patient TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    parent INTEGER,
    data_hash TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    population_version TEXT,
    posterior_hash TEXT NOT NULL REFERENCES objects(hash),
    diagnostics TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    actor TEXT NOT NULL,
    audit_seq INTEGER NOT NULL REFERENCES audit(seq),
    audit_hash TEXT NOT NULL,
    UNIQUE (patient, version),
    CHECK ((version = 1 AND parent IS NULL) OR parent = version - 1)
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    version_id INTEGER NOT NULL REFERENCES versions(id),
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    actor TEXT NOT NULL,
    audit_seq INTEGER NOT NULL REFERENCES audit(seq),
    audit_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_version ON records(version_id);
"""
_APPEND_ONLY = ("objects", "versions", "records")


def connect(path: str | os.PathLike[str], *, timeout_s: float = 30.0) -> sqlite3.Connection:
    """Open the store database with the durability settings; autocommit mode (we issue ``BEGIN``).

    ``busy_timeout`` makes a writer wait up to `timeout_s` for another process's
    transaction instead of failing at once.

    Examples
    --------
    >>> import tempfile, os
    >>> connect(os.path.join(tempfile.mkdtemp(), "s.sqlite")).execute("PRAGMA journal_mode").fetchone()[0]
    'delete'
    """
    conn = sqlite3.connect(os.fspath(path), timeout=timeout_s, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    conn.execute("PRAGMA journal_mode = DELETE")  # rollback journal: see the module docstring
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every table, index and append-only trigger if missing (idempotent, one transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        AuditLog(conn).create_schema()
        for statement in _TABLES.split(";"):
            if statement.strip():
                conn.execute(statement)
        for table in _APPEND_ONLY:
            for op in ("UPDATE", "DELETE"):
                conn.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                             f"BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
