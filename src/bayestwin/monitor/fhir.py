"""FHIR R4 bundles of vital-sign ``Observation`` resources -> the canonical stream frame.

The generic part (bundle walking, validation by ``fhir.resources``, one row per value with its JSON path)
lives in ``bayestwin.data.ingest.fhir_observation``; this module maps LOINC codes to the monitor's signals and
FHIR statuses to stream flags, then builds the frame exactly as ``bayestwin.monitor.streams.read_streams``
does (units, duplicates, plausibility, late arrivals). Needs the ``[fhir]`` extra.

Examples
--------
>>> from bayestwin.monitor.fhir import read_fhir_streams
>>> read_fhir_streams({"resourceType": "Bundle", "type": "collection", "entry": []}).empty
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayestwin.exceptions import InputError
from bayestwin.monitor.streams import OriginLike, _canonical

__all__ = ["read_fhir_streams"]

_RETRACTED = {"entered-in-error", "cancelled"}


def read_fhir_streams(source: Any, *, origin: OriginLike = None, unknown: str = "flag") -> pd.DataFrame:
    """Read the vital-sign ``Observation`` resources of a FHIR R4 bundle into the canonical stream frame.

    Codes map through ``bayestwin.monitor.loinc.LOINC``; the UCUM ``valueQuantity.code`` is converted to
    the signal's canonical unit. ``issued`` is the arrival time. An observation with no value
    (``dataAbsentReason``) is kept as ``missing``; status ``entered-in-error`` or ``cancelled`` as
    ``retracted``; a code the monitor does not know as ``unknown_code`` (``unknown="error"`` raises).
    Needs the ``[fhir]`` extra.

    Raises
    ------
    InputError
        For a malformed resource; the message names its JSON path (``Observation/abc.subject``).

    Examples
    --------
    >>> obs = {"resourceType": "Observation", "id": "t1", "status": "final",
    ...        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
    ...        "subject": {"reference": "Patient/p9"}, "effectiveDateTime": "2024-03-01T06:00:00Z",
    ...        "valueQuantity": {"value": 101.3, "system": "http://unitsofmeasure.org", "code": "[degF]"}}
    >>> read_fhir_streams({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": obs}]}
    ...                   )[["patient", "signal", "value", "unit", "source"]].round(2).values.tolist()
    [['p9', 'temperature', 38.5, 'Cel', 'Observation/t1']]
    """
    from bayestwin.data.ingest.fhir_observation import read_fhir_rows

    rows = read_fhir_rows(source, "Observation")
    for col, field in (("patient", "subject"), ("effective", "effective[x]")):
        empty = rows.index[rows[col] == ""]
        if len(empty):
            raise InputError(f"{len(empty)} Observation(s) lack {field}: "
                             + "; ".join(f"{rows.at[i, 'source']}.{field}" for i in empty[:10])
                             + f". Every vital-sign Observation needs a {field}.")
    status = np.where(rows["fhir_status"].isin(list(_RETRACTED)), "retracted", "ok").astype(object)
    reason = np.where(status == "retracted", "FHIR status " + rows["fhir_status"], "").astype(object)
    absent = (rows["value"].isna().to_numpy()) & (status == "ok")
    status[absent] = "missing"
    reason[absent] = ("no value: " + rows["absent_reason"]).to_numpy()[absent]
    loinc_ok = rows["system"].isin(["http://loinc.org", ""])
    raw = pd.DataFrame({
        "patient": rows["patient"], "timestamp": pd.to_datetime(rows["effective"], utc=True, format="ISO8601"),
        "received": pd.to_datetime(rows["issued"].replace("", None), utc=True, format="ISO8601"),
        "signal": "", "loinc": rows["code"].where(loinc_ok, rows["system"] + "|" + rows["code"]),
        "value": rows["value"].astype(float), "unit": rows["unit"],
        "device": rows["device"].replace("", "unknown"), "source": rows["path"], "status": status, "reason": reason,
    })  # fmt: skip
    return _canonical(raw, origin, unknown)
