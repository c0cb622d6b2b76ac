"""Property tests for the event-table readers, writer and ADDL expansion (bayestwin.data).

Four properties, each over generated data:

1. NONMEM CSV round-trip is lossless (values bit for bit) and writing is deterministic.
2. ADDL/II expansion preserves the number of doses, the total dose and the dose times, leaves the
   observations alone, and time after dose is >= 0 (0 at dose rows).
3. Any DataFrame gives either a valid EventTable or a DataValidationError (never another exception,
   never a silent NaN or a silently changed value); ``validate`` never raises for bad data.
4. Reading a DataFrame and reading the same data as CSV text give equal tables.

``@example`` rows pin inputs that once broke a property (found by these strategies or by probing
their edges), so a regression fails at once instead of after a long search and shrink.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bayestwin.data import (
    EventTable,
    ValidationReport,
    expand_addl,
    read_nonmem,
    time_after_dose,
    validate,
    write_nonmem,
)
from bayestwin.data.columns import MISSING_TOKENS
from bayestwin.exceptions import DataValidationError

UNITS = {"time": "h", "amt": "mg", "dv": "mg/L", "WT": "kg"}
NO_NAN_COLUMNS = ("time", "evid", "amt", "rate", "dur", "ii", "addl", "ss", "mdv", "cens")
COVARIATES = ("WT", "SEX")

# Values in [0, 1) whose shortest decimal text has many digits (0.30000000000000004, 0.3333333333333333, ...).
MANY_DIGITS = (0.1 + 0.2, 1 / 3, 2 / 3, 1 / 7, math.pi / 4, math.e / 4, 0.7 + 0.1, 1e-9, 0.1, 1 - 2**-52)


def numbers(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats in [lo, hi]: arbitrary ones, whole numbers, and ones with many significant digits."""
    return st.one_of(
        st.floats(lo, hi, allow_nan=False, allow_infinity=False),
        st.integers(math.ceil(lo), math.floor(hi)).map(float),
        st.sampled_from(MANY_DIGITS).map(lambda v: lo + v * (hi - lo)),
    )


INT_IDS = st.integers(-1000, 10**12)
STR_IDS = st.one_of(
    st.builds(lambda p, n: f"{p}-{n:03d}", st.sampled_from(["P", "PT", "S"]), st.integers(0, 999)),
    st.sampled_from(["007", "A", "patient one", "x1"]),
)
ID_LISTS = st.one_of(
    st.lists(INT_IDS, min_size=1, max_size=4, unique=True),
    st.lists(STR_IDS, min_size=1, max_size=4, unique=True),
    st.lists(st.one_of(INT_IDS, STR_IDS), min_size=1, max_size=4, unique_by=str),
)
# -0.0 is a valid time and concentration (it is not < 0); a lossless writer must keep its sign.
START_TIMES = st.one_of(st.just(0.0), st.just(-0.0), numbers(0.0, 24.0))
TIME_STEPS = st.one_of(st.just(0.0), numbers(0.0, 48.0), st.sampled_from([0.1 + 0.2, 1 / 3, 1e-9, 1e3 / 7]))
DV_VALUES = st.one_of(numbers(0.0, 20.0), st.just(-0.0))
TEXT_CODES = st.sampled_from(["m", "f", "a,b", 'say "hi"', "two\nlines", "é", "x;y\tz"])


