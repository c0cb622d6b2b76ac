"""FHIR R4 ``MedicationAdministration`` and ``MedicationRequest`` -> flat dose rows.

Registered with the generic bundle walker (``fhir_observation.PARSERS``): importing this module makes
``read_fhir_rows(bundle, "MedicationAdministration")`` and ``read_fhir_rows(bundle, "MedicationRequest")``
work. Rows keep FHIR's own units and ISO 8601 times; ``bayestwin.data.fhir`` converts them into the event
table. An administration is one row; a request's ``dosageInstruction[].timing.repeat`` (frequency per
period, bounded by ``boundsPeriod`` or ``count``) is expanded into one row per scheduled dose.

Routes are read from ``dosage.route``: SNOMED CT codes (``26643006`` oral, ``47625008`` intravenous, and a
few synonyms) or words in the text/display (``oral``, ``by mouth``, ``PO``, ``intravenous``, ``IV``). An IV
administration with a rate (``dosage.rateQuantity``) or an ``effectivePeriod`` with an end later than its
start is an infusion; otherwise a bolus.

Examples
--------
>>> sorted(c for c in ("MedicationAdministration", "MedicationRequest") if c in PARSERS)
['MedicationAdministration', 'MedicationRequest']
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bayestwin._extras import require
from bayestwin.data.ingest.fhir_observation import PARSERS, _ref_id, _validate, register_parser  # noqa: F401
from bayestwin.exceptions import InputError

__all__ = ["ADMINISTRATION_COLUMNS", "REQUEST_COLUMNS", "SNOMED_ROUTES", "fhir_time", "route_of"]

SNOMED_SYSTEM = "http://snomed.info/sct"
#: SNOMED CT route codes -> ``"oral"`` or ``"iv"``.
SNOMED_ROUTES = {"26643006": "oral", "47625008": "iv", "255560000": "iv", "420254004": "iv",
                 "6064005": "oral"}
_ROUTE_WORDS = (("intravenous", "iv"), ("iv", "iv"), ("i.v.", "iv"), ("oral", "oral"), ("by mouth", "oral"),
                ("po", "oral"), ("p.o.", "oral"))
#: statuses whose administrations did not happen (set aside, with the reason, never silently dropped).
NOT_GIVEN = ("entered-in-error", "not-done")
_HOURS = {"s": 1 / 3600, "min": 1 / 60, "h": 1.0, "d": 24.0, "wk": 168.0}

ADMINISTRATION_COLUMNS = ("source", "patient", "fhir_status", "start", "end", "amount", "amount_unit",
                          "rate", "rate_unit", "route")
REQUEST_COLUMNS = ("source", "patient", "fhir_status", "start", "end", "amount", "amount_unit",
                   "rate", "rate_unit", "route", "dose_number")


def fhir_time(value: Any, path: str) -> pd.Timestamp:
    """A FHIR ``dateTime`` as a UTC timestamp; it must carry a time zone.

    Examples
    --------
    >>> fhir_time("2024-01-01T09:00:00+01:00", "X/1.effectiveDateTime").isoformat()
    '2024-01-01T08:00:00+00:00'
    """
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise InputError(f"{path}: {value!s} has no time zone (or is a date only); give a full dateTime with "
                         "an offset, e.g. 2024-01-01T08:00:00+01:00, so that doses and samples line up.")
    return stamp.tz_convert("UTC")


def route_of(route: Any, path: str) -> str:
    """``"oral"`` or ``"iv"`` from a FHIR route ``CodeableConcept`` (SNOMED CT code or text).

    Examples
    --------
    >>> route_of(None, "X") , route_of({"text": "IV"}, "X")
    ('oral', 'iv')
    """
    if route is None:
        return "oral"
    codings = route.get("coding", []) if isinstance(route, dict) else list(getattr(route, "coding", None) or [])
    words = [route.get("text") if isinstance(route, dict) else getattr(route, "text", None)]
    for c in codings:
        get = c.get if isinstance(c, dict) else lambda k, c=c: getattr(c, k, None)
        if (get("system") or "") == SNOMED_SYSTEM and (get("code") or "") in SNOMED_ROUTES:
            return SNOMED_ROUTES[get("code")]
        words.append(get("display"))
    for word in (w.strip().lower() for w in words if w):
        for key, kind in _ROUTE_WORDS:
            if word == key or word.startswith(key + " ") or (len(key) > 3 and key in word):
                return kind
    shown = [(c.get("system"), c.get("code")) if isinstance(c, dict) else (c.system, c.code) for c in codings]
    raise InputError(f"{path}: unknown route (codes {shown}, text {words[0]!r}); use SNOMED CT 26643006 (oral) "
                     "or 47625008 (intravenous), or the text 'oral' / 'intravenous'.")


def _quantity(q: Any, path: str, *, required: bool) -> tuple[float, str]:
    if q is None or q.value is None:
        if required:
            raise InputError(f"{path}.value: the dose has no value; give the amount given (a number with a "
                             "UCUM unit code, e.g. 500 mg).")
        return math.nan, ""
    unit = q.code or q.unit or ""
    if not unit:
        raise InputError(f"{path}.code: {float(q.value)} has no unit; give a UCUM code (e.g. 'mg').")
    return float(q.value), unit


def _administration_rows(label: str, res: dict[str, Any]) -> list[dict[str, Any]]:
    model = require("fhir.resources.R4B.medicationadministration", extra="fhir").MedicationAdministration
    adm = _validate(model, label, res)
    status = adm.status or ""
    row: dict[str, Any] = {"source": label, "patient": _ref_id(adm.subject), "fhir_status": status}
    if adm.effectiveDateTime is not None:
        start, end = fhir_time(adm.effectiveDateTime, f"{label}.effectiveDateTime"), None
    elif adm.effectivePeriod is not None and adm.effectivePeriod.start is not None:
        period = adm.effectivePeriod
        start = fhir_time(period.start, f"{label}.effectivePeriod.start")
        end = fhir_time(period.end, f"{label}.effectivePeriod.end") if period.end is not None else None
    else:
        raise InputError(f"{label}.effectivePeriod.start: the administration has no time; give "
                         "effectiveDateTime or effectivePeriod.start.")
    dosage = adm.dosage
    if status in NOT_GIVEN:  # not given: kept only to be accounted for, so its dose may be incomplete
        return [{**row, "start": start.isoformat(), "end": "", "amount": math.nan, "amount_unit": "",
                 "rate": math.nan, "rate_unit": "", "route": ""}]
    if dosage is None:
        raise InputError(f"{label}.dosage: the administration has no dosage; give dosage.dose (amount + UCUM "
                         "unit) and dosage.route.")
    amount, amount_unit = _quantity(dosage.dose, f"{label}.dosage.dose", required=True)
    rate, rate_unit = _quantity(dosage.rateQuantity, f"{label}.dosage.rateQuantity", required=False)
    if end is not None and end < start:
        raise InputError(f"{label}.effectivePeriod.end: {end.isoformat()} is before the start "
                         f"{start.isoformat()}; swap or correct the times.")
    return [{**row, "start": start.isoformat(), "end": end.isoformat() if end is not None else "",
             "amount": amount, "amount_unit": amount_unit, "rate": rate, "rate_unit": rate_unit,
             "route": route_of(dosage.route, f"{label}.dosage.route")}]


def _schedule(repeat: Any, start: pd.Timestamp, path: str) -> list[pd.Timestamp]:
    if repeat is None or repeat.period is None or repeat.periodUnit not in _HOURS:
        raise InputError(f"{path}.timing.repeat: give period and periodUnit (s, min, h, d or wk), e.g. "
                         "frequency 2, period 1, periodUnit 'd' for twice a day.")
    frequency = int(repeat.frequency or 1)
    step = float(repeat.period) * _HOURS[repeat.periodUnit] / frequency
    if repeat.count is not None:
        n = int(repeat.count)
    elif repeat.boundsPeriod is not None and repeat.boundsPeriod.end is not None:
        end = fhir_time(repeat.boundsPeriod.end, f"{path}.timing.repeat.boundsPeriod.end")
        n = math.ceil((end - start) / pd.Timedelta(hours=step) - 1e-9)  # the doses strictly before the end
    else:
        raise InputError(f"{path}.timing.repeat: the schedule has no end; give count or boundsPeriod.end.")
    if n < 1 or n > 10_000:
        raise InputError(f"{path}.timing.repeat: the schedule has {n} doses; give between 1 and 10000.")
    return [start + pd.Timedelta(hours=step * k) for k in range(n)]


def _request_rows(label: str, res: dict[str, Any]) -> list[dict[str, Any]]:
    model = require("fhir.resources.R4B.medicationrequest", extra="fhir").MedicationRequest
    req = _validate(model, label, res)
    base = {"source": label, "patient": _ref_id(req.subject), "fhir_status": req.status or ""}
    rows: list[dict[str, Any]] = []
    for i, dosage in enumerate(req.dosageInstruction or []):
        path = f"{label}.dosageInstruction[{i}]"
        repeat = dosage.timing.repeat if dosage.timing is not None else None
        bounds = getattr(repeat, "boundsPeriod", None)
        if bounds is None or bounds.start is None:
            raise InputError(f"{path}.timing.repeat.boundsPeriod.start: the schedule has no start; give the "
                             "time of the first dose.")
        start = fhir_time(bounds.start, f"{path}.timing.repeat.boundsPeriod.start")
        dose_rate = (dosage.doseAndRate or [None])[0]
        amount, unit = _quantity(getattr(dose_rate, "doseQuantity", None), f"{path}.doseAndRate[0].doseQuantity",
                                 required=True)
        rate, rate_unit = _quantity(getattr(dose_rate, "rateQuantity", None),
                                    f"{path}.doseAndRate[0].rateQuantity", required=False)
        route = route_of(dosage.route, f"{path}.route")
        for k, when in enumerate(_schedule(repeat, start, path)):
            rows.append({**base, "start": when.isoformat(), "end": "", "amount": amount, "amount_unit": unit,
                         "rate": rate, "rate_unit": rate_unit, "route": route, "dose_number": k + 1})
    if not rows:
        raise InputError(f"{label}.dosageInstruction: the request has no dosage instruction; give one with "
                         "doseAndRate and timing.repeat.")
    return rows


register_parser("MedicationAdministration", _administration_rows, ADMINISTRATION_COLUMNS)
register_parser("MedicationRequest", _request_rows, REQUEST_COLUMNS)
