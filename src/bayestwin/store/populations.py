"""Population versions in the twin store: each population fit's lineage, spec, diagnostics and posterior.

A population is stored like a twin version: its posterior (groups ``posterior`` and
``sample_stats``) as a content-addressed NetCDF object written through the store's object
files (so an encrypted store encrypts it too), its metadata as one row of the append-only
``populations`` table, inserted in one transaction with its audit record (action
``commit_population``). The table is created on first use (``CREATE TABLE IF NOT EXISTS``).

Versions are content-based ids made by the inference layer (``PopulationFit.version``,
``pop-`` + 16 hex digits); each row names its ``parent`` version, which must be in the store
already, so every stored lineage is complete. Committing a version that is already stored
writes nothing and returns it.

Patients: the cohort's patient labels (coordinate ``patient``) are replaced by the store's
pseudonyms before anything is written, the same pseudonyms the patients' twins are filed under;
any other occurrence of a patient id in the posterior is refused. The observed data and
pointwise log-likelihood of the fit are not stored (the row keeps the data's hash).

This module imports no JAX and no modelling code: it takes plain values
(:func:`commit_population_version`) or reads them off a fit by attribute
(:func:`population_fields`); ``bayestwin.inference.load_population`` rebuilds a ``PopulationFit``.

Examples
--------
>>> import tempfile, numpy as np, arviz as az
>>> from bayestwin.store import TwinStore
>>> store = TwinStore.open(tempfile.mkdtemp(), key="an example key of at least 32 bytes")
>>> post = az.from_dict(posterior={"tv_cl": np.ones((2, 5)), "cl": np.ones((2, 5, 3))},
...                     coords={"patient": ["A", "B", "C"]}, dims={"cl": ["patient"]})
>>> commit_population_version(store, version="pop-0000000000000001", parent=None, name="demo",
...                           spec={"name": "demo"}, spec_hash="sha256:s", data_hash="sha256:d", posterior=post,
...                           diagnostics={"report": {"ok": True}}, fit={"fit_id": "fit-1"})
'pop-0000000000000001'
>>> population_history(store)[["version", "parent", "n_patients", "ok"]]
                version parent  n_patients  ok
0  pop-0000000000000001   None           3  True
>>> load_population(store).posterior.posterior["patient"].values.tolist() == [store.pseudonym(p) for p in "ABC"]
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from bayestwin.exceptions import StoreError
from bayestwin.store.audit import software_label
from bayestwin.store.netcdf import groups_from_bytes, idata_from_bytes, idata_to_bytes
from bayestwin.store.scrub import check_no_identifier, to_json

if TYPE_CHECKING:  # pragma: no cover - types only
    from bayestwin.store.twin_store import TwinStore

__all__ = ["StoredPopulation", "commit_population", "commit_population_version", "load_population",
           "population_fields", "population_history"]

KEPT_GROUPS = ("posterior", "sample_stats")  # what a twin conditions on, and what its gate is checked on
PATIENT_COORDS = ("patient",)
_TABLE = """
CREATE TABLE IF NOT EXISTS populations (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL UNIQUE CHECK (version LIKE 'pop-%'),
    parent TEXT REFERENCES populations(version),
    name TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    spec TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    n_patients INTEGER NOT NULL CHECK (n_patients >= 0),
    posterior_hash TEXT NOT NULL REFERENCES objects(hash),
    diagnostics TEXT NOT NULL,
    fit TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    actor TEXT NOT NULL,
    audit_seq INTEGER NOT NULL REFERENCES audit(seq),
    audit_hash TEXT NOT NULL,
    CHECK (parent IS NULL OR parent <> version)
)"""
_HISTORY_COLUMNS = ["version", "parent", "created_utc", "actor", "name", "spec_hash", "data_hash", "n_patients",
                    "ok", "posterior_hash", "posterior_bytes", "diagnostics", "n_twin_versions"]


@dataclass(frozen=True)
class StoredPopulation:
    """One loaded population version: the posterior exactly as committed and its metadata."""

    version: str
    parent: str | None
    created_utc: str
    actor: str
    name: str
    spec: dict[str, Any]
    spec_hash: str
    data_hash: str
    n_patients: int
    posterior_hash: str
    diagnostics: dict[str, Any]
    fit: dict[str, Any]
    posterior: Any


def population_fields(fit: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`commit_population_version` read off a ``PopulationFit`` (by attribute).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> import numpy as np, arviz as az
    >>> idata = az.from_dict(posterior={"tv_cl": np.ones((2, 3))}, observed_data={"obs": np.ones(4)})
    >>> fit = NS(version="pop-1", parent=None, data_digest="sha256:d", idata=idata, fit_id="fit-1", notes=(),
    ...          wall_time_s=1.0, sampler=None, diagnostics=NS(to_dict=lambda: {"ok": True}, gate=None),
    ...          spec=NS(name="demo", to_json=lambda: '{"name": "demo"}', digest=lambda: "sha256:s"))
    >>> fields = population_fields(fit)
    >>> fields["posterior"].groups(), fields["spec"]
    (['posterior'], {'name': 'demo'})
    """
    idata = fit.idata
    kept = type(idata)(**{g: idata[g] for g in KEPT_GROUPS if g in idata.groups()})
    gate, sampler = fit.diagnostics.gate, fit.sampler
    return {"version": fit.version, "parent": fit.parent, "name": fit.spec.name, "spec": json.loads(fit.spec.to_json()),
            "spec_hash": fit.spec.digest(), "data_hash": fit.data_digest, "posterior": kept,
            "diagnostics": {"report": fit.diagnostics.to_dict(), "gate": None if gate is None else asdict(gate)},
            "fit": {"fit_id": fit.fit_id, "sampler": None if sampler is None else asdict(sampler),
                    "wall_time_s": float(fit.wall_time_s), "notes": list(fit.notes)}}


