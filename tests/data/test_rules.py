"""One test per validation rule: where it fires (rule, severity, patient, row, column) and that it stops firing.

Every rule id of :func:`bayestwin.data.rule_table` has at least one case below. A case feeds a minimal
bad input, asserts *every* violation of that rule (and nothing else of that rule) at its exact place,
then feeds the minimally corrected input and asserts that the rule no longer fires and the data read
without errors. CSV text is used wherever possible, so rows are the line numbers a person sees in the
file (header = line 1); the bad line is marked with ``<-`` in a comment next to the text.

``COVERED_RULES`` is built from the case tables; :func:`test_every_rule_has_a_test` fails as soon as
a rule is added without a case here.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest

from bayestwin.data import check_events, read_nonmem, read_tidy, rule_table, validate
from bayestwin.data.ingest.timestamps import timestamps_to_hours
from bayestwin.data.report import ValidationReport
from bayestwin.exceptions import DataValidationError

UNITS = {"time": "h", "amt": "mg", "dv": "mg/L"}
UNITS_WT = {**UNITS, "WT": "kg"}
UNITS_DATETIME = {"time": "datetime", "amt": "mg", "dv": "mg/L"}

Loc = tuple[Any, Any, Any]  # (patient, row, column); None where the rule names none


# --- readers: (data, options) -> ValidationReport ---------------------------------------------------
# Reports are immutable and many cases share an input (e.g. the same valid file), so readers are cached to
# keep the file fast; a DataFrame input is not hashable by value and is always read afresh.
_CACHE: dict[tuple[str, str, str], ValidationReport] = {}


def cached(reader: Callable[[Any, Mapping[str, Any]], ValidationReport]) -> Callable[..., ValidationReport]:
    def run(data: Any, options: Mapping[str, Any]) -> ValidationReport:
        if isinstance(data, pd.DataFrame):
            return reader(data, options)
        key = (reader.__name__, repr(data), repr(sorted(options.items())))
        if key not in _CACHE:
            _CACHE[key] = reader(data, options)
        return _CACHE[key]

    run.__name__ = reader.__name__
    return run


@cached
def nonmem(data: Any, options: Mapping[str, Any]) -> ValidationReport:
    """`validate` (= read_nonmem without raising) on CSV text or a DataFrame; UNITS unless given."""
    source = io.StringIO(data) if isinstance(data, str) else data
    return validate(source, **{"units": UNITS, **options})


@cached
def model(data: str, options: Mapping[str, Any]) -> ValidationReport:
    """Read a valid table, then re-check it against a model with `check_events`."""
    table = read_nonmem(io.StringIO(data), units=UNITS)
    return check_events(table, **options)


@cached
def tidy(data: tuple[str, str], options: Mapping[str, Any]) -> ValidationReport:
    """`read_tidy` on (observations CSV, doses CSV); the report whether it raises or not."""
    observations, doses = data
    try:
        table = read_tidy(io.StringIO(observations), io.StringIO(doses), **{"units": UNITS, **options})
    except DataValidationError as err:
        return err.report
    return table.report


@cached
def stamps(data: str, options: Mapping[str, Any]) -> ValidationReport:
    """`timestamps_to_hours` on the ID/TIME columns of CSV text, indexed by file line number."""
    frame = pd.read_csv(io.StringIO(data), dtype=str, keep_default_na=False)
    frame.index = range(2, len(frame) + 2)
    return timestamps_to_hours(frame["TIME"], frame["ID"], column="TIME", **options).report()


@dataclass(frozen=True)
class Case:
    """A rule, a bad input with every place it must fire, and the corrected input."""

    rule: str
    severity: str
    bad: Any
    good: Any
    at: tuple[Loc, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    good_options: Mapping[str, Any] | None = None
    reader: Callable[[Any, Mapping[str, Any]], ValidationReport] = nonmem


def case(name: str, rule: str, severity: str, bad: Any, good: Any, *at: Loc, **kwargs: Any) -> Any:
    return pytest.param(Case(rule, severity, bad, good, tuple(at), **kwargs), id=f"{rule}-{name}")


# --- parse stage: structure (S), values (V), units (U) ------------------------------------------------
PARSE_CASES = [
    case("no-data-rows", "S001", "error",
         "ID,TIME,AMT,DV,EVID\n",  # header only
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, None)),
    case("no-time-column", "S002", "error",
         "ID,AMT,DV,EVID\n1,100,.,1\n1,.,2.5,0\n",  # TIME missing from the header
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "TIME")),
    case("dv-and-conc", "S003", "error",
         "ID,TIME,AMT,DV,CONC,EVID\n1,0,100,.,.,1\n1,1,.,2.5,2.5,0\n",  # CONC is an alias of DV
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "CONC")),
    case("ragged-row", "S004", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5\n1,2,.,2.0,0\n",  # line 3: 4 fields, header 5
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,2.0,0\n",
         (None, 3, None)),
    case("neither-amt-nor-dv", "S005", "error",
         "ID,TIME,EVID\n1,0,0\n1,1,0\n",  # no AMT and no DV
         "ID,TIME,DV,EVID\n1,0,2.5,0\n1,1,2.0,0\n",
         (None, None, "AMT/DV"),  # names the columns that are missing
         options={"units": {"time": "h"}}, good_options={"units": {"time": "h", "dv": "mg/L"}}),
    case("empty-column-name", "S006", "error",
         "ID,TIME,AMT,DV,EVID,\n1,0,100,.,1,\n1,1,.,2.5,0,\n",  # line 1: trailing comma = 6th, unnamed column
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, 1, "#6")),
    case("all-empty-column", "S007", "warning",
         "ID,TIME,AMT,DV,EVID,X\n1,0,100,.,1,.\n1,1,.,2.5,0,.\n",  # X is empty in every row
         "ID,TIME,AMT,DV,EVID,X\n1,0,100,.,1,a\n1,1,.,2.5,0,a\n",
         (None, None, "X")),
    case("tidy-column-not-there", "S008", "error",
         ("pid,t,conc\nA,1,2.5\n", "pid,t,dose\nA,0,100\n"),
         ("pid,t,conc\nA,1,2.5\n", "pid,t,dose\nA,0,100\n"),
         (None, None, "cnc"),
         options={"id": "pid", "time": "t", "dv": "cnc", "amt": "dose"},  # 'cnc' is a typo for 'conc'
         good_options={"id": "pid", "time": "t", "dv": "conc", "amt": "dose"}, reader=tidy),
    case("dv-is-text", "V001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,abc,0\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (1, 3, "DV")),
    case("dv-is-infinite", "V002", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,inf,0\n1,2,.,2.0,0\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,2.0,0\n",
         (1, 3, "DV")),
    case("evid-missing", "V003", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,.\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (1, 3, "EVID")),
    case("time-missing", "V003", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,.,.,2.5,0\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (1, 3, "TIME")),
    case("id-missing", "V003", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n.,1,.,2.5,0\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, 3, "ID")),
    case("evid-fraction", "V004", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0.5\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (1, 3, "EVID")),
    case("covariate-numbers-and-text", "V005", "warning",
         "ID,TIME,AMT,DV,EVID,SEX\n1,0,100,.,1,M\n1,1,.,2.5,0,1\n",  # SEX mixes M and 1
         "ID,TIME,AMT,DV,EVID,SEX\n1,0,100,.,1,M\n1,1,.,2.5,0,M\n",
         (None, None, "SEX")),
    case("dv-without-unit", "U001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "DV"),
         options={"units": {"time": "h", "amt": "mg"}}, good_options={}),
    case("dv-without-unit-source-spelling", "U001", "error",
         "ID,TIME,AMT,conc,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",  # DV is spelled 'conc' in this file
         "ID,TIME,AMT,conc,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "conc"),
         options={"units": {"time": "h", "amt": "mg"}}, good_options={}),
    case("unknown-unit", "U002", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "AMT"),
         options={"units": {"TIME": "h", "AMT": "mgg", "DV": "mg/L"}}, good_options={}),
    case("time-in-mg", "U003", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "TIME"),
         options={"units": {"TIME": "mg", "AMT": "mg", "DV": "mg/L"}}, good_options={}),
    case("amt-in-litres", "U003", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "AMT"),
         options={"units": {"TIME": "h", "AMT": "L", "DV": "mg/L"}}, good_options={}),
    case("weight-in-cm", "U003", "error",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,70\n",  # body weight cannot be in cm
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,70\n",
         (None, None, "WT"),
         options={"units": {**UNITS, "WT": "cm"}}, good_options={"units": UNITS_WT}),
    case("mg-per-kg-without-weight", "U006", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,5,.,1\n1,1,.,2.5,0\n",  # AMT in mg/kg, no weight column
         "ID,TIME,AMT,DV,EVID,WT\n1,0,5,.,1,70\n1,1,.,2.5,0,70\n",
         (None, None, "AMT"),
         options={"units": {**UNITS, "amt": "mg/kg"}}, good_options={"units": {**UNITS_WT, "amt": "mg/kg"}}),
    case("unit-for-absent-covariate", "U008", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",  # there is no CRCL column
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "CRCL"),
         options={"units": {**UNITS, "CRCL": "mL/min"}}, good_options={}),
    case("unit-for-absent-rate", "U008", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",  # there is no RATE column
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (None, None, "rate"),
         options={"units": {**UNITS, "rate": "mg/h"}}, good_options={}),
]

# --- time and events (T, E) ---------------------------------------------------------------------------
EVENT_CASES = [
    case("negative-time", "T001", "error",
         "ID,TIME,AMT,DV,EVID\n1,-1,100,.,1\n1,1,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (1, 2, "TIME")),
    case("time-backwards", "T002", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,2,.,2.5,0\n1,1,.,2.0,0\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,2.0,0\n",
         (1, 4, "TIME")),
    case("evid-5", "E001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,.,5\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,.,2\n",
         (1, 4, "EVID")),
    case("rxode2-code-read-as-nonmem", "E001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,101\n1,1,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,101\n1,1,.,2.5,0\n",
         (1, 2, "EVID"),
         good_options={"evid_coding": "rxode2"}),
    case("mdv-0-on-dose", "E002", "error",
         "ID,TIME,AMT,DV,EVID,MDV\n1,0,100,.,1,0\n1,1,.,2.5,0,0\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID,MDV\n1,0,100,.,1,1\n1,1,.,2.5,0,0\n",
         (1, 2, "MDV")),
    case("mdv-2", "E003", "error",
         "ID,TIME,AMT,DV,EVID,MDV\n1,0,100,.,1,1\n1,1,.,2.5,0,2\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID,MDV\n1,0,100,.,1,1\n1,1,.,2.5,0,0\n",
         (1, 3, "MDV")),
    case("observation-with-amount", "E004", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,50,2.5,0\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,0,2.5,0\n",
         (1, 3, "AMT")),
    case("other-with-amount", "E005", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,50,.,2\n1,2,.,2.5,0\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,.,2\n1,2,.,2.5,0\n",
         (1, 3, "AMT")),
    case("negative-cmt", "E007", "error",
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,1,1\n1,1,.,.,2,-2\n1,2,.,2.5,0,2\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,1,1\n1,1,.,.,2,2\n1,2,.,2.5,0,2\n",
         (1, 3, "CMT")),
    case("rxode2-unknown-code", "E008", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,199\n1,1,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,101\n1,1,.,2.5,0\n",
         (1, 2, "EVID"),
         options={"evid_coding": "rxode2"}),
    case("rxode2-infusion-without-rate", "E008", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,10101\n1,1,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,101\n1,1,.,2.5,0\n",
         (1, 2, "EVID"),
         options={"evid_coding": "rxode2"}),
    case("rxode2-cmt-disagrees", "E008", "error",
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,101,2\n1,1,.,2.5,0,2\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,201,2\n1,1,.,2.5,0,2\n",
         (1, 2, "EVID"),
         options={"evid_coding": "rxode2"}),
]

# --- doses (D) ----------------------------------------------------------------------------------------
DOSE_CASES = [
    case("negative-amount", "D001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,-5,.,1\n1,1,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID\n1,0,5,.,1\n1,1,.,2.5,0\n",
         (1, 2, "AMT")),
    case("dataframe-index-label", "D001", "error",
         pd.DataFrame({"ID": [1, 1], "TIME": [0.0, 1.0], "AMT": [-5.0, 0.0], "DV": [None, 2.5], "EVID": [1, 0]},
                      index=[10, 20]),  # label 10 <-
         pd.DataFrame({"ID": [1, 1], "TIME": [0.0, 1.0], "AMT": [5.0, 0.0], "DV": [None, 2.5], "EVID": [1, 0]},
                      index=[10, 20]),
         (1, 10, "AMT")),
    case("negative-rate", "D002", "error",
         "ID,TIME,AMT,RATE,DV,EVID\n1,0,100,-5,.,1\n1,1,.,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,RATE,DV,EVID\n1,0,100,-2,.,1\n1,1,.,.,2.5,0\n",
         (1, 2, "RATE")),
    case("infusion-longer-than-ii", "D003", "error",
         "ID,TIME,AMT,RATE,II,ADDL,DV,EVID\n1,0,100,5,12,2,.,1\n1,1,.,.,.,.,2.5,0\n",  # line 2: 20 h > 12 h <-
         "ID,TIME,AMT,RATE,II,ADDL,DV,EVID\n1,0,100,10,12,2,.,1\n1,1,.,.,.,.,2.5,0\n",
         (1, 2, "II")),
    case("addl-without-ii", "D004", "error",
         "ID,TIME,AMT,II,ADDL,DV,EVID\n1,0,100,0,2,.,1\n1,1,.,.,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,II,ADDL,DV,EVID\n1,0,100,12,2,.,1\n1,1,.,.,.,2.5,0\n",
         (1, 2, "II")),
    case("ss-without-ii", "D005", "error",
         "ID,TIME,AMT,II,SS,DV,EVID\n1,0,100,0,1,.,1\n1,1,.,.,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,II,SS,DV,EVID\n1,0,100,12,1,.,1\n1,1,.,.,.,2.5,0\n",
         (1, 2, "II")),
    case("ss-infusion-with-addl", "D006", "error",
         "ID,TIME,AMT,RATE,II,ADDL,SS,DV,EVID\n1,0,100,10,12,2,1,.,1\n1,1,.,.,.,.,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,RATE,II,ADDL,SS,DV,EVID\n1,0,100,10,12,0,1,.,1\n1,1,.,.,.,.,.,2.5,0\n",
         (1, 2, "ADDL")),
    case("ss-3", "D007", "error",
         "ID,TIME,AMT,II,SS,DV,EVID\n1,0,100,12,3,.,1\n1,1,.,.,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,II,SS,DV,EVID\n1,0,100,12,1,.,1\n1,1,.,.,.,2.5,0\n",
         (1, 2, "SS")),
    case("rate-times-dur-not-amt", "D008", "error",
         "ID,TIME,AMT,RATE,DUR,DV,EVID\n1,0,100,10,5,.,1\n1,12,.,.,.,2.5,0\n",  # line 2: 10 x 5 != 100 <-
         "ID,TIME,AMT,RATE,DUR,DV,EVID\n1,0,100,10,10,.,1\n1,12,.,.,.,2.5,0\n",
         (1, 2, "DUR")),
    case("negative-dur", "D009", "error",
         "ID,TIME,AMT,DUR,DV,EVID\n1,0,100,-1,.,1\n1,1,.,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,DUR,DV,EVID\n1,0,100,1,.,1\n1,2,.,.,2.5,0\n",
         (1, 2, "DUR")),
    case("negative-ii", "D010", "error",
         "ID,TIME,AMT,II,DV,EVID\n1,0,100,-12,.,1\n1,1,.,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,II,DV,EVID\n1,0,100,0,.,1\n1,1,.,.,2.5,0\n",
         (1, 2, "II")),
    case("negative-addl", "D011", "error",
         "ID,TIME,AMT,II,ADDL,DV,EVID\n1,0,100,12,-1,.,1\n1,1,.,.,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,II,ADDL,DV,EVID\n1,0,100,12,1,.,1\n1,1,.,.,.,2.5,0\n",
         (1, 2, "ADDL")),
    case("ii-on-observation", "D012", "warning",
         "ID,TIME,AMT,II,DV,EVID\n1,0,100,.,.,1\n1,1,.,12,2.5,0\n",  # line 3 <-
         "ID,TIME,AMT,II,DV,EVID\n1,0,100,12,.,1\n1,1,.,.,2.5,0\n",
         (1, 3, "II")),  # the column of the field that is set
]

# --- observations and censoring (O) -------------------------------------------------------------------
OBSERVATION_CASES = [
    case("missing-dv-mdv-0", "O001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,.,0\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,MDV\n1,0,100,.,1,1\n1,1,.,2.5,0,0\n1,2,.,.,0,1\n",
         (1, 4, "DV")),
    case("only-observation-missing", "O001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,.,0\n",  # line 3 <- (the patient's only sample)
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (1, 3, "DV")),
    case("cens-2", "O002", "error",
         "ID,TIME,AMT,DV,EVID,CENS\n1,0,100,.,1,.\n1,1,.,2.5,0,2\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID,CENS\n1,0,100,.,1,.\n1,1,.,2.5,0,0\n",
         (1, 3, "CENS")),
    case("blq-dv-above-lloq", "O003", "error",
         "ID,TIME,AMT,DV,EVID,CENS,LLOQ\n1,0,100,.,1,.,.\n1,1,.,2.5,0,0,0.1\n1,2,.,0.5,0,1,0.1\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,CENS,LLOQ\n1,0,100,.,1,.,.\n1,1,.,2.5,0,0,0.1\n1,2,.,0.1,0,1,0.1\n",
         (1, 4, "DV")),
    case("empty-censoring-interval", "O004", "error",
         "ID,TIME,AMT,DV,EVID,CENS,LIMIT\n1,0,100,.,1,.,.\n1,1,.,2.5,0,0,.\n1,2,.,0.1,0,1,0.2\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,CENS,LIMIT\n1,0,100,.,1,.,.\n1,1,.,2.5,0,0,.\n1,2,.,0.1,0,1,0\n",
         (1, 4, "LIMIT")),
    case("uncensored-below-lloq", "O005", "warning",
         "ID,TIME,AMT,DV,EVID,CENS,LLOQ\n1,0,100,.,1,.,.\n1,1,.,2.5,0,0,0.1\n1,2,.,0.05,0,0,0.1\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,CENS,LLOQ\n1,0,100,.,1,.,.\n1,1,.,2.5,0,0,0.1\n1,2,.,0.1,0,1,0.1\n",
         (1, 4, "DV")),
    case("cens-on-dose", "O006", "error",
         "ID,TIME,AMT,DV,EVID,CENS\n1,0,100,.,1,1\n1,1,.,2.5,0,0\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID,CENS\n1,0,100,.,1,0\n1,1,.,2.5,0,0\n",
         (1, 2, "CENS")),
    case("predose-not-zero", "O007", "warning",
         "ID,TIME,AMT,DV,EVID\n1,0,.,0.5,0\n1,0,100,.,1\n1,1,.,2.5,0\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID\n1,0,.,0,0\n1,0,100,.,1\n1,1,.,2.5,0\n",
         (1, 2, "DV")),
    case("negative-concentration", "O008", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,-0.5,0\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,0.5,0\n",
         (1, 4, "DV")),
    case("negative-effect-is-not-a-concentration", "O008", "error",
         # DVID 2 has its own unit (%): a negative effect is fine there, a negative DVID 1 concentration is not
         "ID,TIME,AMT,DV,EVID,DVID\n1,0,100,.,1,.\n1,1,.,-5,0,2\n1,2,.,-0.5,0,1\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,DVID\n1,0,100,.,1,.\n1,1,.,-5,0,2\n1,2,.,0.5,0,1\n",
         (1, 4, "DV"), options={"units": {"time": "h", "amt": "mg", "dv": "mg/L", "dv[2]": "%"}}),
    case("dvid-zero", "O009", "error",
         "ID,TIME,AMT,DV,EVID,DVID\n1,0,100,.,1,.\n1,1,.,2.5,0,0\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID,DVID\n1,0,100,.,1,.\n1,1,.,2.5,0,1\n",
         (1, 3, "DVID")),
    case("dvsd-not-positive", "O010", "error",
         "ID,TIME,DV,DVSD\n1,0,28,15\n2,0,8,0\n3,0,-3,-16\n",  # lines 3 and 4: SD 0 and -16 <-
         "ID,TIME,DV,DVSD\n1,0,28,15\n2,0,8,10\n3,0,-3,16\n",
         (2, 3, "DVSD"), (3, 4, "DVSD"), options={"units": {"time": "h", "dv": "dimensionless"}}),
]

# --- patients (P) -------------------------------------------------------------------------------------
PATIENT_CASES = [
    case("split-blocks", "P001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n2,0,100,.,1\n2,1,.,2.5,0\n1,2,.,2.0,0\n",  # line 6 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,2.0,0\n2,0,100,.,1\n2,1,.,2.5,0\n",
         (1, 6, "ID")),
    case("doses-only", "P002", "warning",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n2,0,100,.,1\n",  # patient 2 starts at line 4 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n2,0,100,.,1\n2,1,.,2.5,0\n",
         (2, 4, "ID")),
    case("observations-only", "P003", "warning",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n2,1,.,2.5,0\n",  # patient 2 starts at line 4 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n2,0,100,.,1\n2,1,.,2.5,0\n",
         (2, 4, "ID")),
    case("duplicate-row", "P004", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,1,.,2.5,0\n",  # line 4 repeats line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,2.5,0\n",
         (1, 4, "ID")),
    case("conflicting-observations", "P005", "warning",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,1,.,2.7,0\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,2.7,0\n",
         (1, 4, "DV")),
]

# --- covariates (C) and magnitudes for declared units (U, table stage) ----------------------------------
COVARIATE_CASES = [
    case("required-covariate-missing", "C001", "error",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,.\n2,0,100,.,1,.\n2,1,.,2.5,0,80\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,.\n2,0,100,.,1,80\n2,1,.,2.5,0,80\n",
         (2, 4, "WT"),
         options={"units": UNITS_WT, "required_covariates": ["WT"]}),
    case("required-covariate-not-a-column", "C001", "error",
         "ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",  # no WT column
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,70\n",
         (None, None, "WT"),
         options={"required_covariates": ["WT"]},
         good_options={"units": UNITS_WT, "required_covariates": ["WT"]}),
    case("covariate-never-given", "C002", "warning",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,.\n2,0,100,.,1,.\n2,1,.,2.5,0,.\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,.\n2,0,100,.,1,80\n2,1,.,2.5,0,.\n",
         (2, 4, "WT"),
         options={"units": UNITS_WT}),
    case("static-covariate-changes", "C003", "error",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,72\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,70\n",
         (1, 3, "WT"),
         options={"units": UNITS_WT, "static_covariates": ["WT"]}),
    case("weight-in-grams-declared-kg", "U004", "error",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70000\n1,1,.,2.5,0,.\n",  # line 2 <-
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,.\n",
         (1, 2, "WT"),
         options={"units": UNITS_WT}),
    case("ug-per-l-declared-mg-per-l", "U005", "error",
         # WT is given once, on the dose row (carried forward); the peak DV is on line 3 <-
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2500,0,.\n1,2,.,1800,0,.\n",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2500,0,.\n1,2,.,1800,0,.\n",
         (1, 3, "DV"),
         options={"units": UNITS_WT}, good_options={"units": {**UNITS_WT, "dv": "ug/L"}}),
    case("ug-per-l-declared-mg-per-l-weight-every-row", "U005", "error",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2500,0,70\n1,2,.,1800,0,70\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2500,0,70\n1,2,.,1800,0,70\n",
         (1, 3, "DV"),
         options={"units": UNITS_WT}, good_options={"units": {**UNITS_WT, "dv": "ug/L"}}),
    case("weight-without-unit", "U007", "warning",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,.\n",  # WT has no unit
         "ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,.\n",
         (None, None, "WT"),
         good_options={"units": UNITS_WT}),
]

# --- model stage (E006 against a model's compartments) ---------------------------------------------------
MODEL_CASES = [
    case("read-with-compartments", "E006", "error",
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,1,1\n1,1,.,2.5,0,3\n",  # line 3: CMT 3 <-
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,1,1\n1,1,.,2.5,0,2\n",
         (1, 3, "CMT"),
         options={"compartments": {1: "depot", 2: "central"}}),
    case("check-events", "E006", "error",
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,1,1\n1,1,.,2.5,0,3\n",  # line 3: CMT 3 <-
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,1,1\n1,1,.,2.5,0,2\n",
         (1, 3, "CMT"),
         options={"compartments": {1: "depot", 2: "central"}}, reader=model),
    case("compartment-by-name", "E006", "error",
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,1,depot\n1,1,.,2.5,0,centrl\n",  # line 3: a typo <-
         "ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,1,depot\n1,1,.,2.5,0,central\n",
         (1, 3, "CMT"),
         options={"compartments": {1: "depot", 2: "central"}}),
    # O011: the SD of an observation of a known_sd output is missing; never filled from an earlier row
    case("known-sd-missing", "O011", "error",
         "ID,TIME,AMT,DV,EVID,DVSD\n1,0,100,.,1,.\n1,1,.,2.5,0,0.3\n1,2,.,2.0,0,.\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,DVSD\n1,0,100,.,1,.\n1,1,.,2.5,0,0.3\n1,2,.,2.0,0,0.2\n",
         (1, 4, "DVSD"),
         options={"known_sd_outputs": (1,)}, reader=model),
    case("known-sd-of-the-second-output-missing", "O011", "error",
         "ID,TIME,AMT,DV,EVID,DVID,DVSD\n1,0,100,.,1,.,.\n1,1,.,2.5,0,1,.\n1,2,.,40,0,2,.\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID,DVID,DVSD\n1,0,100,.,1,.,.\n1,1,.,2.5,0,1,.\n1,2,.,40,0,2,5\n",
         (1, 4, "DVSD"),
         options={"known_sd_outputs": (2,)}, reader=model),
]

# --- date-times in TIME (Z) ----------------------------------------------------------------------------
TIMESTAMP_CASES = [
    case("not-a-time", "Z001", "error",
         "ID,TIME,AMT,DV,EVID\n1,2024-03-01T08:00:00+01:00,100,.,1\n1,not a time,.,2.5,0\n",  # line 3 <-
         "ID,TIME,AMT,DV,EVID\n1,2024-03-01T08:00:00+01:00,100,.,1\n1,2024-03-01T09:00:00+01:00,.,2.5,0\n",
         (1, 3, "TIME"),
         options={"units": UNITS_DATETIME}),
    case("naive-without-zone", "Z002", "error",
         "ID,TIME,AMT,DV,EVID\n1,2024-03-01 08:00,100,.,1\n1,2024-03-01 09:00,.,2.5,0\n",  # line 2 (first) <-
         "ID,TIME,AMT,DV,EVID\n1,2024-03-01 08:00,100,.,1\n1,2024-03-01 09:00,.,2.5,0\n",
         (1, 2, "TIME"),
         options={"units": UNITS_DATETIME},
         good_options={"units": UNITS_DATETIME, "assume_timezone": "Europe/Paris"}),
    case("aware-and-naive", "Z003", "error",
         "ID,TIME,AMT,DV,EVID\n1,2024-03-01T08:00:00+01:00,100,.,1\n1,2024-03-01T09:00:00+01:00,.,2.5,0\n"
         "1,2024-03-01 10:00,.,2.0,0\n",  # line 4 <-
         "ID,TIME,AMT,DV,EVID\n1,2024-03-01T08:00:00+01:00,100,.,1\n1,2024-03-01T09:00:00+01:00,.,2.5,0\n"
         "1,2024-03-01T10:00:00+01:00,.,2.0,0\n",
         (1, 4, "TIME"),
         options={"units": UNITS_DATETIME, "assume_timezone": "Europe/Paris"}),
    case("spring-forward-gap", "Z004", "error",
         "ID,TIME,AMT,DV,EVID\n1,2024-03-31 01:00,100,.,1\n1,2024-03-31 02:30,.,2.5,0\n"  # line 3 <-
         "1,2024-03-31 04:00,.,2.0,0\n",
         "ID,TIME,AMT,DV,EVID\n1,2024-03-31 01:00,100,.,1\n1,2024-03-31 03:30,.,2.5,0\n"
         "1,2024-03-31 04:00,.,2.0,0\n",
         (1, 3, "TIME"),
         options={"units": UNITS_DATETIME, "assume_timezone": "Europe/Paris"}),
    case("missing-timestamp", "Z005", "error",
         "ID,TIME,AMT,DV,EVID\n1,2024-03-01T08:00:00+01:00,100,.,1\n1,.,.,2.5,0\n"  # line 3 <-
         "1,2024-03-01T10:00:00+01:00,.,2.0,0\n",
         "ID,TIME,AMT,DV,EVID\n1,2024-03-01T08:00:00+01:00,100,.,1\n1,2024-03-01T09:00:00+01:00,.,2.5,0\n"
         "1,2024-03-01T10:00:00+01:00,.,2.0,0\n",
         (1, 3, "TIME"),
         options={"units": UNITS_DATETIME}),
    case("patient-without-reference", "Z006", "error",
         "ID,TIME\nA,2024-03-01T08:00:00Z\nA,2024-03-01T09:00:00Z\nB,2024-03-01T10:00:00Z\n",  # B: line 4 <-
         "ID,TIME\nA,2024-03-01T08:00:00Z\nA,2024-03-01T09:00:00Z\nB,2024-03-01T10:00:00Z\n",
         ("B", 4, "TIME"),
         options={"reference": {"A": "2024-03-01T07:00:00Z"}},
         good_options={"reference": {"A": "2024-03-01T07:00:00Z", "B": "2024-03-01T07:00:00Z"}},
         reader=stamps),
    case("reference-for-unknown-patient", "Z006", "error",
         "ID,TIME\nA,2024-03-01T08:00:00Z\n",
         "ID,TIME\nA,2024-03-01T08:00:00Z\n",
         ("C", None, None),  # a reference given for patient C, who has no rows
         options={"reference": {"A": "2024-03-01T07:00:00Z", "C": "2024-03-01T07:00:00Z"}},
         good_options={"reference": {"A": "2024-03-01T07:00:00Z"}},
         reader=stamps),
]

# --- the same rules through other readers, and edge cases that once crashed or misplaced a violation ----
READER_CASES = [
    case("tidy-doses-row-and-source-column", "D001", "error",
         ("pid,t,conc\nA,1,2.5\n", "pid,t,dose\nA,0,100\nA,12,-5\n"),  # doses line 3 <-
         ("pid,t,conc\nA,1,2.5\n", "pid,t,dose\nA,0,100\nA,12,5\n"),
         ("A", "doses:3", "dose"),
         options={"id": "pid", "time": "t", "dv": "conc", "amt": "dose"}, reader=tidy),
    case("tidy-observations-row-and-source-column", "O008", "error",
         ("pid,t,conc\nA,1,2.5\nA,2,-1\n", "pid,t,dose\nA,0,100\n"),  # observations line 3 <-
         ("pid,t,conc\nA,1,2.5\nA,2,1\n", "pid,t,dose\nA,0,100\n"),
         ("A", "observations:3", "conc"),
         options={"id": "pid", "time": "t", "dv": "conc", "amt": "dose"}, reader=tidy),
    case("row-numbers-count-blank-and-comment-lines", "O008", "error",
         "\nID,TIME,AMT,DV,EVID\n1,0,100,.,1\n\n# a comment\n1,1,.,-2.5,0\n",  # line 6 <-
         "\nID,TIME,AMT,DV,EVID\n1,0,100,.,1\n\n# a comment\n1,1,.,2.5,0\n",
         (1, 6, "DV")),
    case("row-numbers-count-quoted-line-breaks", "O008", "error",
         'ID,TIME,AMT,DV,EVID,NOTE\n1,0,100,.,1,"two\nlines"\n1,1,.,-2.5,0,x\n',  # line 4 <-
         'ID,TIME,AMT,DV,EVID,NOTE\n1,0,100,.,1,"two\nlines"\n1,1,.,2.5,0,x\n',
         (1, 4, "DV")),
    case("semicolon-separated-decimal-comma", "V001", "error",
         "ID;TIME;AMT;DV;EVID\n1;0;100;.;1\n1;1;.;2,5;0\n",  # line 3 <-
         "ID;TIME;AMT;DV;EVID\n1;0;100;.;1\n1;1;.;2.5;0\n",
         (1, 3, "DV")),
    case("byte-order-mark-in-stream", "S002", "error",
         "PAT,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",  # line 1: PAT is not an alias of ID <-
         "\ufeffID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",  # ID behind a UTF-8 byte-order mark
         (None, None, "ID")),
    case("weight-column-without-unit-for-mg-per-kg", "U006", "error",
         "ID,TIME,AMT,DV,EVID,WT\n1,0,5,.,1,70\n1,1,.,2.5,0,.\n",  # WT has no unit: cannot convert mg/kg
         "ID,TIME,AMT,DV,EVID,WT\n1,0,5,.,1,70\n1,1,.,2.5,0,.\n",
         (None, None, "AMT"),
         options={"units": {**UNITS, "amt": "mg/kg"}}, good_options={"units": {**UNITS_WT, "amt": "mg/kg"}}),
]

ALL_CASES = (PARSE_CASES + EVENT_CASES + DOSE_CASES + OBSERVATION_CASES + PATIENT_CASES + COVARIATE_CASES
             + MODEL_CASES + TIMESTAMP_CASES + READER_CASES)

#: Every rule id that a case above checks.
COVERED_RULES: frozenset[str] = frozenset(p.values[0].rule for p in ALL_CASES)

SEVERITY: dict[str, str] = dict(zip(rule_table()["id"], rule_table()["severity"], strict=True))


def _clean(value: Any) -> Any:
    if value is None:
        return None
    try:
        return None if pd.isna(value) else value
    except (TypeError, ValueError):
        return value


def places(report: ValidationReport, rule: str) -> list[tuple[Any, ...]]:
    hits = report.violations[report.violations["rule"] == rule]
    return [(sev, _clean(p), _clean(r), _clean(c))
            for sev, p, r, c in zip(hits["severity"], hits["patient"], hits["row"], hits["column"], strict=True)]


@pytest.mark.parametrize("c", ALL_CASES)
def test_rule_fires_at_its_place_and_not_after_the_fix(c: Case) -> None:
    assert SEVERITY[c.rule] == c.severity, "the case's severity disagrees with the rule table"
    bad = c.reader(c.bad, c.options)
    expected = [(c.severity, *loc) for loc in c.at]
    assert places(bad, c.rule) == expected, bad.format()

    good = c.reader(c.good, c.options if c.good_options is None else c.good_options)
    assert c.rule not in good.rules(), good.format()
    assert good.ok, good.format()


# --- one problem, one violation: no follow-on reports of a cell or unit that already failed ---------------
@pytest.mark.parametrize(
    ("csv", "options", "rules"),
    [
        pytest.param("ID,TIME,AMT,DV\n1,0,abc,.\n1,1,.,2.5\n",  # line 2: unreadable AMT, no EVID column
                     {}, ["V001"], id="V001-unreadable-amt-is-not-also-a-missing-observation"),
        pytest.param("ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n1,2,.,.,5\n",  # line 4: EVID 5
                     {"evid_coding": "rxode2"}, ["E001", "E008"], id="E001-invalid-evid-with-rxode2-coding"),
        pytest.param("ID,TIME,AMT,conc,EVID\n1,0,100,.,1\n1,1,.,2.5,0\n",  # a unit for DV, but unknown
                     {"units": {"time": "h", "amt": "mg", "conc": "mgg"}}, ["U002"],
                     id="U002-unknown-unit-is-not-also-a-missing-unit"),
        pytest.param("ID,TIME,AMT,DV,EVID,WT\n1,0,100,.,1,70\n1,1,.,2.5,0,70\n",  # a unit for WT, but wrong
                     {"units": {**UNITS, "WT": "cm"}}, ["U003"],
                     id="U003-wrong-kind-of-unit-is-not-also-a-missing-unit"),
        pytest.param("ID,TIME,DV,DVSD\n1,0,28,15\n2,0,8,inf\n",  # line 3: an infinite SD is unreadable (V002)
                     {"units": {"time": "h", "dv": "dimensionless"}}, ["V002"],
                     id="V002-infinite-dvsd-is-not-also-a-bad-sd"),
    ],
)
def test_one_problem_one_violation(csv: str, options: dict[str, Any], rules: list[str]) -> None:
    """Each problem is reported once, by a rule that names it (one of `rules`), and nothing else fires."""
    report = nonmem(csv, options)
    assert len(report.violations) == 1, report.format()
    assert report.violations["rule"].iloc[0] in rules, report.format()


# --- valid data raise nothing (no false positives) -------------------------------------------------------
@pytest.mark.parametrize(
    ("csv", "options"),
    [
        pytest.param("ID,TIME,AMT,DV,EVID\n1,0,100,.,101\n1,1,.,2.5,0\n1,12,100,.,101\n1,13,.,2.9,0\n",
                     {"evid_coding": "rxode2"}, id="E008-two-rxode2-doses-without-cmt-column"),
        pytest.param("ID,TIME,AMT,RATE,II,SS,DV,EVID\n1,0,0,10,0,1,.,1\n1,1,.,.,.,.,2.5,0\n",
                     {}, id="D001-D005-steady-state-constant-infusion"),
        pytest.param("ID,TIME,AMT,RATE,DV,EVID\n1,0,100,-2,.,1\n1,1,.,.,2.5,0\n",
                     {}, id="D002-modelled-duration"),
        pytest.param("ID,TIME,AMT,DV,EVID\n1,0,100,.,1\n1,5,.,2.5,0\n1,0,100,.,4\n1,1,.,2.9,0\n",
                     {}, id="T002-clock-restarts-at-reset-and-dose"),
    ],
)
def test_valid_data_raise_nothing(csv: str, options: dict[str, Any]) -> None:
    report = nonmem(csv, options)
    assert len(report.violations) == 0, report.format()


# --- meta: the suite covers the rule table ----------------------------------------------------------------
def test_every_rule_has_a_test() -> None:
    table = set(rule_table()["id"])
    assert table == COVERED_RULES, {
        "rules without a test": sorted(table - COVERED_RULES),
        "tested ids that are not rules": sorted(COVERED_RULES - table),
    }


def test_case_ids_start_with_their_rule() -> None:
    for p in ALL_CASES:
        assert p.id.startswith(p.values[0].rule + "-"), p.id


# --- DataValidationError lists every problem of a file, each with its row and column --------------------
MANY_PROBLEMS = (
    "ID,TIME,AMT,DV,EVID,MDV\n"   # line 1
    "1,0,100,.,1,1\n"             # line 2  fine
    "1,1,abc,.,1,1\n"             # line 3  V001 AMT is not a number
    "1,2,.,-3,0,0\n"              # line 4  O008 negative concentration
    "1,3,-5,.,1,1\n"              # line 5  D001 negative dose
    "1,4,.,2.5,0,7\n"             # line 6  E003 MDV 7
    "1,3.5,.,2.0,0,0\n"           # line 7  T002 time goes back
    "1,5,.,2.0,0,0\n"             # line 8  fine
    "1,5,.,2.0,0,0\n"             # line 9  P004 repeats line 8
    "1,6,.,1.5,0,0\n"             # line 10 fine
)


def test_data_validation_error_lists_every_problem_with_row_and_column() -> None:
    with pytest.raises(DataValidationError) as info:
        read_nonmem(io.StringIO(MANY_PROBLEMS), units=UNITS)
    err = info.value
    found = {(r, row, col) for r, row, col in zip(err.violations["rule"], err.violations["row"],
                                                   err.violations["column"], strict=True)}
    expected = {("V001", 3, "AMT"), ("O008", 4, "DV"), ("D001", 5, "AMT"), ("E003", 6, "MDV"),
                ("T002", 7, "TIME"), ("P004", 9, "ID")}
    assert found == expected
    assert len({rule for rule, _, _ in found}) >= 5
    lines = str(err).splitlines()
    assert lines[0].startswith(f"{len(expected)} errors")
    for rule, row, column in expected:
        assert any(f"[{rule}]" in ln and f"row {row}," in ln and f"column {column} " in ln for ln in lines), (
            rule, str(err))
