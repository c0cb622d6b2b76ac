"""One patient's event table as bytes and back, exactly: the event snapshot a twin store keeps with a version.

A twin version is only reproducible (and updatable) with the events it was fitted on. The snapshot is
canonical JSON (``bayestwin.events/1``): column names, dtypes, the index (source rows) and every value
(floats written with the shortest text that reads back to the same number), units and covariates. The
patient's identifier is replaced by a label (the store passes the patient's pseudonym) and restored on
reading, so the snapshot holds no direct identifier; the id's dtype is kept, so that the restored
table has the same ``EventTable.digest()`` as the original.

Examples
--------
>>> from bayestwin.data import load_dataset
>>> table = load_dataset("theo_sd").patient(12)
>>> data = events_to_bytes(table, label="p-0123")
>>> b"p-0123" in data, b'"id"' in data
(True, True)
>>> back = events_from_bytes(data, patient="12")
>>> back.digest() == table.digest(), [int(p) for p in back.patients]
(True, [12])
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from bayestwin.data.event_table import EventTable
from bayestwin.exceptions import BayestwinError

__all__ = ["SNAPSHOT_SCHEMA", "events_from_bytes", "events_to_bytes"]

SNAPSHOT_SCHEMA = "bayestwin.events/1"


def events_to_bytes(table: EventTable, *, label: str) -> bytes:
    """The canonical JSON bytes of one patient's `table`, its patient id replaced by `label`.

    Parameters
    ----------
    table : EventTable
        Exactly one patient's events.
    label : str
        What to write in place of the patient id (e.g. the store's pseudonym).

    Raises
    ------
    ValueError
        If `table` holds more or fewer than one patient.
    """
    if table.n_patients != 1:
        raise ValueError(f"an event snapshot holds one patient's events; got {table.n_patients} patients "
                         f"{table.patients[:5]}: select one with table.patient(id)")
    frame = table.frame
    columns = {str(c): _values(frame[c]) for c in frame.columns if c != "id"}
    doc = {
        "schema": SNAPSHOT_SCHEMA,
        "label": label,
        "id_dtype": str(frame["id"].dtype),
        "id_type": type(table.patients[0]).__name__,
        "columns": [str(c) for c in frame.columns],
        "dtypes": {str(c): str(frame[c].dtype) for c in frame.columns},
        "index": {"name": frame.index.name, "dtype": str(frame.index.dtype), "values": _values(frame.index)},
        "data": columns,
        "units": dict(table.units),
        "covariates": list(table.covariates),
        "notes": list(table.notes),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def events_from_bytes(data: bytes, *, patient: object, source: str = "<event snapshot>") -> EventTable:
    """Rebuild the ``EventTable`` written by :func:`events_to_bytes`, with `patient` as its id again.

    Parameters
    ----------
    data : bytes
        A ``bayestwin.events/1`` snapshot.
    patient : object
        The patient's own id (given as text or as in the original table; converted to the original id type).
    source : str
        Display name of the rebuilt table.

    Raises
    ------
    BayestwinError
        If `data` is not a snapshot of this format.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BayestwinError(f"{source} is not an event snapshot ({err}); it was altered or is another file") from err
    if not isinstance(doc, dict) or doc.get("schema") != SNAPSHOT_SCHEMA:
        raise BayestwinError(f"{source} is not a {SNAPSHOT_SCHEMA} event snapshot (schema "
                             f"{doc.get('schema') if isinstance(doc, dict) else None!r}); upgrade bayestwin to read it")
    dtypes = doc["dtypes"]
    n = len(doc["index"]["values"])
    pid = _patient_value(patient, doc["id_type"])
    cols: dict[str, Any] = {"id": pd.Series([pid] * n, dtype=dtypes["id"])}
    for name in doc["columns"]:
        if name != "id":
            cols[name] = pd.Series(doc["data"][name], dtype=dtypes[name])
    index = pd.Index(doc["index"]["values"], dtype=doc["index"]["dtype"], name=doc["index"]["name"])
    frame = pd.DataFrame(cols, columns=doc["columns"])
    frame.index = index
    return EventTable(frame=frame, units=doc["units"], covariates=tuple(doc["covariates"]), source=source,
                      notes=tuple(doc.get("notes", ())))


def _values(values: Any) -> list[Any]:
    """Plain Python values (JSON writes floats with the shortest text that reads back exactly; NaN as NaN)."""
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values, dtype=object)]


def _patient_value(patient: object, id_type: str) -> object:
    if id_type in ("int", "int64", "int32"):
        try:
            return int(str(patient))
        except ValueError as err:
            raise BayestwinError(f"patient id {patient!r} is not a whole number, but the stored events have a "
                                 "numeric id; give the id as in the data file") from err
    if id_type in ("float", "float64"):
        return float(str(patient))
    return str(patient)
