"""FHIR R4 resources -> flat rows: a generic bundle walker and an ``Observation`` parser.

Needs the optional extra ``[fhir]`` (``fhir.resources``, its R4B models, which read R4 ``Observation``
resources unchanged). Each resource is validated on its own, so an error names the resource and the JSON
path of the bad field, e.g. ``Observation/abc.valueQuantity.value``. Parsers are registered per resource type
in ``PARSERS``: a new type (``Patient``, ``MedicationAdministration``) is one function returning rows, with no
change to the walker. Nothing here knows about vital signs: mapping codes to signals is the caller's job
(``bayestwin.monitor.streams``).

Examples
--------
>>> "Observation" in PARSERS, OBSERVATION_COLUMNS[:3]
(True, ('source', 'path', 'patient'))
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from bayestwin._extras import require
from bayestwin.exceptions import InputError

__all__ = ["OBSERVATION_COLUMNS", "PARSERS", "iter_resources", "load_bundle", "read_fhir_rows", "register_parser"]

LOINC_SYSTEM = "http://loinc.org"
#: Columns of the rows ``read_fhir_rows(..., "Observation")`` returns, one row per value (a panel's
#: components are one row each).
OBSERVATION_COLUMNS = (
    "source", "path", "patient", "effective", "issued", "system", "code", "display", "value", "unit",
    "unit_system", "device", "fhir_status", "absent_reason",
)  # fmt: skip


def load_bundle(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A FHIR JSON document as a dict: a path to a ``.json`` file, a JSON string, or a dict (returned as is).

    Raises
    ------
    InputError
        If the file is missing or not JSON, or the document has no ``resourceType``.

    Examples
    --------
    >>> load_bundle('{"resourceType": "Bundle", "type": "collection"}')["type"]
    'collection'
    """
    if isinstance(source, Mapping):
        doc = dict(source)
    else:
        text, name = str(source), "the JSON string"
        if isinstance(source, Path) or (not text.lstrip().startswith("{") and Path(text).suffix == ".json"):
            path = Path(source)
            if not path.is_file():
                raise InputError(f"FHIR file {str(path)!r} does not exist; check the path.")
            text, name = path.read_text(encoding="utf-8"), repr(path.name)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{name} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
                             "a FHIR bundle must be a JSON object.") from err
    if not isinstance(doc, dict) or "resourceType" not in doc:
        raise InputError("a FHIR document must be a JSON object with a 'resourceType' (e.g. 'Bundle').")
    return doc


