"""HIPAA Safe Harbor rules for the data a twin store holds: remove, shift, group.

A :class:`Deidentifier` applies them to one patient's data, with that patient's keyed
date shift, and notes in its :class:`Findings` every field it removed, shifted or
grouped (the export's manifest lists them). Rules, for columns (InferenceData
variables and coordinates, DataFrame columns), attributes and JSON keys alike:

* **Removed**: any field whose name is identifier-like (tokens such as ``id``,
  ``patient``, ``subject``, ``mrn``, ``dob``, ``birth``, ``address``, ``zip``,
  ``phone``, ``email``, ``ssn``, ``who``, ``actor``; person names such as
  ``first_name``), free text (``note``, ``comment``, ``text``, ``remark``,
  ``description``, ...) or links back to the source data (``source_row``,
  ``data_hash``, ``data_digest``, ``twin_fit_id``, ...), whatever its type. In
  datasets and tables every other *text* column is removed too (it may be free
  text), except dates, dimension coordinates (axis labels such as parameter names)
  and bayestwin's label columns (``observation_output``, ``observation_unit``).
  Text attributes are kept only for a short list of keys (``unit``, ``time_unit``,
  ArviZ's version fields, ...).
* **Shifted**: absolute date-times (``datetime64`` columns, ISO 8601 text such as
  ``"2026-03-14T08:30:00Z"`` or ``"2026-03-14"``) move by the patient's whole-day
  offset, time of day and UTC offset unchanged, so intervals are kept exactly.
  Relative times (hours since the patient's time origin: ``time``,
  ``observation_time``, forecast times) are numbers and stay as they are.
* **Grouped**: a numeric age (a field named ``age``, case-insensitive, or ``age_y``,
  ``age_yr``, ``age_yrs``, ``age_years``) above 89 becomes **90**, meaning "90 or
  older" (the number keeps the column numeric; the manifest says so). Text ages above
  89 become ``"90+"``.

Strings elsewhere in JSON records are kept (forecast and diagnostics documents are
bayestwin's own); put free text in records only under a free-text key.

Examples
--------
>>> import numpy as np, xarray as xr
>>> ds = xr.Dataset({"AGE": ("i", [47, 93]), "DATETIME": ("i", np.array(["2026-03-14T08:00"], "M8[ns]").repeat(2)),
...                  "ID": ("i", [7, 7]), "TIME": ("i", [0.0, 2.5])})
>>> out = Deidentifier(shift_days=-10).dataset(ds, "data")
>>> sorted(out.data_vars), out["AGE"].values.tolist(), str(out["DATETIME"].values[0])[:16], out["TIME"].values[1]
(['AGE', 'DATETIME', 'TIME'], [47, 90], '2026-03-04T08:00', np.float64(2.5))
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["AGE_GROUP_LABEL", "AGE_GROUP_VALUE", "AGE_LIMIT", "Deidentifier", "Findings", "removal_reason",
           "shift_iso_text"]

AGE_LIMIT = 89
AGE_GROUP_VALUE = 90
AGE_GROUP_LABEL = "90+"

_IDENTIFIER_WORDS = frozenset({
    "id", "ids", "identifier", "patient", "patients", "subject", "subjects", "mrn", "dob", "birth", "birthdate",
    "birthday", "address", "street", "city", "county", "zip", "zipcode", "postcode", "postal", "phone",
    "telephone", "mobile", "fax", "email", "ssn", "nhs", "insurance", "account", "license", "licence",
    "certificate", "vehicle", "plate", "serial", "device", "url", "ip", "photo", "biometric", "who", "actor",
    "author", "user", "clinician", "physician", "doctor", "nurse", "initials"})
_PERSON_NAMES = ("firstname", "lastname", "surname", "fullname", "givenname", "familyname", "middlename",
                 "maidenname", "patientname")
_FREE_TEXT_WORDS = frozenset({"note", "notes", "comment", "comments", "text", "freetext", "remark", "remarks",
                              "description", "narrative", "memo", "message"})
_LINKING = frozenset({"source_row", "data_hash", "data_digest", "posterior_hash", "payload_hash", "audit_hash",
                      "audit_seq", "twin_fit_id"})
_SAFE_NAMES = frozenset({"spec_name", "spec_digest", "spec_hash", "population_fit_id", "population_version"})
_KEPT_TEXT = frozenset({"observation_output", "observation_unit"})
_KEPT_TEXT_ATTRS = frozenset({"unit", "units", "time_unit", "long_name", "standard_name", "schema", "arviz_version",
                              "inference_library", "inference_library_version", "modeling_interface",
                              "modeling_interface_version"})
_AGE = re.compile(r"age(_?(y|yr|yrs|years))?", re.IGNORECASE)
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def removal_reason(name: object) -> str | None:
    """Why a field called `name` is removed (identifier-like, free text, link to source data), or ``None``.

    Examples
    --------
    >>> removal_reason("observation_patient"), removal_reason("patientId"), removal_reason("WT")
    ('identifier-like name', 'identifier-like name', None)
    >>> removal_reason("Comment"), removal_reason("source_row"), removal_reason("spec_name")
    ('free text', 'links the record to the source data', None)
    """
    text = str(name)
    if text.lower() in _SAFE_NAMES:
        return None
    if text.lower() in _LINKING:
        return "links the record to the source data"
    tokens = [t for t in re.split(r"[^a-z0-9]+", _CAMEL.sub(r"\1_\2", text).lower()) if t]
    joined = "".join(tokens)
    if any(t in _IDENTIFIER_WORDS for t in tokens) or any(p in joined for p in _PERSON_NAMES):
        return "identifier-like name"
    if any(t in _FREE_TEXT_WORDS for t in tokens):
        return "free text"
    return None


def shift_iso_text(text: str, days: int) -> str | None:
    """`text` moved by `days` whole days if it is an ISO 8601 date or date-time, else ``None``.

    Only the calendar date changes: time of day, fraction and UTC offset are kept as written.

    Examples
    --------
    >>> shift_iso_text("2026-02-27T23:30:00+01:00", 3), shift_iso_text("2026-12-31", 1), shift_iso_text("12 h", 1)
    ('2026-03-02T23:30:00+01:00', '2027-01-01', None)
    """
    if not _ISO.fullmatch(text):
        return None
    try:
        day = _dt.date.fromisoformat(text[:10])
    except ValueError:
        return None
    return (day + _dt.timedelta(days=days)).isoformat() + text[10:]


@dataclass
class Findings:
    """What a de-identification changed, by field: removed (with the reason), shifted, grouped (with counts)."""

    removed: dict[str, str] = field(default_factory=dict)
    shifted: set[str] = field(default_factory=set)
    grouped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, sorted by field.

        Examples
        --------
        >>> Findings(removed={"b": "free text"}, shifted={"t"}).to_dict()["removed"]
        [{'field': 'b', 'reason': 'free text'}]
        """
        return {"removed": [{"field": k, "reason": v} for k, v in sorted(self.removed.items())],
                "shifted": sorted(self.shifted),
                "grouped": [{"field": k, "values_grouped": n} for k, n in sorted(self.grouped.items())]}