def commit_population(store: TwinStore, fit: Any) -> str:
    """Commit a ``PopulationFit`` to `store`; return its version (see :func:`commit_population_version`).

    Examples
    --------
    >>> store.commit_population(fit_population(spec, cohort))  # doctest: +SKIP
    'pop-3f2a9c0e5b7d1a46'
    """
    return commit_population_version(store, **population_fields(fit))


def commit_population_version(store: TwinStore, *, version: str, parent: str | None, name: str,
                              spec: Mapping[str, Any], spec_hash: str, data_hash: str, posterior: Any,
                              diagnostics: Mapping[str, Any], fit: Mapping[str, Any]) -> str:
    """Append a population version: posterior object, ``populations`` row and audit record; return `version`.

    Parameters
    ----------
    store : TwinStore
        An open store.
    version, parent : str, str or None
        The version id (``pop-...``) and the version it was refitted from; the parent must be
        committed first.
    name, spec, spec_hash : str, Mapping, str
        The spec's name, its JSON form and its digest.
    data_hash : str
        ``EventTable.digest()`` of the fitted cohort.
    posterior : arviz.InferenceData
        Stored bit for bit as NetCDF-4, after the ``patient`` coordinate is pseudonymised.
    diagnostics, fit : Mapping
        JSON-safe convergence summary (with the gate's thresholds) and fit settings.

    Raises
    ------
    StoreError
        If the version id is malformed, the parent is not in the store, a patient id appears in
        the posterior outside the ``patient`` coordinate, or writing fails (nothing is committed).
    """
    if not version.startswith("pop-") or parent == version:
        raise StoreError(f"population version {version!r} (parent {parent!r}) is not a valid version: versions are "
                         "'pop-' + hex digits made by PopulationFit, and differ from their parent")
    if (existing := _row(store, version)) is not None:
        return str(existing["version"])  # already stored: content-based ids name the same posterior
    posterior, patients = _pseudonymised(posterior, store)
    for patient in patients:
        check_no_identifier(posterior, patient, where=f"the posterior of population {version}")
    diag, info, spec_text = to_json(dict(diagnostics)), to_json(dict(fit)), to_json(dict(spec))
    data = idata_to_bytes(posterior)
    digest = store._put_object(data, what=f"the posterior of population {version}")
    with store._writing(f"committing population {version}"):
        store._conn.execute(_TABLE)
        for op in ("UPDATE", "DELETE"):
            store._conn.execute(f"CREATE TRIGGER IF NOT EXISTS populations_no_{op.lower()} BEFORE {op} ON populations"
                                " BEGIN SELECT RAISE(ABORT, 'populations are append-only'); END")
        if _row(store, version) is not None:  # another writer committed it meanwhile
            return version
        if parent is not None and _row(store, parent) is None:
            raise StoreError(f"population {version} was refitted from {parent}, which is not in {store.path}; "
                             "commit the parent first (store.commit_population(parent_fit)) so that the lineage "
                             "is complete")
        store._conn.execute("INSERT OR IGNORE INTO objects VALUES (?, ?, 'population')", (digest, len(data)))
        rec = store.audit.append(actor=store.actor, action="commit_population", subject=None,
                                 software=software_label(),
                                 inputs={"version": version, "parent": parent or "", "spec": spec_hash,
                                         "data": data_hash}, output_hash=digest)
        n_patients = int(posterior.posterior.sizes.get("patient", 0))
        store._conn.execute(
            "INSERT INTO populations (version, parent, name, spec_hash, spec, data_hash, n_patients, posterior_hash, "
            "diagnostics, fit, created_utc, actor, audit_seq, audit_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?)", (version, parent, name, spec_hash, spec_text, data_hash, n_patients, digest, diag, info,
                      rec.time_utc, store.actor, rec.seq, rec.hash))
    return version