def iter_resources(doc: Mapping[str, Any], resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(label, resource)`` for every resource of ``resource_type`` in a bundle (or a lone resource).

    ``label`` is ``"Type/id"``, or ``"Bundle.entry[i]"`` when the resource has no id.

    Examples
    --------
    >>> doc = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}]}
    >>> [label for label, _ in iter_resources(doc, "Patient")]
    ['Patient/p1']
    """
    if doc.get("resourceType") != "Bundle":
        if doc.get("resourceType") == resource_type:
            yield f"{resource_type}/{doc.get('id', '?')}", dict(doc)
        return
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        raise InputError("Bundle.entry must be a list of entries.")
    for i, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(res, Mapping):
            raise InputError(f"Bundle.entry[{i}] has no 'resource' object; every entry must carry one.")
        if res.get("resourceType") == resource_type:
            rid = res.get("id")
            yield (f"{resource_type}/{rid}" if rid else f"Bundle.entry[{i}]"), dict(res)


def _validate(model: Any, label: str, res: dict[str, Any]) -> Any:
    pydantic = require("pydantic", extra="fhir")
    body = {k: v for k, v in res.items() if k != "resourceType"}
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as err:
        problems = []
        for e in err.errors()[:5]:
            path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"]).replace(".[", "[")
            problems.append(f"{label}.{path}: {e['msg']} (got {e.get('input')!r})" if path else f"{label}: {e['msg']}")
        kind = getattr(model, "__name__", "resource")
        raise InputError("invalid FHIR resource: " + "; ".join(problems)
                         + f". Fix these fields (FHIR R4 {kind}) and read the bundle again.") from None


def _ref_id(ref: Any) -> str:
    text = getattr(ref, "reference", None) or ""
    return text.rsplit("/", 1)[-1] if text else ""


def _when(obs: Any) -> str:
    for name in ("effectiveDateTime", "effectiveInstant"):
        value = getattr(obs, name, None)
        if value is not None:
            return pd.Timestamp(value).isoformat()
    period = getattr(obs, "effectivePeriod", None)
    if period is not None and period.start is not None:
        return pd.Timestamp(period.start).isoformat()
    return ""


def _codings(concept: Any) -> tuple[str, str, str]:
    """(system, code, display) of the LOINC coding if any, else of the first coding."""
    codings = list(getattr(concept, "coding", None) or [])
    if not codings:
        return "", "", ""
    best = next((c for c in codings if (c.system or "") == LOINC_SYSTEM), codings[0])
    return best.system or "", best.code or "", best.display or ""


def _value_row(holder: Any, path: str) -> dict[str, Any]:
    q = getattr(holder, "valueQuantity", None)
    absent = getattr(holder, "dataAbsentReason", None)
    reason = ""
    if absent is not None:
        reason = _codings(absent)[1] or (absent.text or "data absent")
    if q is None:
        other = next((n for n in ("valueString", "valueInteger", "valueBoolean", "valueCodeableConcept")
                      if getattr(holder, n, None) is not None), None)
        if other is not None:
            raise InputError(f"{path}.{other}: a vital-sign value must be a valueQuantity (number + UCUM code), "
                             f"not {other}.")
        return {"value": math.nan, "unit": "", "unit_system": "", "absent_reason": reason or "no value"}
    value = math.nan if q.value is None else float(q.value)
    unit = q.code or q.unit or ""
    if q.value is not None and not unit:
        raise InputError(f"{path}.valueQuantity.code: the quantity {value} has no unit; give a UCUM code "
                         "(valueQuantity.code, system http://unitsofmeasure.org).")
    return {"value": value, "unit": unit, "unit_system": q.system or "",
            "absent_reason": reason or ("no value" if q.value is None else "")}


def _observation_rows(label: str, res: dict[str, Any]) -> list[dict[str, Any]]:
    model = require("fhir.resources.R4B.observation", extra="fhir").Observation
    obs = _validate(model, label, res)
    patient = _ref_id(obs.subject)
    effective = _when(obs)
    issued = pd.Timestamp(obs.issued).isoformat() if obs.issued is not None else ""
    device = _ref_id(obs.device) or (getattr(obs.device, "display", None) or "" if obs.device else "")
    base = {"source": label, "patient": patient, "effective": effective, "issued": issued, "device": device,
            "fhir_status": obs.status or ""}
    components = list(obs.component or [])
    if components and obs.valueQuantity is None:
        rows = []
        for i, comp in enumerate(components):
            path = f"{label}.component[{i}]"
            system, code, display = _codings(comp.code)
            rows.append({**base, "path": path, "system": system, "code": code, "display": display,
                         **_value_row(comp, path)})
        return rows
    system, code, display = _codings(obs.code)
    return [{**base, "path": label, "system": system, "code": code, "display": display, **_value_row(obs, label)}]


Parser = Callable[[str, dict[str, Any]], list[dict[str, Any]]]
_REGISTRY: dict[str, Parser] = {"Observation": _observation_rows}
#: resource type -> parser ``(label, resource dict) -> rows``; ``register_parser`` adds a type.
PARSERS: Mapping[str, Parser] = MappingProxyType(_REGISTRY)
_COLUMNS: dict[str, tuple[str, ...]] = {"Observation": OBSERVATION_COLUMNS}


def register_parser(resource_type: str, parser: Parser, columns: tuple[str, ...]) -> None:
    """Register ``parser`` for ``resource_type``; ``read_fhir_rows`` then returns ``columns``.

    Examples
    --------
    >>> register_parser("Observation", PARSERS["Observation"], OBSERVATION_COLUMNS)
    >>> "Observation" in PARSERS
    True
    """
    _REGISTRY[resource_type] = parser
    _COLUMNS[resource_type] = tuple(columns)


def read_fhir_rows(source: str | Path | Mapping[str, Any], resource_type: str = "Observation") -> pd.DataFrame:
    """Flat rows of every ``resource_type`` resource in a FHIR R4 bundle (file, JSON string or dict).

    For ``Observation``: one row per value (a panel such as blood pressure 85354-9 gives one row per
    ``component``), with the resource label (``source``), the JSON path of the value (``path``), the
    subject's id (``patient``), ``effective`` and ``issued`` times (ISO 8601 strings, ``""`` if absent), the
    LOINC coding if present (``system``, ``code``, ``display``), ``value`` (NaN if absent), the UCUM ``unit``
    (``valueQuantity.code``, else ``.unit``), ``device`` (reference id), ``fhir_status`` and
    ``absent_reason`` (``dataAbsentReason`` code, ``"no value"``, or ``""``).

    Raises
    ------
    MissingExtraError
        If ``fhir.resources`` is not installed (``pip install 'bayestwin[fhir]'``).
    InputError
        If a resource is malformed; the message names the resource and the JSON path of the field.

    Examples
    --------
    >>> doc = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
    ...     "resourceType": "Observation", "id": "hr1", "status": "final",
    ...     "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    ...     "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-01-01T08:00:00Z",
    ...     "valueQuantity": {"value": 72, "system": "http://unitsofmeasure.org", "code": "/min"}}}]}
    >>> read_fhir_rows(doc)[["source", "patient", "code", "value", "unit"]].values.tolist()
    [['Observation/hr1', 'p1', '8867-4', 72.0, '/min']]
    """
    if resource_type not in PARSERS:
        raise InputError(f"no FHIR parser for resource type {resource_type!r}; known: {sorted(PARSERS)}.")
    doc = load_bundle(source)
    rows = [row for label, res in iter_resources(doc, resource_type) for row in PARSERS[resource_type](label, res)]
    return pd.DataFrame(rows, columns=list(_COLUMNS[resource_type]))