@st.composite
def valid_frames(draw: st.DrawFn, *, addl_max: int = 3, force_addl: bool = False) -> pd.DataFrame:
    """A valid NONMEM-style DataFrame: contiguous patients, times >= 0 non-decreasing, consistent doses."""
    use = draw(st.fixed_dictionaries({
        "evid": st.booleans(), "mdv": st.booleans(), "cmt": st.sampled_from(["none", "int", "text", "mixed"]),
        "rate": st.booleans(), "addl": st.just(True) if force_addl else st.booleans(), "ss": st.booleans(),
        "wt": st.booleans(), "sex": st.booleans(), "obs_amt_missing": st.booleans(),
    }))
    missing = draw(st.sampled_from([np.nan, None, "."]))
    records: list[dict[str, Any]] = []
    for pid in draw(ID_LISTS):
        t = draw(START_TIMES)
        wt, sex = draw(numbers(0.5, 200.0)), draw(TEXT_CODES)
        for _ in range(draw(st.integers(1, 6))):
            t += draw(TIME_STEPS)
            rec: dict[str, Any] = {"ID": pid, "TIME": t}
            if draw(st.booleans()):  # a dose
                amt = draw(numbers(100.0, 1000.0))
                addl = draw(st.integers(0, addl_max)) if use["addl"] else 0
                infusion = use["rate"] and draw(st.booleans())
                # a steady-state dose needs II > 0 (D005); a steady-state infusion cannot have ADDL (D006)
                ss = 1 if use["ss"] and not (infusion and addl) and draw(st.booleans()) else 0
                ii = draw(st.floats(0.5, 48.0, exclude_min=True) | numbers(1.0, 48.0)) if addl or ss else 0.0
                rate = 0.0
                if infusion:
                    if addl or ss:  # a repeated infusion must end before the next dose: length <= II (D003)
                        rate = amt / (ii * draw(st.floats(0.01, 0.99)))
                        if amt / rate > ii:  # rounding: nudge the rate up so the length is within II
                            rate = float(np.nextafter(rate, math.inf))
                    else:
                        rate = draw(numbers(1.0, 500.0))
                rec.update(AMT=amt, EVID=1, MDV=1, DV=missing, RATE=rate, II=ii, ADDL=addl, SS=ss, CMT=1)
                if draw(st.integers(0, 9)) == 0:  # DV on a dose row is allowed (MDV 1); it is kept
                    rec["DV"] = draw(DV_VALUES)
                if use["cmt"] in ("text", "mixed"):
                    rec["CMT"] = "depot"
            else:  # an observation
                mdv = 1 if use["mdv"] and draw(st.integers(0, 3)) == 0 else 0
                dv: Any = draw(DV_VALUES)
                if mdv and draw(st.booleans()):
                    dv = missing
                rec.update(AMT=missing if use["obs_amt_missing"] else 0.0, EVID=0, MDV=mdv, DV=dv,
                           RATE=0.0, II=0.0, ADDL=0, SS=0, CMT=2)
                if use["cmt"] == "text":
                    rec["CMT"] = "central"
            if draw(st.integers(0, 3)) == 0:
                wt = draw(numbers(0.5, 200.0))  # a time-varying weight
            rec["WT"] = wt if draw(st.booleans()) else missing
            rec["SEX"] = sex if draw(st.booleans()) else missing
            records.append(rec)
    columns = ["ID", "TIME", "AMT", "DV"]
    columns += [c for c, on in (("EVID", use["evid"]), ("MDV", use["mdv"]), ("CMT", use["cmt"] != "none"),
                                ("RATE", use["rate"]), ("II", use["addl"] or use["ss"]), ("ADDL", use["addl"]),
                                ("SS", use["ss"]), ("WT", use["wt"]), ("SEX", use["sex"])) if on]
    # An exact repeat of a record is an error (P004), compared as the table holds it: covariates carried forward.
    rows, seen, last = [], set(), {}
    for rec in records:
        row = {c: rec[c] for c in columns}
        filled = dict(row)
        for cov in COVARIATES:
            if cov in row:
                if not (row[cov] is None or row[cov] == "." or (isinstance(row[cov], float) and math.isnan(row[cov]))):
                    last[rec["ID"], cov] = row[cov]
                filled[cov] = last.get((rec["ID"], cov))
        key = repr([(c, filled[c]) for c in columns])
        if key not in seen:
            seen.add(key)
            rows.append(row)
    names = {
        "ID": draw(st.sampled_from(["ID", "id", "SUBJECT"])), "TIME": draw(st.sampled_from(["TIME", "time"])),
        "AMT": draw(st.sampled_from(["AMT", "amt"])), "DV": draw(st.sampled_from(["DV", "CONC", "dv"])),
    }
    columns = draw(st.permutations(columns))
    return pd.DataFrame.from_records(rows, columns=columns).rename(columns=names)


