"""TwinStore: the embedded, versioned, crash-safe store of patient twins.

A store is a directory::

    store/
    ├── store.sqlite          metadata, history, records, audit chain (see schema.py)
    └── objects/<sha256>.nc   one posterior per file (InferenceData as NetCDF-4), named by its content hash
                              (<sha256>.nc.enc, AES-256-GCM, in an encrypted store: see encryption.py)

A version becomes visible in one SQLite transaction, inserted only after its
posterior file is durable (temporary file, fsync, atomic rename, directory fsync).
A crash at any point leaves either the old state or the new one; at worst an
unreferenced posterior file, which :meth:`TwinStore.check_integrity` lists.

Examples
--------
>>> import tempfile, numpy as np, arviz as az
>>> store = TwinStore.open(tempfile.mkdtemp(), key="an example key of at least 32 bytes")
>>> post = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((2, 5))}, attrs={}))
>>> store.commit_version("MRN-1", posterior=post, data_hash="sha256:aa", spec_hash="sha256:bb",
...                      population_version="pop-1", diagnostics={"ok": True}, expected_parent=None)
1
>>> store.history("MRN-1")[["version", "parent", "population_version"]]
   version parent population_version
0        1   None              pop-1
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bayestwin.exceptions import StoreConflictError, StoreError
from bayestwin.store import actions, event_snapshots, populations
from bayestwin.store.audit import AuditLog, AuditReport, software_label
from bayestwin.store.netcdf import idata_from_bytes, idata_to_bytes
from bayestwin.store.objects import ObjectFiles
from bayestwin.store.opening import OBJECTS, default_actor, open_parts
from bayestwin.store.pseudonym import Pseudonymizer
from bayestwin.store.schema import DB_NAME, transaction
from bayestwin.store.scrub import check_no_identifier, scrub_payload, to_json

__all__ = ["StoredVersion", "TwinStore"]

_HISTORY_COLUMNS = ["patient", "version", "parent", "created_utc", "actor", "data_hash", "spec_hash",
                    "population_version", "posterior_hash", "posterior_bytes", "diagnostics", "n_records"]


@dataclass(frozen=True)
class StoredVersion:
    """One loaded version: the posterior exactly as committed, its metadata and the records made from it."""

    patient: str
    version: int
    parent: int | None
    created_utc: str
    actor: str
    data_hash: str
    spec_hash: str
    population_version: str | None
    posterior_hash: str
    diagnostics: dict[str, Any]
    posterior: Any
    records: list[dict[str, Any]] = field(default_factory=list)


class TwinStore:
    """A versioned store of patient twins; open it with :meth:`TwinStore.open`.

    Patients are given as their own identifiers and filed under keyed pseudonyms
    (:class:`~bayestwin.store.pseudonym.Pseudonymizer`); the store holds no direct identifier.
    Every write appends an audit record in the same transaction.

    Examples
    --------
    >>> import tempfile
    >>> with TwinStore.open(tempfile.mkdtemp(), key="k" * 32, actor="dr.example") as store:
    ...     store.patients()
    []
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, pseudonymizer: Pseudonymizer, actor: str,
                 objects: ObjectFiles | None = None, store_id: str = "") -> None:
        self.path = path
        self._conn = conn
        self._pseudonym = pseudonymizer
        self._objects = objects or ObjectFiles(path / OBJECTS)
        self.actor = actor
        self.store_id = store_id
        self.audit = AuditLog(conn)

    # --- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, key: bytes | str | None = None,
             encryption_key: bytes | str | None = None, actor: str | None = None, create: bool = True,
             timeout_s: float = 30.0) -> TwinStore:
        """Open (or create) the store at `path`.

        Parameters
        ----------
        path : path
            Store directory.
        key : bytes or str, optional
            Pseudonymisation key; by default from ``BAYESTWIN_PSEUDONYM_KEY`` or ``BAYESTWIN_PSEUDONYM_KEY_FILE``.
        encryption_key : bytes or str, optional
            Secret (at least 32 bytes, not the pseudonymisation key) for AES-256-GCM encryption of the posterior
            files; by default from ``BAYESTWIN_ENCRYPTION_KEY`` or ``BAYESTWIN_ENCRYPTION_KEY_FILE``. Given when
            a store is created, it makes the store encrypted for good; an encrypted store refuses to open
            without it or with another key. Needs ``pip install 'bayestwin[crypto]'``.
        actor : str, optional
            Who acts, for the audit trail; default ``BAYESTWIN_ACTOR`` or the login name.
        create : bool
            Create a missing store; with ``False`` a missing store raises ``StoreError``.
        timeout_s : float
            How long a writer waits for another process's transaction.

        Examples
        --------
        >>> import tempfile, os
        >>> TwinStore.open(os.path.join(tempfile.mkdtemp(), "nowhere"), key="k" * 32, create=False)
        Traceback (most recent call last):
        ...
        bayestwin.exceptions.StoreError: no twin store at ...; pass create=True to make a new one, or check the path
        """
        parts = open_parts(path, key=key, encryption_key=encryption_key, create=create, timeout_s=timeout_s)
        return cls(parts.root, parts.conn, parts.pseudonymizer, default_actor(actor), parts.objects, parts.store_id)

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> TwinStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def encrypted(self) -> bool:
        """Whether the store's posterior files are encrypted at rest (AES-256-GCM)."""
        return self._objects.cipher is not None

    def __repr__(self) -> str:
        return (f"TwinStore({str(self.path)!r}, actor={self.actor!r}, key fingerprint {self._pseudonym.fingerprint}"
                f"{', encrypted' if self.encrypted else ''})")

    # --- writing ------------------------------------------------------------------------------
    def pseudonym(self, patient: object) -> str:
        """The pseudonym under which `patient` is filed (``p-<32 hex>``)."""
        return self._pseudonym(patient)

    def head(self, patient: object) -> int | None:
        """The patient's latest version number, or ``None`` if the patient has none."""
        return self._head(self.pseudonym(patient))

    def commit_version(self, patient: object, *, posterior: Any, data_hash: str, spec_hash: str,
                       population_version: str | None, diagnostics: Mapping[str, Any],
                       expected_parent: int | None, events: bytes | None = None) -> int:
        """Append a new version of `patient`'s twin; return its version number (1, 2, ...).

        Parameters
        ----------
        patient : str or int
            The patient's own identifier (pseudonymised before anything is written).
        posterior : arviz.InferenceData
            Stored bit for bit as NetCDF-4.
        data_hash, spec_hash : str
            Hashes of the patient's canonical event table and of the spec.
        population_version : str or None
            The population fit the twin was conditioned on.
        diagnostics : Mapping
            JSON-safe convergence summary.
        expected_parent : int or None
            The version this one builds on (``None`` for the first). If another writer
            has committed since, ``StoreConflictError`` is raised and nothing is written.
        events : bytes, optional
            The patient's event snapshot (:func:`bayestwin.data.snapshot.events_to_bytes`, patient id replaced
            by the pseudonym), stored as an object beside the posterior (:mod:`~.event_snapshots`).

        Examples
        --------
        >>> import tempfile, numpy as np, arviz as az
        >>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
        >>> post = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 4))}, attrs={}))
        >>> fields = dict(posterior=post, data_hash="d", spec_hash="s", population_version=None, diagnostics={})
        >>> store.commit_version("A", expected_parent=None, **fields)
        1
        >>> store.commit_version("A", expected_parent=None, **fields)
        Traceback (most recent call last):
        ...
        bayestwin.exceptions.StoreConflictError: patient p-... has moved on: its latest version is 1, ...
        """
        pseudo = self.pseudonym(patient)
        check_no_identifier(posterior, patient, where=f"the posterior of patient {pseudo}")
        diag = to_json(scrub_payload(dict(diagnostics), patient, pseudo))
        self._require_parent(pseudo, expected_parent, self._head(pseudo))
        data = idata_to_bytes(posterior)
        version = (expected_parent or 0) + 1
        digest = self._put_object(data, what=f"the posterior of patient {pseudo}, version {version}")
        events_digest = None if events is None else self._put_object(
            events, what=f"the events of patient {pseudo}, version {version}")
        inputs = {"data": data_hash, "spec": spec_hash, "population": population_version or "",
                  "parent": str(expected_parent)} | ({} if events_digest is None else {"events": events_digest})
        with self._writing(f"committing version {version} of patient {pseudo}"):
            self._require_parent(pseudo, expected_parent, self._head(pseudo))
            self._conn.execute("INSERT OR IGNORE INTO objects VALUES (?, ?, 'posterior')", (digest, len(data)))
            rec = self.audit.append(actor=self.actor, action="commit", subject=pseudo, software=software_label(),
                                    inputs=inputs, output_hash=digest)
            cur = self._conn.execute(
                "INSERT INTO versions (patient, version, parent, data_hash, spec_hash, population_version, "
                "posterior_hash, diagnostics, created_utc, actor, audit_seq, audit_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pseudo, version, expected_parent, data_hash, spec_hash, population_version, digest, diag,
                 rec.time_utc, self.actor, rec.seq, rec.hash))
            if events_digest is not None and events is not None:
                event_snapshots.link_events(self, int(cur.lastrowid or 0), events_digest, len(events))
        return version

    def commit_twin(self, twin: Any, events: Any = None, *, expected_parent: int | None) -> int:
        """Commit a fitted :class:`~bayestwin.twin.Twin` (posterior, diagnostics, events); see ``commit_version``.

        `events` defaults to the twin's own event table (``twin.events_``). The events are stored as a
        snapshot (patient id replaced by the pseudonym) and the twin's settings and final sampler state go
        into the diagnostics (:func:`~bayestwin.store.twin_fields.twin_fields`), so that
        ``Twin.from_store`` can rebuild and update the version.
        """
        from bayestwin.store.twin_fields import twin_fields

        fields = twin_fields(twin, events)
        table = fields.pop("events", None)
        snapshot = None
        if table is not None:
            from bayestwin.data.snapshot import events_to_bytes

            snapshot = events_to_bytes(table, label=self.pseudonym(fields["patient"]))
        return self.commit_version(**fields, events=snapshot, expected_parent=expected_parent)

    def add_record(self, patient: object, version: int, kind: str, payload: Mapping[str, Any] | str) -> int:
        """Append a JSON record (a forecast, a recommendation, ...) to a version; return the record id.

        A top-level ``"patient"`` field holding the patient's identifier is replaced by the
        pseudonym; any other occurrence of the identifier is refused with ``StoreError``.

        Examples
        --------
        >>> import tempfile, numpy as np, arviz as az
        >>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
        >>> post = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 4))}, attrs={}))
        >>> v = store.commit_version("A", posterior=post, data_hash="d", spec_hash="s", population_version=None,
        ...                          diagnostics={}, expected_parent=None)
        >>> store.add_record("A", v, "recommendation", {"patient": "A", "dose_mg": 250})
        1
        >>> store.load_version("A").records[0]["payload"]["patient"] == store.pseudonym("A")
        True
        """
        return actions.add_record(self, patient, version, kind, payload)

    def add_forecast(self, patient: object, version: int, forecast: Any) -> int:
        """Append a forecast (a :class:`~bayestwin.forecast.Forecast`, or its JSON) to a version."""
        payload = forecast.to_json() if hasattr(forecast, "to_json") else forecast
        return self.add_record(patient, version, "forecast", payload)

    def log_action(self, action: str, *, patient: object = None, inputs: Mapping[str, str] | None = None,
                   output_hash: str | None = None) -> int:
        """Append an audit record for an action done outside the store (an export, a CLI call); return its seq.

        Examples
        --------
        >>> import tempfile
        >>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
        >>> store.log_action("export", inputs={"table": "sha256:ab"}, output_hash="cd")
        1
        """
        return actions.log_action(self, action, patient=patient, inputs=inputs, output_hash=output_hash)

    def export_version(self, patient: object, version: int, directory: str | os.PathLike[str]) -> Path:
        """Write a version's posterior file to `directory` (named by pseudonym and version), audited.

        See :func:`bayestwin.store.actions.export_version`; the copy is not encrypted.
        """
        return actions.export_version(self, patient, version, directory)

    def export_deidentified(self, directory: str | os.PathLike[str], patients: Iterable[object] | None = None, *,
                            latest_only: bool = False) -> Any:
        """Write a de-identified copy of patients' versions and records to `directory` (HIPAA Safe Harbor), audited.

        Direct identifiers and free text removed, dates shifted per patient by a keyed whole-day
        offset, ages over 89 grouped as 90; see :func:`bayestwin.store.deidentify.export_deidentified` (with an
        example). Event snapshots are not exported.
        """
        from bayestwin.store.deidentify import export_deidentified

        return export_deidentified(self, directory, patients, latest_only=latest_only)

    # --- reading ------------------------------------------------------------------------------
    def patients(self) -> list[str]:
        """Pseudonyms of every patient with at least one version."""
        return [r[0] for r in self._conn.execute("SELECT DISTINCT patient FROM versions ORDER BY patient")]

    def history(self, patient: object) -> pd.DataFrame:
        """The patient's versions, oldest first, one row each (empty frame if none)."""
        pseudo = self.pseudonym(patient)
        rows = self._conn.execute(
            "SELECT v.patient, v.version, v.parent, v.created_utc, v.actor, v.data_hash, v.spec_hash, "
            "v.population_version, v.posterior_hash, o.size, v.diagnostics, "
            "(SELECT count(*) FROM records r WHERE r.version_id = v.id) "
            "FROM versions v JOIN objects o ON o.hash = v.posterior_hash WHERE v.patient = ? ORDER BY v.version",
            (pseudo,)).fetchall()
        frame = pd.DataFrame(rows, columns=_HISTORY_COLUMNS)
        frame["parent"] = frame["parent"].astype(object).where(frame["parent"].notna(), None)
        return frame

    def load_version(self, patient: object, version: int | None = None) -> StoredVersion:
        """Load a version (default: the latest) with its posterior exactly as committed; hash checked."""
        pseudo = self.pseudonym(patient)
        row = self._version_row(pseudo, version if version is not None else self._head(pseudo))
        data = self._objects.read(row["posterior_hash"])
        records = [{"kind": k, "payload": json.loads(p), "created_utc": t, "actor": a, "payload_hash": h}
                   for k, p, t, a, h in self._conn.execute(
                       "SELECT kind, payload, created_utc, actor, payload_hash FROM records WHERE version_id = ? "
                       "ORDER BY id", (row["id"],))]
        fields = {k: row[k] for k in ("patient", "version", "parent", "created_utc", "actor", "data_hash",
                                      "spec_hash", "population_version", "posterior_hash")}
        return StoredVersion(**fields, diagnostics=json.loads(row["diagnostics"]), posterior=idata_from_bytes(data),
                             records=records)

    def load_events(self, patient: object, version: int | None = None) -> bytes:
        """The event snapshot of a version (default: the latest); see :func:`.event_snapshots.load_events`."""
        return event_snapshots.load_events(self, patient, version)

    def check_integrity(self, *, raise_on_error: bool = False) -> Any:
        """Check every file, row and audit link; return an ``IntegrityReport`` (see :mod:`~.integrity`)."""
        from bayestwin.store.integrity import check_integrity

        return check_integrity(self, raise_on_error=raise_on_error)

    def verify_audit(self, *, expected_head: str | None = None, raise_on_error: bool = False) -> AuditReport:
        """Verify the audit chain (see :meth:`AuditLog.verify`)."""
        return self.audit.verify(expected_head=expected_head, raise_on_error=raise_on_error)

    # --- helpers ------------------------------------------------------------------------------
    def _object_path(self, digest: str) -> Path:
        return self._objects.path(digest)

    def _head(self, pseudo: str) -> int | None:
        row = self._conn.execute("SELECT max(version) FROM versions WHERE patient = ?", (pseudo,)).fetchone()
        return None if row[0] is None else int(row[0])

    def _versions(self, pseudo: str) -> list[int]:
        return [r[0] for r in self._conn.execute("SELECT version FROM versions WHERE patient = ? ORDER BY version",
                                                 (pseudo,))]

    def _version_row(self, pseudo: str, version: int | None) -> dict[str, Any]:
        cur = self._conn.execute("SELECT * FROM versions WHERE patient = ? AND version = ?", (pseudo, version))
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"patient {pseudo} has no version {version} in {self.path} (versions: "
                             f"{self._versions(pseudo) or 'none'}); check the patient id, the key and the version")
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def _require_parent(self, pseudo: str, expected: int | None, head: int | None) -> None:
        if head != expected:
            raise StoreConflictError(
                f"patient {pseudo} has moved on: its latest version is {head}, but this commit builds on "
                f"{expected}; another writer committed first. Nothing was written. Load version {head}, redo "
                f"the update on it and commit with expected_parent={head}.")

    def _put_object(self, data: bytes, *, what: str) -> str:
        return self._objects.write(data, what=what)

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        try:
            with transaction(self._conn):
                yield
        except sqlite3.Error as err:
            raise StoreError(f"{what} failed in {self.path / DB_NAME}: {err}. Nothing was committed. Check free "
                             "space and permissions; if another process holds the store for long, retry.") from err

    # --- populations: delegates to bayestwin.store.populations ---------------------------------
    def commit_population(self, fit: Any) -> str:
        """Commit a ``PopulationFit``; return its version (:func:`.populations.commit_population`)."""
        return populations.commit_population(self, fit)

    def population_history(self) -> pd.DataFrame:
        """Every stored population version, oldest first (:func:`.populations.population_history`)."""
        return populations.population_history(self)

    def load_population(self, version: str | None = None, *, lazy: bool = False) -> populations.StoredPopulation:
        """A stored population, default the latest (``PopulationFit.from_store`` rebuilds the fit from it).

        `lazy`: the posterior read without arviz (:func:`.populations.load_population`).
        """
        return populations.load_population(self, version, lazy=lazy)
