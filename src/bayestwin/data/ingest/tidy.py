"""Tidy ("long") data: an observations table and a dosing table, merged into events.

Clinical exports rarely come in NONMEM layout. Here the caller names the
columns of each table; rows are merged per patient in time order, a dose placed
before an observation at the same time (the sample is taken after the dose is
recorded, as in NONMEM data sets built from such tables). Violations name the
table and its row: ``observations:12`` is line 12 of the observations file (or
index label 12 of the frame).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bayestwin.data.event_table import EventTable
from bayestwin.data.ingest.build import build_table
from bayestwin.data.ingest.parse import parse_number
from bayestwin.data.ingest.raw import RawTable, Source, read_raw
from bayestwin.data.report import ValidationReport
from bayestwin.data.rules.base import declare
from bayestwin.exceptions import DataValidationError

__all__ = ["read_tidy", "tidy_table"]

MISSING_NAMED = declare("S008", "error", "a column named in the reader's arguments is not in the table",
                        "Pass the column names as they are written in the table (case-insensitive).")


def _find(raw: RawTable, name: str) -> int | None:
    target = name.strip().upper()
    for pos, col in enumerate(raw.header):
        if col.strip().upper() == target:
            return pos
    return None


def _section(
    raw: RawTable, table: str, mapping: Mapping[str, str | None], constants: Mapping[str, Any],
    drop: Sequence[str],
) -> tuple[list[str], list[dict[str, Any]], list[Any]]:
    problems = []
    positions: dict[str, int] = {}
    for canon, name in mapping.items():
        if name is None:
            continue
        pos = _find(raw, name)
        if pos is None:
            problems.append(MISSING_NAMED.violation(
                f"the {table} table has no column {name!r} (for {canon.upper()}); it has {raw.header}",
                column=name))
        else:
            positions[canon] = pos
    raw.violations.extend(problems)
    dropped = {d.strip().upper() for d in drop}
    named = set(positions.values())
    extra = [(pos, col) for pos, col in enumerate(raw.header)
             if pos not in named and col.strip() and col.strip().upper() not in dropped]
    # named columns keep the caller's spelling (so messages say "dose", not "AMT")
    names = {canon: str(mapping[canon]).strip() for canon in positions}
    header = [names[c] for c in positions] + [c for _, c in extra] + [c.upper() for c in constants]
    records = []
    for cells in raw.rows:
        rec = {names[canon]: cells[pos] for canon, pos in positions.items()}
        rec.update({col: cells[pos] for pos, col in extra})
        rec.update({c.upper(): v for c, v in constants.items()})
        records.append(rec)
    labels = [f"{table}:{label}" for label in raw.row_labels]
    return header, records, labels


def tidy_table(
    observations: Source,
    doses: Source | None = None,
    *,
    units: Mapping[str, str],
    id: str = "id",
    time: str = "time",
    dv: str = "dv",
    amt: str = "amt",
    rate: str | None = None,
    dur: str | None = None,
    obs_cmt: int | str | None = None,
    dose_cmt: int | str | None = None,
    cens: str | None = None,
    drop: Sequence[str] = (),
    **options: Any,
) -> tuple[EventTable | None, ValidationReport]:
    """Merge and validate; return ``(table or None, report)`` without raising for bad data."""
    obs_raw = read_raw(observations)
    obs_header, obs_rows, obs_labels = _section(
        obs_raw, "observations", {"id": id, "time": time, "dv": dv, "cens": cens},
        {"evid": 0, **({"cmt": obs_cmt} if obs_cmt is not None else {})}, drop)
    sections = [(obs_header, obs_rows, obs_labels, 1)]
    set_aside = [(f"observations:{r}", why) for r, why in obs_raw.set_aside]
    violations = list(obs_raw.violations)
    rows_in = obs_raw.rows_in
    if doses is not None:
        dose_raw = read_raw(doses)
        dose_header, dose_rows, dose_labels = _section(
            dose_raw, "doses", {"id": id, "time": time, "amt": amt, "rate": rate, "dur": dur},
            {"evid": 1, **({"cmt": dose_cmt} if dose_cmt is not None else {})}, drop)
        sections.append((dose_header, dose_rows, dose_labels, 0))
        set_aside += [(f"doses:{r}", why) for r, why in dose_raw.set_aside]
        violations += dose_raw.violations
        rows_in += dose_raw.rows_in
    header: list[str] = []
    for sec_header, *_ in sections:
        header += [h for h in sec_header if h not in header]
    merged: list[tuple[tuple[Any, ...], list[Any], Any]] = []
    first_seen: dict[Any, int] = {}
    for _, rows, labels, rank in sections:
        for rec, label in zip(rows, labels, strict=True):
            pid = str(rec.get(id, "")).strip()
            first_seen.setdefault(pid, len(first_seen))
            t, status = parse_number(rec.get(time))
            key_t = t if status == "ok" else _timestamp_key(rec.get(time))
            merged.append(((first_seen[pid], key_t, rank), [rec.get(h) for h in header], label))
    merged.sort(key=lambda item: item[0])
    raw = RawTable(header=header, rows=[m[1] for m in merged], row_labels=[m[2] for m in merged],
                   rows_in=rows_in, source="tidy(observations, doses)" if doses is not None else "tidy",
                   set_aside=set_aside, violations=violations)
    named = {"id": id, "time": time, "dv": dv, "amt": amt, "rate": rate, "dur": dur, "cens": cens}
    aliases = {name: canon for canon, name in named.items() if name is not None}
    return build_table(raw, units=units, aliases=aliases, **options)


def _timestamp_key(value: Any) -> float:
    stamp = pd.to_datetime(value, utc=True, errors="coerce") if value is not None else pd.NaT
    return float("inf") if pd.isna(stamp) else stamp.value / 3.6e12


def read_tidy(
    observations: Source | str | Path,
    doses: Source | str | Path | None = None,
    *,
    units: Mapping[str, str],
    id: str = "id",
    time: str = "time",
    dv: str = "dv",
    amt: str = "amt",
    rate: str | None = None,
    dur: str | None = None,
    obs_cmt: int | str | None = None,
    dose_cmt: int | str | None = None,
    cens: str | None = None,
    drop: Sequence[str] = (),
    weight: str | None = None,
    required_covariates: Iterable[str] = (),
    static_covariates: Iterable[str] = (),
    assume_timezone: str | None = None,
    ignore_rules: Iterable[str] = (),
) -> EventTable:
    """Read an observations table and a dosing table into a validated ``EventTable``.

    Parameters
    ----------
    observations : path or DataFrame
        One row per measurement: patient id, time, value, covariates.
    doses : path or DataFrame, optional
        One row per dose: patient id, time, amount (and rate or duration).
    units : mapping
        As in ``read_nonmem``: ``time`` (or ``"datetime"``),
        ``amt`` (amount or per body weight), ``dv`` and covariates by name.
    id : str
        Patient-id column, in both tables (case-insensitive).
    time : str
        Time column, in both tables.
    dv : str
        Observed-value column of the observations table.
    amt : str
        Dose-amount column of the dosing table.
    rate : str, optional
        Infusion-rate column of the dosing table.
    dur : str, optional
        Infusion-duration column of the dosing table.
    cens : str, optional
        Censoring-flag column of the observations table (1 = below LLOQ, DV holds the LLOQ).
    obs_cmt : int or str, optional
        Compartment of all observations (default: the model's default).
    dose_cmt : int or str, optional
        Compartment of all doses (default: the model's default).
    drop : sequence of str
        Columns to leave out (e.g. a row counter); everything else not named
        is a covariate.
    weight : str, optional
        As in ``read_nonmem``.
    required_covariates : iterable of str
        As in ``read_nonmem``.
    static_covariates : iterable of str
        As in ``read_nonmem``.
    assume_timezone : str, optional
        As in ``read_nonmem``.
    ignore_rules : iterable of str
        As in ``read_nonmem``.

    Examples
    --------
    >>> obs = pd.DataFrame({"pid": ["A", "A"], "t": [1.0, 4.0], "conc": [8.1, 5.0], "wt": [70, 70]})
    >>> dosing = pd.DataFrame({"pid": ["A"], "t": [0.0], "dose": [5.0], "wt": [70]})
    >>> table = read_tidy(obs, dosing, id="pid", time="t", dv="conc", amt="dose",
    ...                   units={"time": "h", "amt": "mg/kg", "dv": "mg/L", "wt": "kg"})
    >>> table.frame[["id", "time", "evid", "amt", "dv"]].values.tolist()
    [['A', 0.0, 1, 350.0, nan], ['A', 1.0, 0, 0.0, 8.1], ['A', 4.0, 0, 0.0, 5.0]]
    >>> table.units["amt"]
    'mg'
    """
    table, report = tidy_table(
        observations, doses, units=units, id=id, time=time, dv=dv, amt=amt, rate=rate, dur=dur,
        obs_cmt=obs_cmt, dose_cmt=dose_cmt, cens=cens, drop=drop, weight=weight,
        required_covariates=required_covariates, static_covariates=static_covariates,
        assume_timezone=assume_timezone, ignore_rules=ignore_rules,
    )
    if table is None:
        raise DataValidationError(report)
    return table