def units_for(frame: pd.DataFrame) -> dict[str, str]:
    """The units of UNITS for the columns `frame` has (a unit for an absent column is an error, U008)."""
    have = {str(c).strip().upper() for c in frame.columns}
    return {k: v for k, v in UNITS.items() if k != "WT" or "WT" in have}


def float_bits(frame: pd.DataFrame) -> dict[str, list[int | None]]:
    """Bit patterns of the float columns (None for NaN), to compare values bit for bit (-0.0 != 0.0)."""
    out: dict[str, list[int | None]] = {}
    for col in frame.columns:
        if frame[col].dtype == np.float64:
            values = frame[col].to_numpy()
            bits = values.view(np.uint64)
            out[col] = [None if math.isnan(v) else int(b) for v, b in zip(values, bits, strict=True)]
    return out


# --- 1. NONMEM CSV round-trip ---------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(frame=valid_frames())
# Found by this test: -0.0 (a valid time and DV) is written as "0"; two records differing only in the sign of a
# zero then read back as duplicates (P004); a subnormal DV overflows the implied-volume check (RuntimeWarning).
@example(frame=pd.DataFrame({"ID": [1, 1], "TIME": [-0.0, 1.0], "AMT": [100.0, 0.0], "DV": [np.nan, -0.0]}))
@example(frame=pd.DataFrame({"ID": [0, 0], "TIME": [0.0, 0.0], "AMT": [0.0, 0.0], "DV": [0.0, -0.0]}))
@example(frame=pd.DataFrame({"ID": [1, 1], "TIME": [0.0, 1.0], "AMT": [100.0, 0.0], "DV": [np.nan, 5e-324]}))
def test_nonmem_round_trip_is_lossless(frame: pd.DataFrame) -> None:
    table = read_nonmem(frame, units=units_for(frame))
    text = write_nonmem(table)
    back = read_nonmem(io.StringIO(text), units=dict(table.units))

    assert back.equals(table), f"round trip changed the table:\n{text}"
    left, right = back.frame.reset_index(drop=True), table.frame.reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_exact=True)
    assert float_bits(left) == float_bits(right), f"a float changed its bits (e.g. -0.0 written as 0):\n{text}"
    assert write_nonmem(back) == text, "writing the read-back table gives different text"


# --- 2. ADDL/II expansion -------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(frame=valid_frames(addl_max=20, force_addl=True))
def test_expand_addl_preserves_doses_and_observations(frame: pd.DataFrame) -> None:
    table = read_nonmem(frame, units=units_for(frame))
    expanded = expand_addl(table)
    f, g = table.frame, expanded.frame
    is_dose, g_is_dose = f["evid"].isin((1, 4)), g["evid"].isin((1, 4))

    for pid in table.patients:
        doses = f[(f["id"] == pid) & is_dose]
        out = g[(g["id"] == pid) & g_is_dose]
        assert len(out) == int((doses["addl"] + 1).sum())
        # Each recorded dose stands for ADDL + 1 equal doses. fsum is exactly rounded, so the left side is the
        # exact total of the expanded amounts, rounded once; on the right each AMT * (ADDL + 1) is rounded once
        # more (relative error <= 2**-53 per record), so the sides agree to ~1e-16 relative but need not be equal.
        expected_total = math.fsum(a * (n + 1) for a, n in zip(doses["amt"], doses["addl"], strict=True))
        assert math.isclose(math.fsum(out["amt"]), expected_total, rel_tol=1e-12, abs_tol=0.0)
        expected_times = sorted(t + k * ii for t, ii, n in zip(doses["time"], doses["ii"], doses["addl"], strict=True)
                                for k in range(int(n) + 1))
        assert sorted(out["time"]) == expected_times  # exactly t + k * II, not an accumulated sum

    assert (g["addl"] == 0).all(), "an expanded table still has ADDL > 0 (its doses would count twice)"
    implied = g[g.index.duplicated(keep="first")]  # implied rows keep their parent's source row, after it
    parents = f.loc[implied.index]
    assert (implied["evid"] == 1).all() and (implied["ii"] == 0).all() and (implied["ss"] == 0).all()
    for col in ("id", "amt", "rate", "dur", "cmt"):
        assert implied[col].tolist() == parents[col].tolist(), col
    assert len(g) == len(f) + int(f.loc[is_dose, "addl"].sum())
    canonical = [c for c in f.columns if c not in table.covariates]
    assert g[canonical].dtypes.equals(f[canonical].dtypes), "expansion changed the dtype of an event column"

    # the observations: same values, same order, same source rows (a text covariate may widen from str to object)
    pd.testing.assert_frame_equal(g[g["evid"] == 0], f[f["evid"] == 0], check_exact=True, check_dtype=False)

    tad = time_after_dose(table)
    assert tad.index.equals(g.index)
    values = tad.to_numpy()
    assert (values[~np.isnan(values)] >= 0).all()
    assert (values[g_is_dose.to_numpy()] == 0).all()
    before_first_dose = ~g_is_dose.groupby(g["id"], sort=False).cummax().to_numpy()
    assert np.array_equal(np.isnan(values), before_first_dose), "time after dose is NaN exactly before dose 1"


