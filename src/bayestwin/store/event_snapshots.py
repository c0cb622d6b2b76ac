"""The event snapshot of each twin version: the patient's events the posterior was fitted on.

A version's row keeps ``data_hash`` (the hash of the patient's canonical event table); to refit,
update or audit a version one needs the events themselves. They are stored like posteriors: a
content-addressed object written through the store's object files (so an encrypted store encrypts
them too; object kind ``events``), linked to its version by one row of the append-only
``version_events`` table, inserted in the version's own transaction. The table is created on first
use, so stores made before it existed open unchanged; their versions simply have no snapshot.

The snapshot's bytes are made and read by the data layer (:mod:`bayestwin.data.snapshot`: canonical
JSON with the patient id replaced by the pseudonym); the store treats them as opaque bytes.

Examples
--------
>>> import tempfile, numpy as np, arviz as az
>>> from bayestwin.store import TwinStore
>>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
>>> post = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 4))}, attrs={}))
>>> v = store.commit_version("A", posterior=post, data_hash="d", spec_hash="s", population_version=None,
...                          diagnostics={}, expected_parent=None, events=b'{"events": []}')
>>> load_events(store, "A", v)
b'{"events": []}'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bayestwin.exceptions import StoreError

if TYPE_CHECKING:  # pragma: no cover - types only
    from bayestwin.store.twin_store import TwinStore

__all__ = ["OBJECT_KIND", "link_events", "load_events"]

OBJECT_KIND = "events"
_TABLE = """
CREATE TABLE IF NOT EXISTS version_events (
    version_id INTEGER PRIMARY KEY REFERENCES versions(id),
    events_hash TEXT NOT NULL REFERENCES objects(hash)
)"""


def link_events(store: TwinStore, version_id: int, digest: str, size: int) -> None:
    """Record that version row `version_id` was fitted on the events object `digest` (inside a transaction)."""
    store._conn.execute(_TABLE)
    for op in ("UPDATE", "DELETE"):
        store._conn.execute(f"CREATE TRIGGER IF NOT EXISTS version_events_no_{op.lower()} BEFORE {op} ON "
                            "version_events BEGIN SELECT RAISE(ABORT, 'version_events are append-only'); END")
    store._conn.execute("INSERT OR IGNORE INTO objects VALUES (?, ?, ?)", (digest, size, OBJECT_KIND))
    store._conn.execute("INSERT INTO version_events VALUES (?, ?)", (version_id, digest))


def events_hash(store: TwinStore, version_id: int) -> str | None:
    """The events object of version row `version_id`, or ``None`` if it was committed without one."""
    has_table = store._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'version_events'"
                                    ).fetchone()
    if has_table is None:
        return None
    row = store._conn.execute("SELECT events_hash FROM version_events WHERE version_id = ?", (version_id,)).fetchone()
    return None if row is None else str(row[0])


def load_events(store: TwinStore, patient: object, version: int | None = None) -> bytes:
    """The event snapshot of `patient`'s `version` (default: the latest), authenticated and hash-checked.

    Raises
    ------
    StoreError
        If the patient has no such version, or the version was committed without its events
        (``commit_version`` without ``events=``, or by a bayestwin older than event snapshots).
    StoreIntegrityError
        If the snapshot file is missing or altered.
    """
    pseudo = store.pseudonym(patient)
    row = store._version_row(pseudo, version if version is not None else store._head(pseudo))
    digest = events_hash(store, int(row["id"]))
    if digest is None:
        raise StoreError(f"version {row['version']} of patient {pseudo} in {store.path} was committed without its "
                         "events (only their hash), so it cannot be rebuilt or updated. Fit the twin again from "
                         "the patient's data (bayestwin fit ...) and commit it; later versions keep their events.")
    return store._objects.read(digest)