def population_history(store: TwinStore) -> pd.DataFrame:
    """Every stored population version, oldest first, one row each (empty frame if none).

    ``ok`` is the convergence verdict; ``n_twin_versions`` counts the twin versions in the store
    that were conditioned on the population.

    Examples
    --------
    >>> import tempfile
    >>> from bayestwin.store import TwinStore
    >>> population_history(TwinStore.open(tempfile.mkdtemp(), key="k" * 32)).columns.tolist()[:4]
    ['version', 'parent', 'created_utc', 'actor']
    """
    if not _has_table(store):
        return pd.DataFrame(columns=_HISTORY_COLUMNS)
    rows = store._conn.execute(
        "SELECT p.version, p.parent, p.created_utc, p.actor, p.name, p.spec_hash, p.data_hash, p.n_patients, "
        "p.diagnostics, p.posterior_hash, o.size, p.diagnostics, "
        "(SELECT count(*) FROM versions v WHERE v.population_version = p.version) "
        "FROM populations p JOIN objects o ON o.hash = p.posterior_hash ORDER BY p.id").fetchall()
    frame = pd.DataFrame([(*r[:8], bool(json.loads(r[8]).get("report", {}).get("ok")), r[9], r[10],
                           json.loads(r[11]), r[12]) for r in rows], columns=_HISTORY_COLUMNS)
    frame["parent"] = frame["parent"].astype(object).where(frame["parent"].notna(), None)
    return frame


def load_population(store: TwinStore, version: str | None = None, *, lazy: bool = False) -> StoredPopulation:
    """Load population `version` (default: the latest committed), posterior exactly as committed, hash checked.

    With `lazy` the posterior is an ``InferenceGroups`` (``bayestwin.diagnostics.groups``: the groups as xarray
    Datasets, read without importing arviz; ``.to_inference_data()`` gives the InferenceData), else an
    ``arviz.InferenceData``.

    Examples
    --------
    >>> import tempfile
    >>> from bayestwin.store import TwinStore
    >>> load_population(TwinStore.open(tempfile.mkdtemp(), key="k" * 32), "pop-0123456789abcdef")
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: no population pop-0123456789abcdef in ...; stored versions: none. ...
    """
    if version is None and _has_table(store):
        latest = store._conn.execute("SELECT version FROM populations ORDER BY id DESC LIMIT 1").fetchone()
        version = None if latest is None else latest[0]
    row = _row(store, version) if version is not None else None
    if row is None:
        known = population_history(store)["version"].tolist()
        raise StoreError(f"no population {version} in {store.path}; stored versions: {known or 'none'}. Check the "
                         "version id, or commit the population first (store.commit_population(fit)).")
    data = store._objects.read(row["posterior_hash"])
    return StoredPopulation(
        version=row["version"], parent=row["parent"], created_utc=row["created_utc"], actor=row["actor"],
        name=row["name"], spec=json.loads(row["spec"]), spec_hash=row["spec_hash"], data_hash=row["data_hash"],
        n_patients=int(row["n_patients"]), posterior_hash=row["posterior_hash"],
        diagnostics=json.loads(row["diagnostics"]), fit=json.loads(row["fit"]),
        posterior=groups_from_bytes(data) if lazy else idata_from_bytes(data))


def _has_table(store: TwinStore) -> bool:
    return store._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'populations'"
                               ).fetchone() is not None


def _row(store: TwinStore, version: str) -> dict[str, Any] | None:
    if not _has_table(store):
        return None
    cur = store._conn.execute("SELECT * FROM populations WHERE version = ?", (version,))
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def _pseudonymised(idata: Any, store: TwinStore) -> tuple[Any, list[str]]:
    """A copy of `idata` with every patient coordinate replaced by pseudonyms, and the ids it replaced."""
    groups, ids = {}, set()
    for group in idata.groups():
        ds = idata[group]
        for coord in PATIENT_COORDS:
            if coord in ds.coords:
                values = [str(v) for v in ds.coords[coord].values]
                ids.update(values)
                ds = ds.assign_coords({coord: [store.pseudonym(v) for v in values]})
        groups[group] = ds
    return type(idata)(**groups), sorted(ids)
