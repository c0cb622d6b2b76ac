"""From typed columns to a validated ``EventTable``: event semantics, units and rules.

This is the one place every reader ends in, so NONMEM CSV, tidy frames and
time-stamped records all get the same defaults, recodings and checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayestwin.data.columns import CANONICAL, COLUMN_ORDER, INTEGER_COLUMNS, canonical_name
from bayestwin.data.event_table import EventTable, RowAccounting
from bayestwin.data.expand import carry_forward
from bayestwin.data.ingest.parse import ParsedColumns, parse_columns
from bayestwin.data.ingest.raw import RawTable
from bayestwin.data.report import ValidationReport, Violation
from bayestwin.data.rules.base import declare
from bayestwin.data.validate import run_rules
from bayestwin.exceptions import UnitError

__all__ = ["EvidCoding", "build_table"]

EvidCoding = Literal["nonmem", "rxode2"]

NO_UNIT = declare("U001", "error", "a column that needs a unit has none",
                  "Declare units for TIME, AMT and DV, e.g. units={'time': 'h', 'amt': 'mg', 'dv': 'mg/L'}; "
                  "for date-times in TIME use units={'time': 'datetime', ...}.")
BAD_UNIT = declare("U002", "error", "a unit is not recognised",
                   "Write the unit in a common spelling, e.g. h, min, day, mg, ug, mg/L, ng/mL, mg/kg, kg.")
WRONG_KIND = declare("U003", "error", "a unit does not fit the column",
                     "TIME needs a time unit, AMT an amount (mass, amount of substance, IU, or per kg of "
                     "body weight), a recognised covariate (e.g. WT) a unit of its kind; give the unit "
                     "the column is really in.")
NO_WEIGHT = declare("U006", "error", "doses are per body weight but there is no weight to convert them",
                    "Pass weight='WT' (a covariate column with a mass unit) or give AMT as an amount.")
UNKNOWN_COLUMN = declare("U008", "error", "a unit is declared for a column the data do not have",
                         "Check the spelling of the column name in `units`.")
BAD_RXODE2 = declare("E008", "error", "an rxode2/nlmixr2 EVID cannot be decoded",
                     "Supported rxode2 codes: 0, 2, 3, 4, 100*CMT + 1 (bolus) and 10000 + 100*CMT + 1 "
                     "(infusion at RATE); recode others to NONMEM EVID/CMT/RATE.")

_AMOUNT_KINDS = ("mass", "substance", "international_unit", "mass_per_mass")


def column_resolver(aliases: Mapping[str, str] | None) -> Callable[[str], str | None]:
    """Canonical name of a source column: caller-given aliases first, then the standard ones."""
    extra = {k.strip().upper(): v for k, v in (aliases or {}).items()}
    return lambda name: extra.get(name.strip().upper()) or canonical_name(name)


_DV_OUTPUT_KEY = re.compile(r"^dv\[(\d+)\]$", re.IGNORECASE)


def _resolve_units(
    units: Mapping[str, str], raw: RawTable, resolve: Callable[[str], str | None]
) -> tuple[dict[str, str], list[Violation], set[str]]:
    """Map the caller's unit keys to canonical names / covariate names; check each unit.

    Returns the accepted units, the violations and every column a unit was declared for
    (accepted or not), so that a rejected unit is not reported again as a missing one.
    """
    from bayestwin.plausibility import PLAUSIBLE_RANGES, descriptor_for
    from bayestwin.units import format_unit, kind_of, parse_unit

    header = [h.strip() for h in raw.header if h.strip()]
    spelled = {}  # canonical or covariate name -> spelling in the source
    for h in header:
        spelled.setdefault(resolve(h) or h, h)
    by_upper = {h.upper(): h for h in header}
    resolved: dict[str, str] = {}
    declared: set[str] = set()
    violations: list[Violation] = []
    for key, text in units.items():
        per_output = _DV_OUTPUT_KEY.match(key.strip())
        if per_output is not None and "dv" in spelled:  # units["dv[k]"]: the unit of DV on DVID k rows
            key_name = f"dv[{int(per_output.group(1))}]"
            try:
                unit = parse_unit(str(text), where=f"{spelled['dv']} of DVID {int(per_output.group(1))}")
            except UnitError as err:
                violations.append(BAD_UNIT.violation(str(err), column=spelled["dv"], value=text))
                continue
            resolved[key_name] = format_unit(unit)
            continue
        canon = resolve(key) if key.strip().upper() not in by_upper else resolve(by_upper[key.strip().upper()])
        name = canon if canon is not None else by_upper.get(key.strip().upper())
        if name is None or name not in spelled:
            if raw.header:
                violations.append(UNKNOWN_COLUMN.violation(
                    f"unit {text!r} declared for {key!r}, which is not a column", column=key, value=text))
            continue
        declared.add(name)
        shown = spelled[name]
        if name == "time" and str(text).strip().lower() == "datetime":
            resolved["time"] = "datetime"
            continue
        try:
            unit = parse_unit(str(text), where=f"column {shown}")
        except UnitError as err:
            violations.append(BAD_UNIT.violation(str(err), column=shown, value=text))
            continue
        kind = kind_of(unit)
        if name == "time" and kind != "time":
            violations.append(WRONG_KIND.violation(f"TIME unit {text!r} is a {kind}, not a time",
                                                   column=shown, value=text))
            continue
        if name == "amt" and kind not in _AMOUNT_KINDS:
            violations.append(WRONG_KIND.violation(f"AMT unit {text!r} is a {kind}, not an amount",
                                                   column=shown, value=text))
            continue
        descriptor = descriptor_for(name) if canon is None else None
        if descriptor is not None and kind_of(PLAUSIBLE_RANGES[descriptor][0]) != kind:
            expected = kind_of(PLAUSIBLE_RANGES[descriptor][0])
            violations.append(WRONG_KIND.violation(
                f"{shown} looks like {descriptor} ({expected}), but its unit {text!r} is a {kind}",
                column=shown, value=text))
            continue
        resolved[name] = format_unit(unit)
    for need in ("time", "amt", "dv"):
        if need in spelled and need not in declared:
            violations.append(NO_UNIT.violation(f"no unit declared for {spelled[need]}", column=spelled[need]))
    return resolved, violations, declared


def build_table(
    raw: RawTable,
    *,
    units: Mapping[str, str],
    evid_coding: EvidCoding = "nonmem",
    ss_map: Mapping[float, float] | None = None,
    weight: str | None = None,
    required_covariates: Iterable[str] = (),
    static_covariates: Iterable[str] = (),
    compartments: Mapping[int, str] | None = None,
    assume_timezone: str | None = None,
    ignore_rules: Iterable[str] = (),
    notes: Iterable[str] = (),
    aliases: Mapping[str, str] | None = None,
) -> tuple[EventTable | None, ValidationReport]:
    """Build and validate an event table; return ``(table or None, report)``.

    The table is None exactly when the report has errors. See
    ``bayestwin.data.read_nonmem`` for the parameters.
    """
    from bayestwin.plausibility import descriptor_for
    from bayestwin.units import kind_of

    resolve = column_resolver(aliases)
    resolved, violations, declared = _resolve_units(units, raw, resolve)
    timestamps = resolved.get("time") == "datetime"
    parsed = parse_columns(raw, quantitative=[k for k in resolved if k not in CANONICAL], timestamps=timestamps,
                           resolve=resolve)
    violations.extend(parsed.violations)
    notes = list(notes)
    frame = parsed.values
    if timestamps:
        frame, more, note = _timestamps(parsed, assume_timezone)
        violations.extend(more)
        notes.append(note)
        resolved["time"] = "h"
    extra: dict[str, Any] = {"declared_units": declared}
    if parsed.has("evid") and evid_coding == "rxode2":
        more, decoded = _decode_rxode2(frame, parsed)
        violations.extend(more)
        extra["evid_decoded"] = True
        notes.append(f"EVID decoded from rxode2 coding ({decoded} dose records); CMT filled from it")
    if ss_map and parsed.has("ss"):
        recoded = frame["ss"].isin(list(ss_map))
        frame.loc[recoded, "ss"] = frame.loc[recoded, "ss"].map(ss_map)
        notes.append(f"SS recoded {dict(ss_map)} on {int(recoded.sum())} rows")
    frame = _fill_defaults(frame, parsed)

    if weight is None:
        weight = next((c for c in parsed.covariates if descriptor_for(c) == "body weight"), None)
    by_upper = {c.upper(): c for c in parsed.covariates}
    required = {by_upper.get(c.upper(), c) for c in required_covariates}
    static_covariates = {by_upper.get(c.upper(), c) for c in static_covariates}
    per_weight = "amt" in resolved and kind_of(resolved["amt"]) == "mass_per_mass"
    if per_weight:
        if weight is None or weight not in frame.columns or weight not in resolved:
            why = ("no weight column is known" if weight is None or weight not in frame.columns
                   else f"the weight column {weight!r} has no declared unit")
            violations.append(NO_WEIGHT.violation(f"AMT is in {resolved['amt']} and {why}",
                                                  column=parsed.source_names.get("amt", "AMT")))
        else:
            required.add(weight)
    from bayestwin.data.rules.context import RuleContext

    ctx = RuleContext(
        frame=frame, source_names=parsed.source_names, failed=parsed.failed, units=resolved,
        covariates=list(parsed.covariates), compartments=compartments,
        required_covariates=frozenset(required), static_covariates=frozenset(static_covariates),
        weight_column=weight if weight in frame.columns else None, extra=extra,
    )
    if not any(v.rule in ("S001", "S002") for v in violations):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # extreme values are rules' business
            violations.extend(run_rules(ctx))
    waived = [r for r in ignore_rules]
    if waived:
        violations = [v for v in violations if v.rule not in waived]
        notes.append(f"rules waived by the caller: {', '.join(sorted(waived))}")
    report = ValidationReport.from_violations(violations, source=raw.source)
    if not report.ok:
        return None, report

    if parsed.covariates:
        frame = carry_forward(frame, parsed.covariates)
    if per_weight and weight is not None:
        frame, resolved, note = _per_weight_to_amount(frame, resolved, weight)
        notes.append(note)
    for col in INTEGER_COLUMNS - {"cmt"}:
        frame[col] = frame[col].astype(np.int64)
    if pd.api.types.is_numeric_dtype(frame["cmt"]):
        frame["cmt"] = frame["cmt"].astype(np.int64)
    else:
        frame["cmt"] = frame["cmt"].astype(object)
    excluded = pd.DataFrame({"row": [r for r, _ in raw.set_aside], "patient": [None] * len(raw.set_aside),
                             "reason": [why for _, why in raw.set_aside]})
    accounting = RowAccounting(raw.rows_in, len(frame), excluded)
    table = EventTable(frame=frame, units=resolved, covariates=tuple(parsed.covariates),
                       accounting=accounting, report=report, source=raw.source,
                       source_names=parsed.source_names, notes=tuple(notes))
    return table, report


def _timestamps(parsed: ParsedColumns, assume_timezone: str | None) -> tuple[pd.DataFrame, list[Violation], str]:
    from bayestwin.data.ingest.timestamps import timestamps_to_hours

    frame = parsed.values
    result = timestamps_to_hours(frame["time"], frame["id"], column=parsed.source_names.get("time", "TIME"),
                                 assume_timezone=assume_timezone)
    frame = frame.copy()
    frame["time"] = result.hours.astype(float)
    parsed.failed["time"] = frame["time"].isna().to_numpy()
    note = "TIME converted from date-times to hours since each patient's first record (exact, via UTC)"
    return frame, list(result.violations), note


def _decode_rxode2(frame: pd.DataFrame, parsed: ParsedColumns) -> tuple[list[Violation], int]:
    violations: list[Violation] = []
    evid = frame["evid"]
    high = evid >= 100
    src = parsed.source_names["evid"]
    decoded = 0
    has_cmt = "cmt" in frame.columns and parsed.has("cmt")
    for label in frame.index[high.to_numpy()]:
        code = int(evid[label])
        kind, cmt, low = code // 10000, (code // 100) % 100, code % 100
        cmt_given = frame["cmt"][label] if has_cmt else np.nan
        problem = None
        if low != 1 or kind not in (0, 1) or cmt == 0:
            problem = f"EVID {code} is not a supported rxode2 dose code"
        elif kind == 1 and not (frame.get("rate", pd.Series(np.nan, index=frame.index))[label] > 0):
            problem = f"EVID {code} is an infusion but RATE is not > 0"
        elif pd.notna(cmt_given) and not isinstance(cmt_given, str) and cmt_given != 0 and int(cmt_given) != cmt:
            problem = f"EVID {code} doses into compartment {cmt} but CMT says {cmt_given}"
        if problem:
            violations.append(BAD_RXODE2.violation(problem, patient=frame["id"][label], row=label,
                                                   column=src, value=code))
            continue
        frame.loc[label, "evid"] = 1
        if "cmt" not in frame.columns:
            frame["cmt"] = 0
        frame.loc[label, "cmt"] = cmt
        decoded += 1
    return violations, decoded


def _fill_defaults(frame: pd.DataFrame, parsed: ParsedColumns) -> pd.DataFrame:
    frame = frame.copy()
    n = len(frame)
    for name, spec in CANONICAL.items():
        if name in ("id", "time", "evid", "mdv"):
            continue
        if name not in frame.columns:
            frame[name] = spec.default if spec.default is not None else np.nan
        elif spec.default is not None and pd.api.types.is_numeric_dtype(frame[name]):
            frame[name] = frame[name].fillna(spec.default)
    amt = frame["amt"].fillna(0.0)
    derived_evid = np.where((amt > 0) | ((frame["ss"] == 1) & (frame["rate"] > 0)), 1.0, 0.0)
    if "evid" not in frame.columns:
        frame["evid"] = derived_evid
        if "amt" in parsed.failed:  # EVID derived from an unreadable AMT is unknown, not 0
            parsed.failed["evid"] = parsed.failed["amt"].copy()
    else:
        frame["evid"] = frame["evid"].fillna(pd.Series(derived_evid, index=frame.index))
    derived_mdv = np.where(frame["evid"] != 0, 1.0, 0.0)
    if "mdv" not in frame.columns:
        frame["mdv"] = derived_mdv
    else:
        frame["mdv"] = frame["mdv"].fillna(pd.Series(derived_mdv, index=frame.index))
    if "time" not in frame.columns:
        frame["time"] = np.nan
    if "id" not in frame.columns:
        frame["id"] = np.arange(n)
    for col in ("time",):
        frame[col] = frame[col].astype(float)
    for col in ("amt", "rate", "dur", "ii", "addl", "ss", "cens", "evid", "mdv", "dvid"):
        bad = parsed.failed.get(col)
        if bad is not None and bad.any():
            fallback = {"evid": pd.Series(derived_evid, index=frame.index)}.get(col, CANONICAL[col].default)
            frame[col] = frame[col].fillna(fallback if fallback is not None else 0.0)
    covs = [c for c in parsed.covariates]
    return frame[list(COLUMN_ORDER) + covs]


def _per_weight_to_amount(
    frame: pd.DataFrame, units: dict[str, str], weight: str
) -> tuple[pd.DataFrame, dict[str, str], str]:
    from bayestwin.units import dose_per_weight_to_amount, format_unit, parse_unit, ureg

    per = parse_unit(units["amt"])
    # the amount unit is the numerator of the per-weight unit: mg/kg -> mg, ug/g -> ug
    numerator = [name for name, power in per._units.items() if power > 0]
    mass_unit = format_unit(ureg.Unit("*".join(numerator)))
    dosing = (frame["amt"] > 0) | (frame["rate"] > 0)
    out = frame.copy()
    for col in ("amt", "rate"):
        rows = dosing & (out[col] > 0)
        out.loc[rows, col] = np.asarray(dose_per_weight_to_amount(
            out.loc[rows, col].to_numpy(), units["amt"], out.loc[rows, weight].to_numpy(), units[weight],
            to=mass_unit))
    new_units = dict(units, amt=mass_unit)
    return out, new_units, f"AMT converted from {units['amt']} to {mass_unit} with {weight} at each dose"