# --- 3. any DataFrame: a valid table or a DataValidationError ------------------------------------------------
CANON_NAMES = ["ID", "TIME", "AMT", "DV", "EVID", "MDV", "CMT", "II", "ADDL", "SS", "RATE", "CENS", "WT"]
JUNK_NAMES = ["", " ", "C", "foo", "id", "Time", "conc", "DUR", "LLOQ", "LIMIT", "SEX", "wt", "#", "X,Y"]
EXTREME = st.sampled_from([10**20, -(10**20), 2**63, 2**63 - 1, 2**53 + 1, 1e308, -1e308, 1e20, 1e19, 5e-324,
                           10**400, -0.0, "1e400", "100000000000000000000", "9223372036854775808"])
MESSY_CELLS = st.one_of(
    st.none(),
    st.just(np.nan),
    st.integers(-3, 5),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    EXTREME,
    st.sampled_from([".", "", " ", "abc", "1,5", " 3 ", "NA", "-1", "1e308", "-1e308", "inf", "-inf", "nan",
                     "#", "C", "0x10", "1_000", "2.5", "-0", "1e-320", "P-007", True, False]),
)
JUNK_UNITS = st.sampled_from(["", "furlong", "mg/kg", "kg", "h", "1/0", "mg**", "%", "mg/L", "day"])


@st.composite
def messy_frames(draw: st.DrawFn) -> pd.DataFrame:
    """A random frame of messy cells, or a valid frame with a few cells/columns corrupted."""
    if draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(CANON_NAMES + JUNK_NAMES), min_size=0, max_size=8))
        if draw(st.booleans()):
            names = ["ID", "TIME", *names]
        n_rows = draw(st.integers(0, 6))
        rows = [[draw(MESSY_CELLS) for _ in names] for _ in range(n_rows)]
        frame = pd.DataFrame(rows, columns=names) if names else pd.DataFrame(index=range(n_rows))
    else:
        frame = draw(valid_frames()).astype(object)
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(frame) - 1))
            j = draw(st.integers(0, len(frame.columns) - 1))
            frame.iat[i, j] = draw(MESSY_CELLS)
        if draw(st.integers(0, 4)) == 0:
            frame[draw(st.sampled_from(CANON_NAMES + JUNK_NAMES))] = [draw(MESSY_CELLS) for _ in range(len(frame))]
        if draw(st.integers(0, 4)) == 0:
            frame = frame.drop(columns=draw(st.sampled_from(list(frame.columns))))
    index = draw(st.sampled_from(["default", "reversed", "strings", "duplicated", "multi"]))
    n = len(frame)
    if index == "reversed":
        frame.index = pd.Index(range(n + 10, 10, -1)[:n])
    elif index == "strings":
        frame.index = pd.Index([f"r{i}" for i in range(n)], dtype=object)
    elif index == "duplicated" and n:
        frame.index = pd.Index([0] * n)
    elif index == "multi" and n:  # e.g. after set_index(["STUDY", "ROW"])
        frame.index = pd.MultiIndex.from_arrays([["s"] * n, range(n)], names=["STUDY", "ROW"])
    return frame


