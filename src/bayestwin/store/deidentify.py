"""A de-identified export of a twin store (HIPAA Safe Harbor, as it applies to this data).

:func:`export_deidentified` writes, for the chosen patients::

    <directory>/
    ├── manifest.json                  what was removed, shifted and grouped; file hashes (written last)
    ├── versions.csv                   one row per version: subject, version, parent, created (shifted), ...
    ├── records.jsonl                  forecasts, recommendations, ...: one JSON document per line
    └── posteriors/<subject>-v<n>.nc   each version's posterior (InferenceData, NetCDF-4), de-identified

Each patient is labelled by a **random subject code** drawn for this export
(``subject-001``, ...): the store's pseudonyms are keyed hashes of the patients'
identifiers, and Safe Harbor (45 CFR 164.514(c)) wants re-identification codes that
are not derived from them. The mapping is returned to the caller
(:attr:`DeidentifiedExport.subjects`) and not written to the export. Every date-time
of a patient moves by the same keyed whole-day offset
(``Pseudonymizer.date_shift_days``: HMAC-SHA256 of the pseudonym under the store's key,
1 to 365 days either way, never 0), so intervals are kept exactly; the other rules
are in :mod:`~bayestwin.store.safe_harbor`. The store's actors, data and posterior
hashes and the audit log are not exported. The export is logged in the audit chain
(action ``"export_deidentified"``, output hash = SHA-256 of ``manifest.json``).

Examples
--------
>>> import tempfile, os, numpy as np, arviz as az
>>> from bayestwin.store.twin_store import TwinStore
>>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
>>> post = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 4))}, attrs={}))
>>> _ = store.commit_version("MRN-1", posterior=post, data_hash="d", spec_hash="s", population_version=None,
...                          diagnostics={}, expected_parent=None)
>>> export = export_deidentified(store, os.path.join(tempfile.mkdtemp(), "deid"))
>>> sorted(p.name for p in export.directory.iterdir())
['manifest.json', 'posteriors', 'records.jsonl', 'versions.csv']
>>> list(export.subjects.values())
['subject-001']
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bayestwin.exceptions import StoreError
from bayestwin.store import files
from bayestwin.store.actions import log_action
from bayestwin.store.audit import software_label
from bayestwin.store.netcdf import idata_from_bytes, idata_to_bytes
from bayestwin.store.safe_harbor import AGE_GROUP_LABEL, AGE_GROUP_VALUE, AGE_LIMIT, Deidentifier, Findings
from bayestwin.store.scrub import to_json

if TYPE_CHECKING:  # pragma: no cover
    from bayestwin.store.twin_store import TwinStore

__all__ = ["EXPORT_SCHEMA", "MAX_SHIFT_DAYS", "DeidentifiedExport", "export_deidentified", "manifest_digest"]

EXPORT_SCHEMA = "bayestwin.deidentified-export/1"
MAX_SHIFT_DAYS = 365
_NOT_EXPORTED = {
    "versions.patient": "pseudonym (a keyed hash of the identifier): replaced by a random subject code",
    "versions.actor": "names the clinician or service that acted",
    "versions.data_hash": "links the record to the source data",
    "versions.posterior_hash": "hash of the stored posterior, before de-identification",
    "records.actor": "names the clinician or service that acted",
    "records.payload_hash": "hash of the stored record, before de-identification",
    "audit log": "actors, pseudonyms and hashes; stays with the store",
}
_KEPT = ["relative times (hours since the patient's time origin: observation_time, segment_start, forecast "
         "interval times) carry no calendar date and are exported as they are",
         "numeric covariates other than age, posterior draws and sampler statistics",
         "spec hashes and population versions (not patient-specific)"]


@dataclass(frozen=True)
class DeidentifiedExport:
    """What :func:`export_deidentified` wrote.

    ``subjects`` maps each pseudonym to its subject code in this export: it re-identifies
    the export, so keep it inside the covered entity (it is not written to the export).
    """

    directory: Path
    manifest: dict[str, Any]
    subjects: dict[str, str]
    n_versions: int
    n_records: int
    audit_seq: int

    def __str__(self) -> str:
        return (f"de-identified export at {self.directory}: {len(self.subjects)} subjects, {self.n_versions} "
                f"versions, {self.n_records} records (audit record {self.audit_seq})")


def export_deidentified(store: TwinStore, directory: str | os.PathLike[str], patients: Iterable[object] | None = None,
                        *, latest_only: bool = False) -> DeidentifiedExport:
    """Write a de-identified copy of patients' versions, posteriors and records to `directory`; audited.

    Parameters
    ----------
    store : TwinStore
        An open store (an encrypted store's posteriors are decrypted; the export is not encrypted).
    directory : path
        A new or empty directory outside the store.
    patients : iterable, optional
        The patients' own identifiers; default every patient in the store.
    latest_only : bool
        Export only each patient's latest version (default: all versions).

    Returns
    -------
    DeidentifiedExport
        The directory, the manifest, the subject codes (keep them private) and the audit record number.

    Raises
    ------
    StoreError
        The directory is inside the store or not empty, a patient has no versions, or a write failed.

    Examples
    --------
    >>> import tempfile
    >>> from bayestwin.store.twin_store import TwinStore
    >>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
    >>> export_deidentified(store, tempfile.mkdtemp(), ["MRN-404"])
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: patient p-... has no versions in ...; export only patients with committed twins...
    """
    chosen = store.patients() if patients is None else list(dict.fromkeys(store.pseudonym(p) for p in patients))
    for pseudo in chosen:
        if store._head(pseudo) is None:
            raise StoreError(f"patient {pseudo} has no versions in {store.path}; export only patients with committed "
                             "twins (store.patients() lists them)")
    out = _prepare(Path(directory), store.path)
    codes = _subject_codes(chosen)
    findings = Findings(removed=dict(_NOT_EXPORTED))
    versions: list[dict[str, Any]] = []
    records: list[str] = []
    hashes: dict[str, str] = {}
    exported: list[list[Any]] = []
    for pseudo in chosen:
        deid = Deidentifier(store._pseudonym.date_shift_days(pseudo, max_days=MAX_SHIFT_DAYS),
                            replace={pseudo: codes[pseudo]}, findings=findings)
        rows = store._conn.execute(
            "SELECT id, version, parent, created_utc, spec_hash, population_version, posterior_hash, diagnostics "
            "FROM versions WHERE patient = ? ORDER BY version", (pseudo,)).fetchall()
        for vid, version, parent, created, spec_hash, population, digest, diagnostics in rows[-1:] if latest_only \
                else rows:
            posterior = deid.idata(idata_from_bytes(store._objects.read(digest)), "posteriors")
            name = f"posteriors/{codes[pseudo]}-v{version}.nc"
            hashes[name] = _write(out, name, idata_to_bytes(posterior))
            versions.append({"subject": codes[pseudo], "version": version, "parent": parent,
                             "created_utc": deid.text(created, "versions.created_utc"), "spec_hash": spec_hash,
                             "population_version": population, "posterior_file": name,
                             "diagnostics": to_json(deid.json(json.loads(diagnostics), "versions.diagnostics"))})
            for kind, payload, when in store._conn.execute(
                    "SELECT kind, payload, created_utc FROM records WHERE version_id = ? ORDER BY id", (vid,)):
                records.append(to_json({"subject": codes[pseudo], "version": version, "kind": kind,
                                        "created_utc": deid.text(when, "records.created_utc"),
                                        "payload": deid.json(json.loads(payload), f"records[{kind}].payload")}))
            exported.append([pseudo, version, digest])
    table = io.StringIO()
    pd.DataFrame(versions, columns=["subject", "version", "parent", "created_utc", "spec_hash", "population_version",
                                    "posterior_file", "diagnostics"]).to_csv(table, index=False)
    hashes["versions.csv"] = _write(out, "versions.csv", table.getvalue().encode())
    hashes["records.jsonl"] = _write(out, "records.jsonl", "".join(f"{r}\n" for r in records).encode())
    manifest = _manifest(findings, n_subjects=len(chosen), n_versions=len(versions), n_records=len(records),
                         hashes=hashes)
    text = json.dumps(manifest, indent=2, sort_keys=True).encode()
    manifest_hash = _write(out, "manifest.json", text)
    seq = log_action(store, "export_deidentified", output_hash=manifest_hash,
                     inputs={"versions": files.sha256_hex(to_json(exported).encode()), "subjects": str(len(chosen))})
    return DeidentifiedExport(out, manifest, codes, len(versions), len(records), seq)


def _prepare(out: Path, store_dir: Path) -> Path:
    if store_dir.resolve() in (out.resolve(), *out.resolve().parents):
        raise StoreError(f"the export directory {out} lies inside the store {store_dir}; write de-identified data "
                         "somewhere else")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"the export directory {out} exists and is not an empty directory; choose a new one (an "
                         "export is written whole, once, and never mixed with other files)")
    try:
        (out / "posteriors").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create the export directory {out}: {err.strerror or err}. Check the path and its "
                         "permissions.") from err
    return out


def _write(out: Path, name: str, data: bytes) -> str:
    path = out / name
    try:
        files.write_atomic(path.parent, path.name, data)
    except OSError as err:
        raise StoreError(f"cannot write {path} of the de-identified export: {err.strerror or err}. Free disk space "
                         "or fix permissions, delete the incomplete export directory (it has no manifest.json yet) "
                         "and export again.") from err
    return files.sha256_hex(data)


def _subject_codes(pseudonyms: list[str]) -> dict[str, str]:
    """Random subject codes ``subject-001``, ... in a random order: not derived from anything about the patient."""
    numbers = list(range(1, len(pseudonyms) + 1))
    secrets.SystemRandom().shuffle(numbers)
    width = max(3, len(str(len(pseudonyms))))
    return {p: f"subject-{n:0{width}d}" for p, n in zip(pseudonyms, numbers, strict=True)}


def _manifest(findings: Findings, *, n_subjects: int, n_versions: int, n_records: int,
              hashes: dict[str, str]) -> dict[str, Any]:
    found = findings.to_dict()
    return {
        "schema": EXPORT_SCHEMA,
        "standard": "HIPAA Safe Harbor, 45 CFR 164.514(b)(2), as it applies to a twin store's data (docs/store.md)",
        "software": software_label(),
        "counts": {"subjects": n_subjects, "versions": n_versions, "records": n_records},
        "subject_codes": "random codes drawn for this export, not derived from identifiers or pseudonyms; the "
                         "mapping is not part of the export",
        "removed": found["removed"],
        "shifted": {"method": "per subject, whole days: HMAC-SHA256 of the subject's pseudonym under the store's "
                              "key picks an offset; the same subject always gets the same offset, so intervals "
                              "between its dates are exact",
                    "range_days": [-MAX_SHIFT_DAYS, MAX_SHIFT_DAYS], "zero_shift": False,
                    "fields": found["shifted"]},
        "grouped": {"rule": f"ages over {AGE_LIMIT} become {AGE_GROUP_VALUE} (numbers) or {AGE_GROUP_LABEL!r} "
                            f"(text), both meaning {AGE_GROUP_LABEL}", "value": AGE_GROUP_VALUE,
                    "label": AGE_GROUP_LABEL, "fields": found["grouped"]},
        "kept_as_is": _KEPT,
        "files": {name: f"sha256:{digest}" for name, digest in sorted(hashes.items())},
    }


def manifest_digest(directory: str | os.PathLike[str]) -> str:
    """SHA-256 of an export's ``manifest.json``: the output hash of its audit record.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()); _ = (folder / "manifest.json").write_bytes(b"{}")
    >>> manifest_digest(folder)[:8]
    '44136fa3'
    """
    return hashlib.sha256((Path(directory) / "manifest.json").read_bytes()).hexdigest()
