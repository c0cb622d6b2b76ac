"""FHIR R4 bundles -> the canonical ``EventTable`` (and the planned doses of ``MedicationRequest``).

``read_fhir`` reads a Bundle (file, JSON string or dict) the way ``read_nonmem`` reads a CSV: every dose and
sample becomes a row, checked by the same rules, with units converted and every resource accounted for.

* ``MedicationAdministration`` -> dose rows (EVID 1): ``dosage.dose`` converted to ``dose_unit``; the route
  (SNOMED CT or text) picks the compartment (``routes``); an IV dose with ``dosage.rateQuantity`` or an
  ``effectivePeriod`` with an end is an infusion (RATE and DUR). Status ``entered-in-error`` or ``not-done``:
  set aside in the row accounting with the reason, never silently dropped.
* ``Observation`` with a LOINC code in ``observations`` -> DV rows of that DVID, converted to its unit; a value
  with comparator ``<`` / ``<=`` is censored (CENS 1, DV and LLOQ = the limit, as in NONMEM data), ``>`` /
  ``>=`` is CENS -1. ``entered-in-error`` / ``cancelled`` results and values absent with a
  ``dataAbsentReason`` are set aside with the reason. Body weight (29463-7) and height (8302-2) become the
  covariates WT [kg] and HT [cm] (first value of each patient, held constant).
* ``Patient`` -> covariates SEX (FHIR ``gender`` text) and AGE [year] at the patient's first event.
* TIME is hours since each patient's first dose or sample (exact, via UTC).

Patient ids are the Patient's first ``identifier.value`` (else its resource id); with a ``pseudonymizer``
(any callable ``str -> str``, e.g. ``bayestwin.store.Pseudonymizer``) only the pseudonym enters the table.

``read_fhir_plan`` expands ``MedicationRequest`` schedules into planned doses on the same clock. They are kept
out of the event table on purpose: a twin conditions on what was given, and forecasts or compares what is
planned (e.g. as a regimen for ``Twin.forecast``).

Examples
--------
>>> sorted(DEFAULT_ROUTES.items())
[('iv', 'central'), ('oral', 'depot')]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bayestwin.data.event_table import EventTable
from bayestwin.data.ingest import fhir_medication as _med  # noqa: F401  (registers the parsers)
from bayestwin.data.ingest import fhir_patient as _pat  # noqa: F401
from bayestwin.data.ingest.build import build_table
from bayestwin.data.ingest.fhir_medication import NOT_GIVEN
from bayestwin.data.ingest.fhir_observation import iter_resources, load_bundle, read_fhir_rows
from bayestwin.data.ingest.raw import read_raw
from bayestwin.exceptions import DataValidationError, InputError, UnitError

__all__ = ["DEFAULT_ROUTES", "read_fhir", "read_fhir_plan"]

#: route -> compartment (a name of the model's ``compartment_map``, or a number).
DEFAULT_ROUTES: Mapping[str, int | str] = {"oral": "depot", "iv": "central"}
WEIGHT_LOINC, HEIGHT_LOINC = "29463-7", "8302-2"
_RETRACTED = ("entered-in-error", "cancelled")
Bundle = str | Path | Mapping[str, Any]


def _convert(value: float, unit: str, to: str, path: str) -> float:
    from bayestwin.ucum import to_pint
    from bayestwin.units import convert

    try:
        return float(convert(value, to_pint(unit), to, where=path))
    except UnitError as err:
        raise InputError(f"{err} Give the value in a unit convertible to {to} (UCUM code).") from None


def _hours(stamp: pd.Timestamp, origin: pd.Timestamp) -> float:
    return (stamp - origin) / pd.Timedelta(hours=1)


def _patients(doc: Mapping[str, Any], pseudonymizer: Callable[[str], str] | None) -> tuple[dict, pd.DataFrame]:
    rows = read_fhir_rows(doc, "Patient")
    key = {r.patient: (r.identifier or r.patient) for r in rows.itertuples()}
    ids = {ref: (pseudonymizer(k) if pseudonymizer is not None else k) for ref, k in key.items()}
    return ids, rows


def _doses(doc: Mapping[str, Any], kind: str, dose_unit: str, routes: Mapping[str, int | str]) -> list[dict]:
    out = []
    for r in read_fhir_rows(doc, kind).to_dict("records"):
        label = r["source"]
        start = pd.Timestamp(r["start"])
        rec = {"source": label, "ref": r["patient"], "stamp": start, "status": r["fhir_status"],
               "dose_number": r.get("dose_number")}
        if kind == "MedicationAdministration" and r["fhir_status"] in NOT_GIVEN:
            out.append({**rec, "set_aside": f"FHIR status {r['fhir_status']}"})
            continue
        amt = _convert(r["amount"], r["amount_unit"], dose_unit, f"{label}.dosage.dose")
        rate = dur = 0.0
        if r["route"] not in routes:
            raise InputError(f"{label}: route {r['route']!r} has no compartment; pass routes={{'{r['route']}': "
                             "<compartment>}} to read_fhir.")
        if r["route"] == "iv" and not math.isnan(r["rate"]):
            rate = _convert(r["rate"], r["rate_unit"], f"{dose_unit}/h", f"{label}.dosage.rateQuantity")
            if rate <= 0:
                raise InputError(f"{label}.dosage.rateQuantity.value: rate {r['rate']} must be > 0.")
            dur = amt / rate
        elif r["route"] == "iv" and r["end"]:
            dur = _hours(pd.Timestamp(r["end"]), start)
            rate = amt / dur if dur > 0 else 0.0
        out.append({**rec, "amt": amt, "rate": rate, "dur": dur, "cmt": routes[r["route"]], "set_aside": ""})
    return out


def _labs(doc: Mapping[str, Any], observations: Mapping[str, tuple[int, str]]) -> tuple[list[dict], list[dict]]:
    raw = {label: res for label, res in iter_resources(doc, "Observation")}
    labs, covs = [], []
    for r in read_fhir_rows(doc, "Observation").to_dict("records"):
        code, path = r["code"], r["path"]
        wanted = code in observations or code in (WEIGHT_LOINC, HEIGHT_LOINC)
        if not wanted:
            continue
        stamp = None
        if r["effective"]:
            stamp = pd.Timestamp(r["effective"])
            if stamp.tzinfo is None:
                raise InputError(f"{r['source']}.effectiveDateTime: {r['effective']} has no time zone; give a "
                                 "full dateTime with an offset, e.g. 2024-01-01T08:00:00+01:00.")
            stamp = stamp.tz_convert("UTC")
        elif r["fhir_status"] not in _RETRACTED:
            raise InputError(f"{r['source']}.effectiveDateTime: the result has no time; give effectiveDateTime.")
        rec: dict[str, Any] = {"source": path, "ref": r["patient"], "stamp": stamp, "set_aside": ""}
        if r["fhir_status"] in _RETRACTED:
            rec["set_aside"] = f"FHIR status {r['fhir_status']}"
        elif math.isnan(r["value"]):
            if r["absent_reason"] in ("", "no value"):
                raise InputError(f"{path}.valueQuantity.value: the result has no value; give valueQuantity "
                                 "(number + UCUM code) or a dataAbsentReason.")
            rec["set_aside"] = f"no value ({r['absent_reason']})"
        if code in (WEIGHT_LOINC, HEIGHT_LOINC) and code not in observations:
            if not rec["set_aside"]:
                to = "kg" if code == WEIGHT_LOINC else "cm"
                rec["covariate"] = "WT" if code == WEIGHT_LOINC else "HT"
                rec["value"] = _convert(r["value"], r["unit"], to, f"{path}.valueQuantity.code")
                covs.append(rec)
            continue
        dvid, unit = observations[code]
        rec.update(dvid=int(dvid), cens=0, lloq=math.nan, dv=math.nan)
        if not rec["set_aside"]:
            rec["dv"] = _convert(r["value"], r["unit"], unit, f"{path}.valueQuantity.code")
            holder = raw.get(r["source"], {})
            if path != r["source"]:
                holder = holder.get("component", [])[int(path.rsplit("[", 1)[1].rstrip("]"))]
            comparator = (holder.get("valueQuantity") or {}).get("comparator")
            if comparator in ("<", "<="):
                rec.update(cens=1, lloq=rec["dv"])
            elif comparator in (">", ">="):
                rec["cens"] = -1
        labs.append(rec)
    return labs, covs


def _units(observations: Mapping[str, tuple[int, str]], dose_unit: str) -> dict[str, str]:
    by_dvid = sorted({int(d): u for d, u in observations.values()}.items())
    units = {"time": "h", "amt": dose_unit, "dv": by_dvid[0][1] if by_dvid else "1"}
    units |= {f"dv[{d}]": u for d, u in by_dvid[1:]}
    return units


def _origins(events: list[dict], ids: Mapping[str, str]) -> dict[str, pd.Timestamp]:
    origins: dict[str, pd.Timestamp] = {}
    for e in events:
        if not e["set_aside"] and e["stamp"] is not None:
            pid = ids[e["ref"]]
            origins[pid] = min(origins.get(pid, e["stamp"]), e["stamp"])
    return origins


def read_fhir(
    bundle: Bundle,
    *,
    observations: Mapping[str, tuple[int, str]],
    dose_unit: str = "mg",
    routes: Mapping[str, int | str] = DEFAULT_ROUTES,
    pseudonymizer: Callable[[str], str] | None = None,
) -> EventTable:
    """Read a FHIR R4 Bundle into a validated ``EventTable``.

    Parameters
    ----------
    bundle : path, JSON string or dict
        A FHIR R4 ``Bundle`` with ``Patient``, ``MedicationAdministration`` and ``Observation`` resources.
    observations : mapping
        LOINC code -> ``(DVID, unit)``: which results are observations of which model output, and the unit DV
        is converted to (e.g. ``{"2905-0": (1, "mg/L")}``). Other LOINC codes are ignored.
    dose_unit : str
        Unit of AMT (doses are converted to it) and of RATE per hour.
    routes : mapping
        Route (``"oral"``, ``"iv"``) -> CMT value. An administration without ``dosage.route`` is oral.
    pseudonymizer : callable, optional
        ``str -> str`` applied to every patient identifier before it enters the table.

    Raises
    ------
    InputError
        A malformed field, named by resource and JSON path (e.g. ``MedicationAdministration/a1.dosage.dose``).
    DataValidationError
        The events break a rule of the event table (as for ``read_nonmem``).

    Examples
    --------
    >>> adm = {"resourceType": "MedicationAdministration", "id": "a1", "status": "completed",
    ...        "medicationCodeableConcept": {"text": "theophylline"}, "subject": {"reference": "Patient/p1"},
    ...        "effectiveDateTime": "2024-01-01T08:00:00Z", "dosage": {"dose": {"value": 0.32, "code": "g"}}}
    >>> lab = {"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/p1"},
    ...        "code": {"coding": [{"system": "http://loinc.org", "code": "4049-3"}]},
    ...        "effectiveDateTime": "2024-01-01T10:00:00Z", "valueQuantity": {"value": 7400, "code": "ug/L"}}
    >>> doc = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": adm}, {"resource": lab}]}
    >>> t = read_fhir(doc, observations={"4049-3": (1, "mg/L")})
    >>> t.frame[["id", "time", "evid", "amt", "dv", "cmt"]].values.tolist()
    [['p1', 0.0, 1, 320.0, nan, 'depot'], ['p1', 2.0, 0, 0.0, 7.4, 0]]
    """
    doc = load_bundle(bundle)
    ids, patients = _patients(doc, pseudonymizer)
    doses = _doses(doc, "MedicationAdministration", dose_unit, routes)
    labs, covs = _labs(doc, observations)
    events = doses + labs
    for e in events + covs:
        if e["ref"] not in ids:
            if not e["ref"]:
                raise InputError(f"{e['source']}.subject: no patient reference; give subject.reference "
                                 "'Patient/<id>'.")
            ids[e["ref"]] = pseudonymizer(e["ref"]) if pseudonymizer is not None else e["ref"]
    origins = _origins(events, ids)
    used = [e for e in events if not e["set_aside"]]
    if not used:
        raise InputError("the bundle has no administered doses and no observations with a LOINC code in "
                         f"`observations` ({sorted(observations)}); nothing to read.")
    records = []
    for e in used:
        pid = ids[e["ref"]]
        is_dose = "amt" in e
        records.append({"source_row": e["source"], "ID": pid, "TIME": _hours(e["stamp"], origins[pid]),
                        "EVID": 1 if is_dose else 0, "AMT": e.get("amt", 0.0), "RATE": e.get("rate", 0.0),
                        "DUR": e.get("dur", 0.0), "CMT": e.get("cmt", 0), "DV": e.get("dv", math.nan),
                        "MDV": 1 if is_dose else 0, "CENS": e.get("cens", 0), "LLOQ": e.get("lloq", math.nan),
                        "DVID": e.get("dvid", 1), "_order": (list(origins).index(pid), e["stamp"], not is_dose)})
    frame = pd.DataFrame(records)
    frame = frame.iloc[sorted(range(len(frame)), key=lambda i: frame["_order"].iloc[i])]
    frame = frame.drop(columns="_order").set_index("source_row")
    if frame["LLOQ"].isna().all():  # no censored result: leave the column out (an empty one is warned about)
        frame = frame.drop(columns="LLOQ")
    units = _units(observations, dose_unit)
    frame = _covariates(frame, patients, ids, covs, origins, units)
    raw = read_raw(frame)
    gone = [e for e in events if e["set_aside"]]
    raw.set_aside += [(e["source"], e["set_aside"]) for e in gone]
    raw.rows_in += len(gone)
    raw.source = "FHIR bundle"
    note = "TIME = hours since each patient's first dose or sample (FHIR dateTimes, exact via UTC)"
    table, report = build_table(raw, units=units, notes=[note] + (["patient ids pseudonymised"] if pseudonymizer
                                                                    else []))
    if table is None:
        raise DataValidationError(report)
    return table


def _covariates(frame: pd.DataFrame, patients: pd.DataFrame, ids: Mapping[str, str], covs: list[dict],
                origins: Mapping[str, pd.Timestamp], units: dict[str, str]) -> pd.DataFrame:
    frame = frame.copy()
    if len(patients):
        sex = {ids[r.patient]: r.sex or math.nan for r in patients.itertuples()}
        age = {}
        for r in patients.itertuples():
            pid = ids[r.patient]
            if r.birth_date and pid in origins:
                born = pd.Timestamp(r.birth_date, tz="UTC")
                age[pid] = (origins[pid] - born) / pd.Timedelta(days=365.25)
        frame["SEX"] = frame["ID"].map(sex)
        frame["AGE"] = frame["ID"].map(age).astype(float)
        units["AGE"] = "year"
    for name, unit in (("WT", "kg"), ("HT", "cm")):
        first: dict[str, tuple[pd.Timestamp, float]] = {}
        for c in covs:
            pid = ids[c["ref"]]
            if c["covariate"] == name and (pid not in first or c["stamp"] < first[pid][0]):
                first[pid] = (c["stamp"], c["value"])
        if first:
            frame[name] = frame["ID"].map({k: v for k, (_, v) in first.items()}).astype(float)
            units[name] = unit
    return frame


def read_fhir_plan(
    bundle: Bundle,
    *,
    observations: Mapping[str, tuple[int, str]] | None = None,
    dose_unit: str = "mg",
    routes: Mapping[str, int | str] = DEFAULT_ROUTES,
    pseudonymizer: Callable[[str], str] | None = None,
) -> pd.DataFrame:
    """Planned doses of every ``MedicationRequest``, expanded from ``dosageInstruction[].timing.repeat``.

    Pass the arguments given to ``read_fhir``: TIME is then on the same clock (hours since the patient's first
    administered dose or sample in the table; for a patient with none, since the first planned dose). One row
    per scheduled dose with ``id``, ``time``, ``amt``, ``rate``, ``dur``, ``cmt`` (as in the event table),
    ``source`` (the request), ``dose_number`` and ``fhir_status`` (the caller keeps ``active`` ones, say).

    Examples
    --------
    >>> req = {"resourceType": "MedicationRequest", "id": "r1", "status": "active", "intent": "order",
    ...        "medicationCodeableConcept": {"text": "theophylline"}, "subject": {"reference": "Patient/p1"},
    ...        "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d",
    ...            "count": 3, "boundsPeriod": {"start": "2024-01-02T08:00:00Z"}}},
    ...            "doseAndRate": [{"doseQuantity": {"value": 300, "code": "mg"}}]}]}
    >>> read_fhir_plan({"resourceType": "Bundle", "entry": [{"resource": req}]})[["id", "time", "amt"]].values.tolist()
    [['p1', 0.0, 300.0], ['p1', 12.0, 300.0], ['p1', 24.0, 300.0]]
    """
    doc = load_bundle(bundle)
    ids, _ = _patients(doc, pseudonymizer)
    events = _doses(doc, "MedicationAdministration", dose_unit, routes) + _labs(doc, dict(observations or {}))[0]
    planned = _doses(doc, "MedicationRequest", dose_unit, routes)
    for e in events + planned:
        if e["ref"] not in ids:
            ids[e["ref"]] = pseudonymizer(e["ref"]) if pseudonymizer is not None else e["ref"]
    origins = _origins(events, ids)
    for pid, stamp in _origins(planned, ids).items():
        origins.setdefault(pid, stamp)
    rows = [{"id": ids[p["ref"]], "time": _hours(p["stamp"], origins[ids[p["ref"]]]), "amt": p["amt"],
             "rate": p["rate"], "dur": p["dur"], "cmt": p["cmt"], "source": p["source"],
             "dose_number": int(p["dose_number"]), "fhir_status": p["status"]} for p in planned]
    columns = ["id", "time", "amt", "rate", "dur", "cmt", "source", "dose_number", "fhir_status"]
    return pd.DataFrame(rows, columns=columns)
