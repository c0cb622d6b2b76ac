"""Turn raw cells into typed canonical columns, collecting every problem.

This stage maps source column names to canonical ones (aliases, case), checks
the header (required, duplicate and empty columns) and converts each cell,
recording non-numeric, infinite, missing and non-integer values as violations
at their row and column. A cell that failed is left missing *and* reported, so
no later rule fires again on it and no NaN goes unexplained.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from bayestwin.data.columns import CANONICAL, MISSING_TOKENS, canonical_name
from bayestwin.data.ingest.raw import RawTable
from bayestwin.data.report import Violation
from bayestwin.data.rules.base import declare

__all__ = ["ParsedColumns", "parse_columns", "parse_number"]

MISSING_COLUMN = declare("S002", "error", "a required column is missing",
                         "Add the column (ID and TIME are always required) or rename yours: "
                         "names are matched case-insensitively with common aliases.")
DUPLICATE_COLUMN = declare("S003", "error", "two columns mean the same thing",
                           "Keep one of them or rename the other (aliases such as CONC and DV count "
                           "as the same column).")
NOTHING_TO_MODEL = declare("S005", "error", "the data have neither doses (AMT) nor observations (DV)",
                           "Provide an AMT column for doses and/or a DV column for observations.")
EMPTY_COLUMN = declare("S007", "warning", "a column has no values at all",
                       "Remove the empty column, or fill it in if it should hold data.")
NOT_NUMERIC = declare("V001", "error", "a value that must be a number is not a number",
                      "Write a plain number (decimal point '.', no units or text); use '.' or an "
                      "empty cell for a missing value.")
INFINITE = declare("V002", "error", "a value is infinite",
                   "Replace the infinite value by the measured number or mark it missing.")
MISSING_REQUIRED = declare("V003", "error", "a required value is missing",
                           "Fill in the value: every row needs an ID and a TIME (and an EVID when the "
                           "column is present).")
NOT_INTEGER = declare("V004", "error", "a value that must be a whole number has a fraction or is too large",
                      "EVID, MDV, CMT, ADDL, SS and CENS are codes or counts: write whole numbers.")
MIXED_COVARIATE = declare("V005", "warning", "a covariate column mixes numbers and text",
                          "Use numbers throughout (and declare the unit) or text codes throughout.")

REQUIRED = ("id", "time")
_NUMERIC = tuple(n for n in CANONICAL if n not in ("id", "cmt"))


@dataclass
class ParsedColumns:
    """Typed columns of a source, before any event semantics are applied.

    ``values`` holds canonical columns (float64, NaN where missing) and
    covariates (float64 or object for text), indexed by source row.
    ``missing`` holds the canonical columns' masks of cells left empty in the
    source; ``failed`` the cells that could not be parsed (already reported).
    """

    values: pd.DataFrame
    source_names: dict[str, str]
    covariates: list[str]
    missing: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[str, np.ndarray] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    def has(self, name: str) -> bool:
        """Whether canonical column `name` was present in the source."""
        return name in self.source_names


def parse_number(cell: Any) -> tuple[float, str]:
    """Parse one cell; return ``(value, status)`` with status ok, missing, bad or inf.

    Examples
    --------
    >>> parse_number("2.5"), parse_number("."), parse_number("5 mg"), parse_number("inf")
    ((2.5, 'ok'), (nan, 'missing'), (nan, 'bad'), (nan, 'inf'))
    """
    if cell is None:
        return math.nan, "missing"
    if isinstance(cell, bool):
        return float(cell), "ok"
    if isinstance(cell, int | float | np.integer | np.floating):
        try:
            value = float(cell)
        except OverflowError:  # a Python int beyond the double range
            return math.nan, "inf"
        if math.isnan(value):
            return math.nan, "missing"
        return (value, "ok") if math.isfinite(value) else (math.nan, "inf")
    text = str(cell).strip()
    if text in MISSING_TOKENS:
        return math.nan, "missing"
    try:
        value = float(text)
    except ValueError:
        return math.nan, "bad"
    if not math.isfinite(value):
        return math.nan, "inf"
    return value, "ok"


def _parse_id(cell: Any) -> Any:
    if cell is None:
        return None
    if isinstance(cell, float | np.floating):
        if math.isnan(cell):
            return None
        return int(cell) if float(cell).is_integer() else float(cell)
    if isinstance(cell, int | np.integer):
        return int(cell)
    text = str(cell).strip()
    if text in MISSING_TOKENS:
        return None
    # Only canonical integer spellings become numbers ("7", "-3"); "007" or "7.0" stay text, so
    # distinct ids never merge.
    digits = text[1:] if text[:1] in "+-" else text
    if digits.isdigit() and (digits == "0" or not digits.startswith("0")) and text[:1] != "+":
        return int(text)
    return text


def parse_columns(
    raw: RawTable,
    *,
    quantitative: Iterable[str] = (),
    timestamps: bool = False,
    resolve: Callable[[str], str | None] = canonical_name,
) -> ParsedColumns:
    r"""Map and type the columns of `raw`; every problem becomes a violation.

    Parameters
    ----------
    raw : RawTable
        Output of ``read_raw``.
    quantitative : iterable of str
        Covariate columns (source names) that must be numeric, e.g. those
        given a unit by the caller.
    timestamps : bool
        Keep TIME cells as written (date-times converted later) instead of
        parsing them as numbers.
    resolve : callable
        Source column name -> canonical name or None (default: standard aliases).

    Examples
    --------
    >>> import io
    >>> from bayestwin.data.ingest.raw import read_raw
    >>> parsed = parse_columns(read_raw(io.StringIO("id,Time,conc,WT\n1,0,.,70\n1,1,2.5,70\n")))
    >>> parsed.source_names, parsed.covariates
    ({'id': 'id', 'time': 'Time', 'dv': 'conc'}, ['WT'])
    """
    violations = list(raw.violations)
    labels = raw.row_labels
    index = pd.Index(labels, name="source_row")
    positions: dict[str, int] = {}
    covariates: list[str] = []
    seen_cov: dict[str, int] = {}
    for pos, name in enumerate(raw.header):
        if not name:
            continue
        canon = resolve(name)
        if canon is None:
            key = name.upper()
            if key in seen_cov:
                violations.append(DUPLICATE_COLUMN.violation(
                    f"column {name!r} appears twice (columns {seen_cov[key] + 1} and {pos + 1})",
                    column=name))
                continue
            if key == "C":
                continue  # NONMEM comment-flag column; its rows were set aside already
            seen_cov[key] = pos
            covariates.append(name)
            positions[name] = pos
        elif canon in positions:
            first = raw.header[positions[canon]]
            violations.append(DUPLICATE_COLUMN.violation(
                f"columns {first!r} and {name!r} both mean {canon.upper()} ({CANONICAL[canon].description})",
                column=name))
        else:
            positions[canon] = pos
    source_names = {c: raw.header[p] for c, p in positions.items() if c in CANONICAL}
    for req in REQUIRED:
        if req not in positions and raw.header:
            aliases = ", ".join(CANONICAL[req].aliases)
            violations.append(MISSING_COLUMN.violation(
                f"no {req.upper()} column (accepted names: {aliases})", column=req.upper()))
    if raw.header and "amt" not in positions and "dv" not in positions:
        violations.append(NOTHING_TO_MODEL.violation("no AMT and no DV column", column="AMT/DV"))

    values: dict[str, Any] = {}
    missing: dict[str, np.ndarray] = {}
    failed: dict[str, np.ndarray] = {}
    n = len(labels)
    quantitative = set(quantitative)
    for canon, pos in positions.items():
        cells = raw.column(pos)
        src = raw.header[pos]
        if canon == "id":
            ids = [_parse_id(c) for c in cells]
            miss = np.array([v is None for v in ids], dtype=bool)
            for label, is_missing in zip(labels, miss, strict=True):
                if is_missing:
                    violations.append(MISSING_REQUIRED.violation(
                        "patient id is missing", row=label, column=src))
            values["id"] = _id_array(ids)
            missing["id"] = miss
            continue
        if canon == "time" and timestamps:
            values["time"] = np.asarray(cells, dtype=object)
            missing["time"] = np.array([parse_number(c)[1] == "missing" for c in cells], dtype=bool)
            failed["time"] = np.zeros(n, dtype=bool)
            continue
        if canon == "cmt" or (canon in covariates and canon not in quantitative):
            parsed = [parse_number(c) for c in cells]
            text = [c for c, (_, s) in zip(cells, parsed, strict=True) if s == "bad"]
            if text:
                values[canon] = _mixed_codes(cells, parsed, canon)
                missing[canon] = np.array([s == "missing" for _, s in parsed], dtype=bool)
                failed[canon] = np.zeros(n, dtype=bool)
                if canon != "cmt" and len(text) < sum(s != "missing" for _, s in parsed):
                    violations.append(MIXED_COVARIATE.violation(
                        f"column mixes numbers and text such as {str(text[0]).strip()!r}; "
                        "it is kept as text codes", column=src, value=str(text[0]).strip()))
                continue
        column, miss, bad, vio = _parse_numeric(cells, labels, src, canon)
        violations.extend(vio)
        values[canon] = column
        missing[canon] = miss
        failed[canon] = bad
        if canon in ("id", "time", "evid"):
            for label, is_missing in zip(labels, miss, strict=True):
                if is_missing:
                    violations.append(MISSING_REQUIRED.violation(
                        f"{canon.upper()} is missing", row=label, column=src))
    for canon in list(values):
        if n and missing[canon].all():
            violations.append(EMPTY_COLUMN.violation(
                f"column {raw.header[positions[canon]]!r} is empty in every row",
                column=raw.header[positions[canon]]))
    frame = pd.DataFrame(values, index=index)
    if "id" in frame.columns:  # name the patient in cell-level problems found before ids were known
        patient_of = dict(zip(labels, frame["id"].tolist(), strict=True))
        violations = [replace(v, patient=patient_of.get(v.row)) if v.patient is None and v.row in patient_of
                      else v for v in violations]
    return ParsedColumns(frame, source_names, covariates, missing, failed, violations)


def _parse_numeric(
    cells: list[Any], labels: list[Any], src: str, canon: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Violation]]:
    out = np.full(len(cells), np.nan)
    miss = np.zeros(len(cells), dtype=bool)
    bad = np.zeros(len(cells), dtype=bool)
    vio: list[Violation] = []
    integer = canon in CANONICAL and CANONICAL[canon].integer
    for i, (cell, label) in enumerate(zip(cells, labels, strict=True)):
        value, status = parse_number(cell)
        shown = str(cell).strip() if cell is not None else ""
        if status == "ok":
            if integer and (not float(value).is_integer() or abs(value) > 2**53):
                vio.append(NOT_INTEGER.violation(f"{canon.upper()} must be a whole number below 2**53, got {shown}",
                                                 row=label, column=src, value=shown))
                bad[i] = True
            else:
                out[i] = value
        elif status == "missing":
            miss[i] = True
        elif status == "inf":
            vio.append(INFINITE.violation(f"value {shown!r} is infinite", row=label, column=src,
                                          value=shown))
            bad[i] = True
        else:
            vio.append(NOT_NUMERIC.violation(f"{shown!r} is not a number", row=label, column=src,
                                             value=shown))
            bad[i] = True
    return out, miss, bad, vio


def _mixed_codes(cells: list[Any], parsed: list[tuple[float, str]], canon: str) -> np.ndarray:
    out = np.empty(len(cells), dtype=object)
    for i, (cell, (value, status)) in enumerate(zip(cells, parsed, strict=True)):
        if status == "missing":
            out[i] = 0 if canon == "cmt" else None
        elif status == "ok":
            out[i] = int(value) if float(value).is_integer() else value
        else:
            out[i] = str(cell).strip()
    return out


def _id_array(ids: list[Any]) -> np.ndarray | pd.Series:
    present = [v for v in ids if v is not None]
    fits = all(isinstance(v, int) and -(2**63) <= v < 2**63 for v in present)
    if present and fits and len(present) == len(ids):
        return np.asarray(ids, dtype=np.int64)
    return np.asarray([v if v is None or isinstance(v, str) else str(v) for v in ids], dtype=object)


def unit_of(units: Mapping[str, str], *names: str) -> str | None:
    """First unit declared in `units` under any of `names` (case-insensitive)."""
    upper = {k.upper(): v for k, v in units.items()}
    for name in names:
        if name.upper() in upper:
            return upper[name.upper()]
    return None
