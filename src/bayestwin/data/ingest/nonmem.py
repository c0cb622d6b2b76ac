"""NONMEM/Monolix-style event data: reader and lossless writer.

Column names are matched case-insensitively with common aliases (see
``bayestwin.data.columns``); ``.`` and empty cells are missing; rows whose
first cell starts with ``#`` (or whose ``C`` column holds ``C``) are comment
rows, set aside with their reason. Units are never guessed: declare them with
``units=`` or in a JSON sidecar ``<file>.units.json`` (written by
``write_nonmem``).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bayestwin.data.columns import CANONICAL, COLUMN_ORDER
from bayestwin.data.event_table import EventTable
from bayestwin.data.ingest.build import EvidCoding, build_table
from bayestwin.data.ingest.raw import Source, read_raw
from bayestwin.data.report import ValidationReport
from bayestwin.exceptions import DataValidationError, UnitError

__all__ = ["nonmem_table", "read_nonmem", "write_nonmem"]

SIDECAR_SUFFIX = ".units.json"


def _sidecar(source: Source) -> Path | None:
    if isinstance(source, str | Path):
        path = Path(str(source) + SIDECAR_SUFFIX)
        return path if path.exists() else None
    return None


def nonmem_table(
    source: Source,
    *,
    units: Mapping[str, str] | str | Path | None = None,
    evid_coding: EvidCoding = "nonmem",
    ss_map: Mapping[float, float] | None = None,
    weight: str | None = None,
    required_covariates: Iterable[str] = (),
    static_covariates: Iterable[str] = (),
    compartments: Mapping[int, str] | None = None,
    assume_timezone: str | None = None,
    ignore_rules: Iterable[str] = (),
    sep: str | None = None,
) -> tuple[EventTable | None, ValidationReport]:
    """Read and validate; return ``(table or None, report)`` without raising for bad data."""
    if units is None:
        side = _sidecar(source)
        if side is None:
            raise UnitError(
                "no units given: pass units={'time': 'h', 'amt': 'mg', 'dv': 'mg/L', ...} "
                f"or put them in a JSON sidecar '<file>{SIDECAR_SUFFIX}'"
            )
        units = side
    if isinstance(units, str | Path):
        units = json.loads(Path(units).read_text(encoding="utf-8"))
    assert isinstance(units, Mapping)
    raw = read_raw(source, sep=sep)
    return build_table(
        raw, units=units, evid_coding=evid_coding, ss_map=ss_map, weight=weight,
        required_covariates=required_covariates, static_covariates=static_covariates,
        compartments=compartments, assume_timezone=assume_timezone, ignore_rules=ignore_rules,
    )


def read_nonmem(
    source: Source,
    *,
    units: Mapping[str, str] | str | Path | None = None,
    evid_coding: EvidCoding = "nonmem",
    ss_map: Mapping[float, float] | None = None,
    weight: str | None = None,
    required_covariates: Iterable[str] = (),
    static_covariates: Iterable[str] = (),
    compartments: Mapping[int, str] | None = None,
    assume_timezone: str | None = None,
    ignore_rules: Iterable[str] = (),
    sep: str | None = None,
) -> EventTable:
    r"""Read NONMEM-style event data into a validated ``EventTable``.

    Parameters
    ----------
    source : path, text stream or pandas.DataFrame
        The data. In a file, violations name the line number (header = line 1);
        in a DataFrame, the index label.
    units : mapping, or path to a JSON file
        Units of ``time`` (or ``"datetime"`` for ISO date-times), ``amt``,
        ``dv`` and of quantitative covariates by column name, e.g.
        ``{"time": "h", "amt": "mg", "dv": "mg/L", "WT": "kg"}``. AMT may be
        per body weight (``"mg/kg"``): it is converted to an amount with the
        weight column. Default: the sidecar ``<file>.units.json``.
    evid_coding : {"nonmem", "rxode2"}
        ``"rxode2"`` decodes nlmixr2/rxode2 dose codes (``101`` = bolus into
        compartment 1) into NONMEM EVID/CMT.
    ss_map : mapping, optional
        Recode non-NONMEM steady-state markers, e.g. ``{99: 0}``.
    weight : str, optional
        Body-weight covariate column; by default recognised by name (WT, WEIGHT, ...).
    required_covariates, static_covariates : iterables of str
        Covariates doses/observations need (missing is an error), and those
        that must be constant within a patient.
    compartments : mapping, optional
        A model's compartments (number -> name); CMT is checked against them.
    assume_timezone : str, optional
        IANA zone of naive date-times in TIME (only with ``units={"time": "datetime"}``).
    ignore_rules : iterable of str
        Rule ids to waive; the waiver is recorded in ``table.notes``.
    sep : str, optional
        Field separator; sniffed by default.

    Returns
    -------
    EventTable
        With warnings in ``table.report``.

    Raises
    ------
    DataValidationError
        Listing every error found (``err.report``).

    Examples
    --------
    >>> csv = io.StringIO("ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.9,0,.\n1,2,.,2.1,0,.\n")
    >>> table = read_nonmem(csv, units={"time": "h", "amt": "mg", "dv": "mg/L", "WT": "kg"})
    >>> table.frame[["time", "amt", "dv", "WT"]].values.tolist()
    [[0.0, 100.0, nan, 70.0], [1.0, 0.0, 2.9, 70.0], [2.0, 0.0, 2.1, 70.0]]
    >>> table.frame["evid"].tolist()
    [1, 0, 0]
    """
    table, report = nonmem_table(
        source, units=units, evid_coding=evid_coding, ss_map=ss_map, weight=weight,
        required_covariates=required_covariates, static_covariates=static_covariates,
        compartments=compartments, assume_timezone=assume_timezone, ignore_rules=ignore_rules, sep=sep,
    )
    if table is None:
        raise DataValidationError(report)
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "."
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    f = float(value)
    if math.isnan(f):
        return "."
    if f.is_integer() and abs(f) < 1e15 and math.copysign(1.0, f) > 0:
        return str(int(f))
    return repr(f)  # shortest text that reads back to the same double (keeps -0.0)


def write_nonmem(table: EventTable, path: str | Path | None = None, *, sidecar: bool = True) -> str:
    """Write `table` as NONMEM CSV (and a units sidecar); return the CSV text.

    Floats are written with the shortest text that reads back to the same
    number, missing values as ``.``, so ``read_nonmem(write_nonmem(t))`` equals
    `t` (see ``EventTable.equals``). Columns holding only their default
    (e.g. no infusions) are omitted.

    Examples
    --------
    >>> from bayestwin.data import load_dataset
    >>> table = load_dataset("theo_sd")
    >>> text = write_nonmem(table)
    >>> text.splitlines()[0]
    'ID,TIME,EVID,AMT,CMT,DV,MDV,WT'
    >>> read_nonmem(io.StringIO(text), units=dict(table.units)).equals(table)
    True
    """
    f = table.frame
    keep = []
    for name in COLUMN_ORDER:
        default = CANONICAL[name].default
        col = f[name]
        if name in ("id", "time", "evid", "mdv", "amt", "dv"):
            keep.append(name)
        elif default is None:
            if col.notna().any():
                keep.append(name)
        elif not (col.map(lambda v, d=default: v == d)).all():
            keep.append(name)
    columns = keep + list(table.covariates)
    header = [c.upper() if c in CANONICAL else c for c in columns]
    buffer = io.StringIO()
    buffer.write(",".join(header) + "\n")
    values = f[columns].to_numpy(dtype=object)
    for row in values:
        buffer.write(",".join(_quote(_cell(v)) for v in row) + "\n")
    text = buffer.getvalue()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
        if sidecar:
            units = {k.upper() if k in CANONICAL else k: v for k, v in table.units.items()}
            Path(str(path) + SIDECAR_SUFFIX).write_text(json.dumps(units, indent=2) + "\n", encoding="utf-8")
    return text


def _quote(text: str) -> str:
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