class Deidentifier:
    """Apply the Safe Harbor rules to one patient's data with that patient's date shift.

    Parameters
    ----------
    shift_days : int
        The patient's date shift in whole days (see ``Pseudonymizer.date_shift_days``).
    replace : Mapping[str, str], optional
        Text to replace wherever it occurs in kept strings (the pseudonym -> the export's subject code).
    findings : Findings, optional
        Where to note what was changed (shared across patients to build one manifest).

    Examples
    --------
    >>> d = Deidentifier(7, replace={"p-1": "subject-001"})
    >>> d.json({"patient": "p-1", "created": "2026-01-01T09:00:00Z", "note": "seen", "dose": 5, "x": "p-1"}, "rec")
    {'created': '2026-01-08T09:00:00Z', 'dose': 5, 'x': 'subject-001'}
    >>> sorted(d.findings.removed)
    ['rec:note', 'rec:patient']
    """

    def __init__(self, shift_days: int, *, replace: Mapping[str, str] | None = None,
                 findings: Findings | None = None) -> None:
        self.shift_days = int(shift_days)
        self.replace = dict(replace or {})
        self.findings = findings if findings is not None else Findings()

    # --- JSON ---------------------------------------------------------------------------------
    def json(self, value: Any, where: str, path: str = "") -> Any:
        """A de-identified copy of a JSON value (dicts, lists, strings, numbers); `where` names it in findings."""
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                sub = f"{path}.{key}" if path else str(key)
                reason = removal_reason(key)
                if reason:
                    self.findings.removed[f"{where}:{sub}"] = reason
                    continue
                if _AGE.fullmatch(str(key)):
                    item = self._group_age_scalar(item, f"{where}:{sub}")
                out[key] = self.json(item, where, sub)
            return out
        if isinstance(value, list | tuple):
            return [self.json(item, where, f"{path}[]") for item in value]
        if isinstance(value, str):
            return self.text(value, f"{where}:{path}")
        return value

    def text(self, value: str, field_name: str) -> str:
        """A string with dates shifted (noted under `field_name`) and replaced text (pseudonyms) substituted."""
        shifted = shift_iso_text(value, self.shift_days)
        if shifted is not None:
            self.findings.shifted.add(field_name)
            return shifted
        for old, new in self.replace.items():
            value = value.replace(old, new)
        return value

    # --- datasets and tables ------------------------------------------------------------------
    def idata(self, idata: Any, where: str) -> Any:
        """A de-identified copy of an ``arviz.InferenceData``, group by group (see :meth:`dataset`)."""
        import arviz as az

        groups = {g: self.dataset(idata[g], f"{where}.{g}") for g in idata.groups()}
        with warnings.catch_warnings():  # arviz warns about groups outside its schema; we keep them as written
            warnings.simplefilter("ignore", UserWarning)
            return az.InferenceData(**groups)

    def dataset(self, ds: xr.Dataset, where: str) -> xr.Dataset:
        """A de-identified copy of an ``xarray.Dataset``: each variable and coordinate, and all attributes.

        Encodings are dropped, so a date-time's on-disk reference date is recomputed from the shifted values.
        """
        coords: dict[str, xr.Variable] = {}
        data_vars: dict[str, xr.Variable] = {}
        for name, var in ds.variables.items():
            values = self._column(str(name), np.asarray(var.values), f"{where}.{name}", axis=name in ds.dims)
            if values is None:
                continue
            kept = xr.Variable(var.dims, values, attrs=self.attrs(var.attrs, f"{where}.{name}.attrs"))
            (coords if name in ds.coords else data_vars)[str(name)] = kept
        return xr.Dataset(data_vars, coords=coords, attrs=self.attrs(ds.attrs, f"{where}.attrs"))

    def frame(self, frame: pd.DataFrame, where: str) -> pd.DataFrame:
        """A de-identified copy of a table (e.g. an event table's frame); a named index is treated as a column.

        Examples
        --------
        >>> df = pd.DataFrame({"ID": [1, 1], "TIME": [0.0, 12.0], "AGE": [91.0, 91.0], "NOTE": ["a", "b"],
        ...                    "DATETIME": pd.to_datetime(["2026-01-01 08:00", "2026-01-01 20:00"], utc=True)})
        >>> out = Deidentifier(-2).frame(df.rename_axis("source_row"), "events")
        >>> list(out.columns), out["AGE"].tolist(), str(out["DATETIME"].iloc[1])
        (['TIME', 'AGE', 'DATETIME'], [90.0, 90.0], '2025-12-30 20:00:00+00:00')
        """
        table = frame.reset_index() if frame.index.name is not None else frame.reset_index(drop=True)
        out = {}
        for name in table.columns:
            column = table[name]
            if isinstance(column.dtype, pd.DatetimeTZDtype):
                if removal_reason(name):
                    self.findings.removed[f"{where}.{name}"] = str(removal_reason(name))
                    continue
                self.findings.shifted.add(f"{where}.{name}")
                out[name] = column + pd.Timedelta(days=self.shift_days)
                continue
            values = self._column(str(name), column.to_numpy(), f"{where}.{name}", axis=False)
            if values is not None:
                out[name] = pd.Series(values, name=name)
        return pd.DataFrame(out)

    def attrs(self, attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
        """De-identified attributes: identifier-like and free-text keys removed, dates shifted, ages grouped."""
        out: dict[str, Any] = {}
        for key, value in attrs.items():
            name = f"{where}.{key}"
            reason = removal_reason(key)
            if reason is None and isinstance(value, str | np.str_):
                shifted = shift_iso_text(str(value), self.shift_days)
                if shifted is not None:
                    self.findings.shifted.add(name)
                    value = shifted
                elif key not in _KEPT_TEXT_ATTRS:
                    reason = "free text (text attribute not on the kept list)"
            elif reason is None and not _is_number(value):
                reason = "free text (non-numeric attribute)"
            if reason:
                self.findings.removed[name] = reason
                continue
            out[key] = self._group_age_scalar(value, name) if _AGE.fullmatch(str(key)) else value
        return out

    # --- helpers ------------------------------------------------------------------------------
    def _column(self, name: str, values: np.ndarray, where: str, *, axis: bool) -> np.ndarray | None:
        """The column's new values, or ``None`` to remove it (noted in findings)."""
        reason = removal_reason(name)
        if reason is None and values.dtype.kind == "M":
            self.findings.shifted.add(where)
            return values + np.timedelta64(self.shift_days, "D")
        if reason is None and values.dtype.kind in "OUS":
            if _AGE.fullmatch(name):
                return self._group_age_text(values, where)
            flat = [None if _missing(v) else shift_iso_text(_as_text(v), self.shift_days) for v in values.ravel()]
            if any(not _missing(v) for v in values.ravel()) and all(
                    s is not None or _missing(v) for s, v in zip(flat, values.ravel(), strict=True)):
                self.findings.shifted.add(where)
                shifted = [v if s is None else s for s, v in zip(flat, values.ravel(), strict=True)]
                return np.array(shifted, dtype=object if values.dtype.kind == "O" else str).reshape(values.shape)
            if axis or name in _KEPT_TEXT:
                return values
            reason = "free text (text column not on bayestwin's list of label columns)"
        if reason:
            self.findings.removed[where] = reason
            return None
        if _AGE.fullmatch(name) and values.dtype.kind in "iuf":
            over = values > AGE_LIMIT
            if over.any():
                self.findings.grouped[where] = self.findings.grouped.get(where, 0) + int(over.sum())
            return np.where(over, np.asarray(AGE_GROUP_VALUE, dtype=values.dtype), values)
        return values

    def _group_age_scalar(self, value: Any, where: str) -> Any:
        if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
            return self._column("age", value, where, axis=False)
        if _is_number(value) and not isinstance(value, bool | np.bool_) and value > AGE_LIMIT:
            self.findings.grouped[where] = self.findings.grouped.get(where, 0) + 1
            return type(value)(AGE_GROUP_VALUE)
        if isinstance(value, str | np.str_):
            return str(self._group_age_text(np.array([value], dtype=object), where)[0])
        return value

    def _group_age_text(self, values: np.ndarray, where: str) -> np.ndarray:
        out = values.astype(object).copy()
        for i, v in enumerate(out.ravel()):
            try:
                old = float(str(v).strip().rstrip("+"))
            except ValueError:
                continue
            if old > AGE_LIMIT:
                out.ravel()[i] = AGE_GROUP_LABEL
                self.findings.grouped[where] = self.findings.grouped.get(where, 0) + 1
        return out if values.dtype.kind == "O" else out.astype(str)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    return isinstance(value, bool | int | float | np.number | np.bool_)
