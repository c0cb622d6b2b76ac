"""Audited actions outside the version history: logged actions and plain exports.

Each appends one audit record (actor, action, UTC time, patient pseudonym, input
hashes, output hash) to the store's hash chain, in its own transaction. The
de-identified export (:mod:`~bayestwin.store.deidentify`) is logged the same way.

Examples
--------
>>> import tempfile
>>> from bayestwin.store.twin_store import TwinStore
>>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
>>> log_action(store, "cli.forecast", inputs={"plan": "sha256:ab"})
1
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayestwin.exceptions import StoreError
from bayestwin.store import files
from bayestwin.store.audit import software_label
from bayestwin.store.scrub import scrub_payload, to_json

if TYPE_CHECKING:  # pragma: no cover
    from bayestwin.store.twin_store import TwinStore

__all__ = ["add_record", "export_version", "log_action"]


def log_action(store: TwinStore, action: str, *, patient: object = None, inputs: Mapping[str, str] | None = None,
               output_hash: str | None = None) -> int:
    """Append an audit record for `action` (on `patient`, pseudonymised, if given); return its sequence number.

    Parameters
    ----------
    store : TwinStore
        An open store.
    action : str
        What was done, e.g. ``"export"`` or ``"cli.forecast"``.
    patient : object, optional
        The patient's own identifier; the record names the pseudonym.
    inputs : Mapping[str, str], optional
        Names of the inputs and their hashes.
    output_hash : str, optional
        Hash of what the action produced.

    Examples
    --------
    >>> import tempfile
    >>> from bayestwin.store.twin_store import TwinStore
    >>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
    >>> seq = log_action(store, "export", patient="MRN-1", output_hash="cd")
    >>> store.audit.records()[-1].subject == store.pseudonym("MRN-1")
    True
    """
    subject = None if patient is None else store.pseudonym(patient)
    with store._writing(f"logging action {action!r}"):
        rec = store.audit.append(actor=store.actor, action=action, subject=subject, software=software_label(),
                                 inputs=dict(inputs or {}), output_hash=output_hash)
    return rec.seq


def add_record(store: TwinStore, patient: object, version: int, kind: str,
               payload: Mapping[str, Any] | str) -> int:
    """Append a JSON record to `patient`'s `version` with its audit record; return the record id.

    See :meth:`TwinStore.add_record <bayestwin.store.twin_store.TwinStore.add_record>`.
    """
    if not kind or not kind.replace("_", "").isalnum():
        raise StoreError(f"record kind {kind!r} must be a word such as 'forecast' or 'recommendation'")
    pseudo = store.pseudonym(patient)
    body = json.loads(payload) if isinstance(payload, str) else dict(payload)
    text = to_json(scrub_payload(body, patient, pseudo))
    digest = files.sha256_hex(text.encode())
    with store._writing(f"adding a {kind} record to version {version} of patient {pseudo}"):
        row = store._conn.execute("SELECT id, posterior_hash FROM versions WHERE patient = ? AND version = ?",
                                  (pseudo, version)).fetchone()
        if row is None:
            raise StoreError(f"patient {pseudo} has no version {version} (versions: "
                             f"{store._versions(pseudo) or 'none'}); commit the version before adding records")
        rec = store.audit.append(actor=store.actor, action=kind, subject=pseudo, software=software_label(),
                                 inputs={"posterior": row[1], "version": str(version)}, output_hash=digest)
        cur = store._conn.execute(
            "INSERT INTO records (version_id, kind, payload, payload_hash, created_utc, actor, audit_seq, "
            "audit_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row[0], kind, text, digest, rec.time_utc, store.actor, rec.seq, rec.hash))
    return int(cur.lastrowid or 0)


def export_version(store: TwinStore, patient: object, version: int, directory: str | os.PathLike[str]) -> Path:
    """Write a version's posterior (NetCDF-4, decrypted) to `directory` as ``<pseudonym>-v<version>.nc``; audited.

    The file holds the posterior exactly as committed; it is a plain file even when the
    store is encrypted, so keep it as protected as the store.

    Examples
    --------
    >>> import tempfile, numpy as np, arviz as az
    >>> from bayestwin.store.twin_store import TwinStore
    >>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
    >>> post = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 4))}, attrs={}))
    >>> v = store.commit_version("A", posterior=post, data_hash="d", spec_hash="s", population_version=None,
    ...                          diagnostics={}, expected_parent=None)
    >>> export_version(store, "A", v, tempfile.mkdtemp()).name == f"{store.pseudonym('A')}-v1.nc"
    True
    """
    loaded = store._version_row(store.pseudonym(patient), version)
    data = store._objects.read(loaded["posterior_hash"])
    name = f"{loaded['patient']}-v{version}.nc"
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        out = files.write_atomic(directory, name, data)
    except OSError as err:
        raise StoreError(f"cannot export version {version} of patient {loaded['patient']} to {directory}: "
                         f"{err.strerror or err}. Check the directory and free space.") from err
    log_action(store, "export", patient=patient, inputs={"posterior": loaded["posterior_hash"]},
               output_hash=files.sha256_hex(data))
    return out