def make_units(frame: pd.DataFrame, mode: str, junk: tuple[int, str]) -> dict[str, str]:
    """Units for `frame`: those of its columns ("matching"), all of UNITS ("fixed"), or one unit spoilt."""
    if mode == "fixed":
        return dict(UNITS)
    have = {str(c).strip().upper() for c in frame.columns}
    units = {"time": "h"}
    units.update({k: v for k, v in UNITS.items() if k.upper() in have or (k == "dv" and "CONC" in have)})
    if mode == "junk":
        keys = sorted(units)
        units[keys[junk[0] % len(keys)]] = junk[1]
    return units


def number_of(cell: Any) -> float | None:
    """What a source cell says as a number (None when missing or not a finite number): the test's own oracle."""
    if cell is None or (isinstance(cell, str) and cell.strip() in MISSING_TOKENS):
        return None
    try:
        value = float(cell.strip() if isinstance(cell, str) else cell)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def is_missing_cell(cell: Any) -> bool:
    """Whether a source cell means 'missing' (None, NaN, or a missing token such as '.')."""
    if cell is None:
        return True
    if isinstance(cell, float | np.floating):
        return math.isnan(cell)
    return isinstance(cell, str) and cell.strip() in MISSING_TOKENS


def source_cell(frame: pd.DataFrame, label: Any, column: str) -> Any:
    """The source cell behind a table value: rows by index label, or by position where labels cannot name a row
    (repeated labels; a MultiIndex, whose tuples are not usable as single labels)."""
    by_label = frame.index.is_unique and (frame.index.nlevels == 1 or isinstance(label, tuple))
    pos = frame.index.get_loc(label) if by_label else label
    return frame.iat[pos, [str(c) for c in frame.columns].index(column)]


def check_table(table: EventTable, frame: pd.DataFrame) -> None:
    acc = table.accounting
    assert acc is not None
    assert acc.rows_in == len(frame)
    assert acc.rows_in == acc.rows_used + len(acc.excluded)
    assert acc.rows_used == len(table.frame)
    f = table.frame
    for col in NO_NAN_COLUMNS:
        assert not f[col].isna().any(), f"NaN in {col}"
    assert not (f["dv"].isna() & (f["mdv"] == 0) & (f["evid"] == 0)).any(), "an observation in the fit has no DV"

    # no silent change: a number in the source is the number in the table
    converted = {"amt", "rate"} if any("AMT converted" in n for n in table.notes) else set()
    for canon, name in table.source_names.items():
        if canon in ("id", *converted):
            continue
        for label in f.index:
            expected = number_of(source_cell(frame, label, name))
            if expected is not None:
                got = f.at[label, canon]
                assert got == expected, f"{canon} at row {label!r} is {got!r} but the source says {expected!r}"

    # no silent NaN: a covariate is missing only where the source is, and that is reported (C002)
    warned = {(w.patient, w.column) for w in table.report.warnings.itertuples() if w.rule == "C002"}
    for cov in table.covariates:
        for label in f.index[f[cov].isna().to_numpy()]:
            assert is_missing_cell(source_cell(frame, label, cov)), f"{cov} at row {label!r} lost its value"
            pid = f.at[label, "id"]
            if f.at[label, "evid"] in (0, 1, 4):
                assert (pid, cov) in warned, f"{cov} missing for patient {pid!r} without a C002 warning"


