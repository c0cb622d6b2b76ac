"""The store's SQLite schema and connection settings.

Journal mode: we choose SQLite's classic **rollback journal** (``journal_mode=DELETE``), not WAL.
Commits are rare (one per fit, forecast or recommendation, seconds to minutes apart),
so WAL's faster commits and concurrent readers buy nothing here, while the rollback
journal keeps every committed transaction inside ``store.sqlite`` itself: copying or
backing up the store directory can never miss commits still sitting in a ``-wal``
file, and the store also works on network file systems, where WAL's shared-memory
index does not. With ``synchronous=FULL`` a transaction is on disk when ``COMMIT``
returns; after a crash SQLite rolls back any half-written transaction from the journal.

Tables: ``meta`` (schema version, store id, key fingerprint, encryption scheme and key
check), ``objects`` (content-addressed posterior files), ``versions`` (each twin's append-only history), ``records``
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
from collections.abc import Iterator
from contextlib import contextmanager

from bayestwin.store.audit import AuditLog
from bayestwin.store.encryption import SCHEME, ObjectCipher, new_store_id

__all__ = ["DB_NAME", "SCHEMA_VERSION", "connect", "create_schema", "init_meta", "transaction"]

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


def init_meta(conn: sqlite3.Connection, *, key_fingerprint: str, encryption_secret: bytes | None) -> dict[str, str]:
    """Record what a store is made with, once; return every ``meta`` row (call inside a write transaction).

    The first open records the pseudonymisation key's fingerprint and a random store id. The
    encryption scheme is settled while the store holds no objects: ``aes-256-gcm/1`` (with the
    encryption key's check value) when `encryption_secret` is given, ``'none'`` otherwise; a store
    that existed before encryption was available is ``'none'``. Later opens only read the rows.

    Examples
    --------
    >>> import tempfile, os
    >>> conn = connect(os.path.join(tempfile.mkdtemp(), "s.sqlite")); create_schema(conn)
    >>> meta = init_meta(conn, key_fingerprint="f" * 16, encryption_secret=None)
    >>> meta["encryption"], len(meta["store_id"])
    ('none', 32)
    """
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('key_fingerprint', ?)", (key_fingerprint,))
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (new_store_id(),))
    meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    if "encryption" not in meta:
        empty = conn.execute("SELECT count(*) FROM objects").fetchone()[0] == 0
        rows = {"encryption": "none"}
        if encryption_secret is not None and empty:
            cipher = ObjectCipher(encryption_secret, store_id=meta["store_id"])
            rows = {"encryption": SCHEME, "encryption_key_check": cipher.fingerprint}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", list(rows.items()))
        meta.update(rows)
    return meta


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (take the write lock before reading, so checks and writes see one state) ... ``COMMIT``.

    Any exception rolls the transaction back and propagates.

    Examples
    --------
    >>> conn = sqlite3.connect(":memory:", isolation_level=None)
    >>> with transaction(conn):
    ...     _ = conn.execute("CREATE TABLE t (x)")
    >>> conn.in_transaction
    False
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
