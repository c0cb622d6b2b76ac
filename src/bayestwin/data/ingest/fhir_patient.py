"""FHIR R4 ``Patient`` -> one flat row of demographics (id, identifier, sex, birth date).

Registered with the generic bundle walker (``fhir_observation.PARSERS``). The row keeps the raw
identifiers: ``bayestwin.data.fhir.read_fhir`` pseudonymises them at the door when given a pseudonymizer.

Examples
--------
>>> doc = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-02-29"}
>>> _patient_rows("Patient/p1", doc)[0]["sex"]
'female'
"""

from __future__ import annotations

from typing import Any

from bayestwin._extras import require
from bayestwin.data.ingest.fhir_observation import _validate, register_parser

__all__ = ["PATIENT_COLUMNS"]

PATIENT_COLUMNS = ("source", "patient", "identifier", "sex", "birth_date")


def _patient_rows(label: str, res: dict[str, Any]) -> list[dict[str, Any]]:
    model = require("fhir.resources.R4B.patient", extra="fhir").Patient
    pat = _validate(model, label, res)
    ident = next((i.value for i in (pat.identifier or []) if i.value), "")
    return [{"source": label, "patient": pat.id or "", "identifier": ident, "sex": pat.gender or "",
             "birth_date": pat.birthDate.isoformat() if pat.birthDate is not None else ""}]


register_parser("Patient", _patient_rows, PATIENT_COLUMNS)