def check_error_report(report: ValidationReport) -> None:
    errors = report.errors
    assert not report.ok and len(errors) >= 1
    for rec in errors.itertuples():
        assert isinstance(rec.rule, str) and rec.rule
        assert isinstance(rec.message, str) and rec.message.strip()
        assert isinstance(rec.fix, str) and rec.fix.strip()
        if rec.rule == "S001":
            continue  # "the source has no data rows": there is no row or column to point at
        assert not (pd.isna(rec.row) and pd.isna(rec.column)), f"{rec.rule} error names no row or column"


@settings(max_examples=130, deadline=None)
@given(frame=messy_frames(), mode=st.sampled_from(["matching", "matching", "fixed", "junk"]),
       junk=st.tuples(st.integers(0, 3), JUNK_UNITS))
# Found by this test: every patient id missing (T002 crashes).
@example(frame=pd.DataFrame({"ID": [None], "TIME": [0.0], "AMT": [0.0], "DV": [0.0], "EVID": [0]}),
         mode="matching", junk=(0, ""))
# Found by this test: no AMT and no DV column (the error names no column).
@example(frame=pd.DataFrame({"ID": [0], "TIME": [0.0]}), mode="matching", junk=(0, ""))
# Found probing index types (messy_frames now draws them): an index that is a MultiIndex.
@example(frame=pd.DataFrame({"ID": [1], "TIME": [0.0], "AMT": [100.0]},
                            index=pd.MultiIndex.from_arrays([["s"], [0]], names=["STUDY", "ROW"])),
         mode="matching", junk=(0, ""))
# Found by this test and by probing the EXTREME values: an id beyond int64; ADDL / CMT beyond int64 (silently
# wrapped); an int beyond the float range; overflow in the dose rules (RuntimeWarning, an error under pytest).
@example(frame=pd.DataFrame({"ID": [10**20], "TIME": [0.0], "AMT": [100.0]}), mode="matching", junk=(0, ""))
@example(frame=pd.DataFrame({"ID": [1], "TIME": [0.0], "AMT": [100.0], "II": [12.0], "ADDL": [1e19]}),
         mode="matching", junk=(0, ""))
@example(frame=pd.DataFrame({"ID": [1], "TIME": [0.0], "AMT": [100.0], "CMT": [1e19]}), mode="matching",
         junk=(0, ""))
@example(frame=pd.DataFrame({"ID": [1], "TIME": [0.0], "AMT": [10**400]}), mode="matching", junk=(0, ""))
@example(frame=pd.DataFrame({"ID": [1], "TIME": [0.0], "AMT": [1e308], "RATE": [1e-308], "II": [1.0],
                             "ADDL": [1]}), mode="matching", junk=(0, ""))
def test_any_frame_reads_or_raises_data_validation_error(frame: pd.DataFrame, mode: str, junk: tuple[int, str]) -> None:
    units = make_units(frame, mode, junk)
    try:
        table = read_nonmem(frame, units=units)
    except DataValidationError as err:
        check_error_report(err.report)
        report = err.report
    else:
        check_table(table, frame)
        report = table.report
    again = validate(frame, units=units)  # must not raise for bad data
    assert isinstance(again, ValidationReport)
    assert again.ok == report.ok
    pd.testing.assert_frame_equal(again.violations, report.violations)


# --- 4. DataFrame and CSV text read alike ---------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(frame=valid_frames(), sep=st.sampled_from([",", ";", "\t"]))
# Found by this test: a subnormal DV overflows the implied-volume check (RuntimeWarning).
@example(frame=pd.DataFrame({"ID": [1, 1], "TIME": [0.0, 1.0], "AMT": [100.0, 0.0], "DV": [np.nan, 5e-324]}), sep=",")
def test_dataframe_and_csv_text_read_alike(frame: pd.DataFrame, sep: str) -> None:
    units = units_for(frame)
    from_frame = read_nonmem(frame, units=units)
    text = frame.to_csv(index=False, sep=sep)
    from_text = read_nonmem(io.StringIO(text), units=units)
    assert from_text.equals(from_frame), text
    pd.testing.assert_frame_equal(from_text.frame.reset_index(drop=True), from_frame.frame.reset_index(drop=True),
                                  check_exact=True)
