"""Embedded, versioned, crash-safe store of patient twins, with an audit trail and pseudonyms.

See ``docs/store.md``. The store depends on numpy, pandas, xarray, arviz and
h5netcdf only (and, for encryption at rest, ``cryptography``: the ``crypto`` extra):
it does not import JAX or the modelling layers.

Examples
--------
>>> import tempfile
>>> from bayestwin.store import TwinStore
>>> TwinStore.open(tempfile.mkdtemp(), key="k" * 32).check_integrity().ok
True
"""

from bayestwin.store.audit import AuditLog, AuditRecord, AuditReport
from bayestwin.store.deidentify import DeidentifiedExport, export_deidentified
from bayestwin.store.encryption import load_encryption_key
from bayestwin.store.integrity import IntegrityReport, check_integrity
from bayestwin.store.populations import StoredPopulation
from bayestwin.store.pseudonym import Pseudonymizer, load_key
from bayestwin.store.safe_harbor import Deidentifier
from bayestwin.store.twin_store import StoredVersion, TwinStore

__all__ = ["AuditLog", "AuditRecord", "AuditReport", "DeidentifiedExport", "Deidentifier", "IntegrityReport",
           "Pseudonymizer", "StoredPopulation", "StoredVersion", "TwinStore", "check_integrity",
           "export_deidentified", "load_encryption_key", "load_key"]
