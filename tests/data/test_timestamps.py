"""Tests for bayestwin.data.ingest.timestamps: ISO 8601 date-times -> hours since a reference."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayestwin.data.ingest.timestamps import (
    NS_PER_HOUR,
    TimestampResult,
    hours_to_timestamps,
    nanoseconds_to_hours,
    timestamps_to_hours,
)
from bayestwin.data.report import ValidationReport
from bayestwin.data.rules.base import RULES

INDEX = [10, 11, 12]


def frame(values: list[object], patients: list[object], index: list[int] | None = None) -> pd.DataFrame:
    index = index if index is not None else INDEX[: len(values)] + list(range(13, 10 + len(values)))
    return pd.DataFrame({"ID": patients, "DT": values}, index=index)


def convert(df: pd.DataFrame, **kwargs: object) -> TimestampResult:
    return timestamps_to_hours(df["DT"], df["ID"], column="DT", **kwargs)  # type: ignore[arg-type]


def where(result: TimestampResult) -> list[tuple[str, object, object, str | None]]:
    return [(v.rule, v.patient, v.row, v.column) for v in result.violations]


# --- the rule table ---------------------------------------------------------------------------------
def test_rules_are_declared_as_parse_stage_errors() -> None:
    for rule_id in ("Z001", "Z002", "Z003", "Z004", "Z005", "Z006"):
        rule = RULES[rule_id]
        assert rule.severity == "error"
        assert rule.stage == "parse"
        assert rule.title and rule.fix


# --- each rule fires at the exact row label and column -------------------------------------------------
def test_z001_unparseable_at_its_row() -> None:
    df = frame(["2024-03-01T08:00Z", "not a time", "2024-03-01T09:00Z"], ["A", "A", "A"])
    result = convert(df)
    assert where(result) == [("Z001", "A", 11, "DT")]
    assert result.violations[0].value == "not a time"
    assert result.hours.tolist()[0::2] == [0.0, 1.0]
    assert np.isnan(result.hours.loc[11])
    assert "2024-03-01T08:30:00+01:00" in result.violations[0].fix


def test_z001_every_bad_row_is_reported() -> None:
    df = frame(["13:00", "2024-13-01T08:00Z", "2024-02-30T08:00Z", "2024-03-01T25:00Z", "3000-01-01T00:00Z"],
               ["A"] * 5, index=[10, 11, 12, 13, 14])
    result = convert(df)
    assert where(result) == [("Z001", "A", row, "DT") for row in (10, 11, 12, 13, 14)]
    assert result.hours.isna().all()


def test_z001_date_only_is_rejected_with_clock_hint() -> None:
    df = frame(["2024-03-01T08:00Z", "2024-03-01", "2024-03-02T08:00Z"], ["A", "A", "A"])
    result = convert(df)
    assert where(result) == [("Z001", "A", 11, "DT")]
    assert "clock time" in result.violations[0].fix
    assert result.hours.loc[12] == 24.0


def test_z002_once_per_patient_on_first_naive_row() -> None:
    df = frame(["2024-03-01 08:00", "2024-03-01 09:00", "2024-03-01 10:00"], ["A", "A", "B"])
    result = convert(df)
    assert where(result) == [("Z002", "A", 10, "DT"), ("Z002", "B", 12, "DT")]
    assert "rows 10, 11" in result.violations[0].message
    assert 'assume_timezone="Europe/Paris"' in result.violations[0].fix
    assert result.hours.isna().all()


def test_z003_patient_mixes_aware_and_naive() -> None:
    df = frame(["2024-03-01T08:00:00+01:00", "2024-03-01T09:00:00+01:00", "2024-03-01 10:00"], ["A"] * 3)
    for tz in (None, "Europe/Paris"):
        result = convert(df, assume_timezone=tz)
        assert where(result) == [("Z003", "A", 12, "DT")], tz
        assert result.hours.tolist()[:2] == [0.0, 1.0]
        assert np.isnan(result.hours.loc[12])


def test_z003_file_mixes_between_patients() -> None:
    df = frame(["2024-03-01T08:00Z", "2024-03-01T09:00Z", "2024-03-01 10:00"], ["A", "A", "B"])
    result = convert(df, assume_timezone="UTC")
    assert where(result) == [("Z003", "B", 12, "DT")]
    assert "file" in result.violations[0].message


def test_z004_nonexistent_and_ambiguous_paris() -> None:
    df = frame(["2024-03-31 01:30", "2024-03-31 02:30", "2024-10-27 02:30"], ["A"] * 3)
    result = convert(df, assume_timezone="Europe/Paris")
    assert where(result) == [("Z004", "A", 11, "DT"), ("Z004", "A", 12, "DT")]
    gap, twice = result.violations
    assert "does not exist" in gap.message
    assert "ambiguous" in twice.message
    assert "2024-10-27T02:30:00+02:00" in twice.fix and "2024-10-27T02:30:00+01:00" in twice.fix
    assert result.hours.loc[10] == 0.0
    assert result.hours.loc[[11, 12]].isna().all()


def test_z004_also_for_zone_named_in_the_text() -> None:
    df = frame(["2024-10-27T01:00:00[Europe/Paris]", "2024-10-27T02:30:00[Europe/Paris]"], ["A", "A"])
    assert where(convert(df)) == [("Z004", "A", 11, "DT")]


def test_z005_every_missing_row() -> None:
    df = frame(["2024-03-01T08:00Z", "", ".", None, np.nan, "  NA ", "2024-03-01T10:00Z"], ["A"] * 7,
               index=[10, 11, 12, 13, 14, 15, 16])
    result = convert(df)
    assert where(result) == [("Z005", "A", row, "DT") for row in (11, 12, 13, 14, 15)]
    assert result.hours.loc[[10, 16]].tolist() == [0.0, 2.0]


def test_z006_reference_for_absent_patient_and_patient_without_reference() -> None:
    df = frame(["2024-03-01T08:00Z", "2024-03-01T09:00Z", "2024-03-01T10:00Z"], ["A", "B", "B"])
    result = convert(df, reference={"A": "2024-03-01T07:00Z", "Z": "2024-03-01T00:00Z"})
    assert sorted(where(result), key=str) == sorted(
        [("Z006", "Z", None, None), ("Z006", "B", 11, "DT")], key=str
    )
    assert result.hours.loc[10] == 1.0
    assert result.hours.loc[[11, 12]].isna().all()
    assert list(result.reference.index) == ["A"]


def test_reference_problems_use_the_same_zone_rules() -> None:
    df = frame(["2024-03-01T08:00Z", "2024-03-01T09:00Z", "2024-03-01T10:00Z"], ["A", "B", "C"])
    result = convert(df, reference={"A": "2024-03-01 07:00", "B": "yesterday", "C": None})
    assert {(v.rule, v.patient) for v in result.violations} == {("Z002", "A"), ("Z001", "B"), ("Z005", "C")}
    assert result.hours.isna().all()
    result = convert(df, reference={"A": "2024-10-27 02:30", "B": "2024-03-01 09:00", "C": "2024-03-01 09:00"},
                     assume_timezone="Europe/Paris")
    assert where(result) == [("Z004", "A", None, None)]
    assert result.hours.tolist()[1:] == [1.0, 2.0]


def test_nan_only_where_a_violation_covers_the_row() -> None:
    df = frame(["2024-03-01T08:00Z", "bad", "2024-03-01 08:00", "2024-03-01 09:00", "", "2024-03-02T08:00Z"],
               ["A", "A", "B", "B", "C", "C"], index=[10, 11, 12, 13, 14, 15])
    result = convert(df)
    row_level = {v.row for v in result.violations if v.rule in {"Z001", "Z004", "Z005"}}
    patient_level = {v.patient for v in result.violations if v.rule in {"Z002", "Z003", "Z006"}}
    for row in result.hours.index[result.hours.isna()]:
        assert row in row_level or df.loc[row, "ID"] in patient_level
    assert result.hours.loc[[10, 15]].tolist() == [0.0, 0.0]


# --- time zones and daylight saving ------------------------------------------------------------------
def test_patient_crossing_spring_forward_new_york() -> None:
    df = frame(["2024-03-10 00:00", "2024-03-10 04:00"], [1, 1])
    result = convert(df, assume_timezone="America/New_York")
    assert result.ok
    assert result.hours.tolist() == [0.0, 3.0]
    assert result.reference.loc[1] == pd.Timestamp("2024-03-10T05:00Z")


def test_mixed_offsets_in_one_patient_are_valid() -> None:
    df = frame(["2024-03-30T12:00:00+01:00", "2024-03-31T12:00:00+02:00", "2024-03-31T12:30:00Z"], ["A"] * 3)
    result = convert(df)
    assert result.ok
    assert result.hours.tolist() == [0.0, 23.0, 25.5]
    assert result.reference.loc["A"] == pd.Timestamp("2024-03-30T11:00Z")


def test_accepted_forms() -> None:
    values = [
        "2024-03-01T08:00:00Z",
        "2024-03-01T09:00:00+01:00",
        "2024-03-01 09:00+0100",
        "2024-03-01T09:00+01",
        "2024-03-01t08:00z",
        "2024-03-01 09:00 +01:00",
        "2024-03-01T09:00:00+01:00[Europe/Paris]",
        "2024-03-01T09:00[Europe/Paris]",
        "2024-03-01 09:00 Europe/Paris",
        "2024-03-01 08:00 UTC",
        "2024-03-01T08:00:00.000000001Z",
    ]
    df = frame(values, ["A"] * len(values), index=list(range(10, 10 + len(values))))
    result = convert(df)
    assert result.ok, result.violations
    assert result.hours.tolist()[:-1] == [0.0] * (len(values) - 1)
    assert result.hours.iloc[-1] == 1 / NS_PER_HOUR


def test_offset_must_agree_with_named_zone() -> None:
    df = frame(["2024-07-01T08:30:00+01:00[Europe/Paris]", "2024-07-01T08:30:00 CEST"], ["A", "A"])
    result = convert(df)
    assert where(result) == [("Z001", "A", 10, "DT"), ("Z001", "A", 11, "DT")]
    assert "+02:00" in result.violations[0].message
    assert "unknown time zone" in result.violations[1].message


def test_timestamp_objects_and_datetime_columns() -> None:
    objs = pd.Series([
        pd.Timestamp("2024-03-01T08:00", tz="Europe/Paris"),
        datetime(2024, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=2))),
        "2024-03-01T08:00Z",
    ], index=INDEX, dtype=object)
    result = timestamps_to_hours(objs, pd.Series([1, 1, 1], index=INDEX), column="DT")
    assert result.ok
    assert result.hours.tolist() == [0.0, 0.0, 1.0]

    aware = pd.Series(pd.to_datetime(["2024-03-01T08:00Z", None, "2024-03-01T09:00Z"], utc=True), index=INDEX)
    result = timestamps_to_hours(aware, pd.Series([1, 1, 1], index=INDEX), column="DT")
    assert [(v.rule, v.row) for v in result.violations] == [("Z005", 11)]
    assert result.hours.loc[[10, 12]].tolist() == [0.0, 1.0]

    naive = pd.Series(pd.to_datetime(["2024-03-10 00:00", "2024-03-10 04:00"]), index=[10, 11])
    result = timestamps_to_hours(naive, pd.Series([1, 1], index=[10, 11]), column="DT",
                                 assume_timezone="America/New_York")
    assert result.hours.tolist() == [0.0, 3.0]


def test_negative_hours_with_reference_mapping() -> None:
    df = frame(["2024-03-01T06:30:00+01:00", "2024-03-01T08:00:00+01:00"], ["A", "A"])
    result = convert(df, reference={"A": pd.Timestamp("2024-03-01T07:00Z")})
    assert result.ok
    assert result.hours.tolist() == [-1.5, 0.0]
    by_series = convert(df, reference=pd.Series(["2024-03-01T07:00Z"], index=["A"]))
    assert by_series.hours.tolist() == [-1.5, 0.0]


def test_reference_series_is_utc_aware_and_indexed_by_patient() -> None:
    df = frame(["2024-03-01T09:00:00+01:00", "2024-03-01T12:00:00+01:00", "2024-03-01T08:00:00Z"], [7, 7, 3])
    result = convert(df)
    assert str(result.reference.dtype) == "datetime64[ns, UTC]"
    assert result.reference.to_dict() == {7: pd.Timestamp("2024-03-01T08:00Z"), 3: pd.Timestamp("2024-03-01T08:00Z")}


def test_exact_hours() -> None:
    assert nanoseconds_to_hours(np.array([30 * 60 * 10**9])).tolist() == [0.5]
    assert nanoseconds_to_hours([10**9]).tolist() == [1 / 3600]
    big = 2**60 + 1
    assert nanoseconds_to_hours([big, -big]).tolist() == [big / NS_PER_HOUR, -big / NS_PER_HOUR]
    df = frame(["2024-03-01T08:00:00Z", "2024-03-01T08:00:01Z", "2024-03-01T08:30:00Z"], ["A"] * 3)
    assert convert(df).hours.tolist() == [0.0, 1 / 3600, 0.5]


def test_span_over_292_years_does_not_overflow() -> None:
    df = frame(["1700-01-01T00:00Z", "2250-01-01T00:00Z"], ["A", "A"])
    exact = (pd.Timestamp("2250-01-01", tz="UTC").value - pd.Timestamp("1700-01-01", tz="UTC").value)
    assert convert(df).hours.tolist() == [0.0, exact / NS_PER_HOUR]


def test_arguments_are_checked_and_inputs_untouched() -> None:
    df = frame(["2024-03-01T08:00Z", "2024-03-01T09:00Z"], ["A", "A"])
    before = df.copy()
    with pytest.raises(ValueError, match="IANA"):
        convert(df, assume_timezone="Paris")
    with pytest.raises(ValueError, match="same index"):
        timestamps_to_hours(df["DT"], df["ID"].reset_index(drop=True), column="DT")
    with pytest.raises(ValueError, match="reference"):
        convert(df, reference="last")
    convert(df, assume_timezone="Europe/Paris")
    pd.testing.assert_frame_equal(df, before)


def test_report_integration() -> None:
    df = frame(["2024-03-01T08:00Z", "bad", ""], ["A", "A", "A"])
    result = convert(df)
    report = result.report("cgm.csv")
    assert isinstance(report, ValidationReport)
    assert report.rules() == ["Z001", "Z005"]
    assert "row 11, column DT" in report.format()
    assert not result.ok


# --- inverse and round trip ------------------------------------------------------------------------------
def test_round_trip_in_utc() -> None:
    values = pd.Series(["2024-03-30T12:00:00+01:00", "2024-03-31T12:00:00.123456789+02:00",
                        "2024-03-01T08:00Z", "2024-02-28T23:59:59-05:00"], index=[10, 11, 12, 13])
    patients = pd.Series(["A", "A", "B", "B"], index=values.index)
    result = timestamps_to_hours(values, patients, column="DT")
    back = hours_to_timestamps(result.hours, result.reference, patients=patients)
    expected = pd.Series(pd.to_datetime(values, format="ISO8601", utc=True).dt.as_unit("ns"), index=values.index)
    pd.testing.assert_series_equal(back, expected, check_names=False)


def test_hours_to_timestamps_nan_and_unknown_patient() -> None:
    ref = pd.Series([pd.Timestamp("2024-03-01T07:00Z")], index=["A"])
    out = hours_to_timestamps(pd.Series([1.0, np.nan, 2.0]), ref, patients=pd.Series(["A", "A", "Q"]))
    assert out.iloc[0] == pd.Timestamp("2024-03-01T08:00Z")
    assert out.iloc[1:].isna().all()
    rounded = hours_to_timestamps(pd.Series([1 / 3600 + 1e-13]), ref, patients=pd.Series(["A"]), round_to="s")
    assert rounded.iloc[0] == pd.Timestamp("2024-03-01T07:00:01Z")
    with pytest.raises(ValueError, match="tz-aware"):
        hours_to_timestamps(pd.Series([1.0]), pd.Series([pd.Timestamp("2024-03-01")], index=["A"]),
                            patients=pd.Series(["A"]))


# --- properties --------------------------------------------------------------------------------------
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.tuples(
    st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2250, 1, 1), timezones=offsets),
    st.integers(min_value=0, max_value=999),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(instants, st.sampled_from(["A", "B", "C"])), min_size=1, max_size=25))
def test_property_hours_are_exact_nanosecond_differences(rows: list) -> None:
    stamps = [pd.Timestamp(dt) + pd.Timedelta(ns, unit="ns") for (dt, ns, _), _ in rows]
    cells = [ts.isoformat() if as_text else ts for ts, ((_, _, as_text), _) in zip(stamps, rows, strict=True)]
    index = list(range(100, 100 + len(rows)))
    patients = pd.Series([pid for _, pid in rows], index=index)
    result = timestamps_to_hours(pd.Series(cells, index=index, dtype=object), patients, column="DT")
    assert result.violations == []
    assert not result.hours.isna().any()
    utc_ns = [ts.value for ts in stamps]
    first = {pid: min(ns for ns, p in zip(utc_ns, patients, strict=True) if p == pid) for pid in set(patients)}
    expected = [(ns - first[pid]) / NS_PER_HOUR for ns, pid in zip(utc_ns, patients, strict=True)]
    assert result.hours.tolist() == expected
    assert {pid: ts.value for pid, ts in result.reference.items()} == first


@settings(deadline=None)
@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_property_nanoseconds_to_hours_is_correctly_rounded(ns: int) -> None:
    assert nanoseconds_to_hours(np.array([ns], dtype=np.int64)).tolist() == [ns / NS_PER_HOUR]


# --- scale -------------------------------------------------------------------------------------------------
def test_100k_rows_with_offsets_are_exact() -> None:
    stamps = pd.date_range("2024-01-01", periods=100_000, freq="5min", tz="Europe/Paris")  # crosses DST twice
    # Same text as ts.isoformat() ("2024-01-01T00:00:00+01:00"), built without a Python loop.
    wall = stamps.tz_localize(None)
    offset = np.where(wall - stamps.tz_convert(None) == pd.Timedelta(hours=2), "+02:00", "+01:00")
    values = pd.Series(np.char.add(np.datetime_as_string(wall.to_numpy(), unit="s"), offset))
    patients = pd.Series(np.repeat(np.arange(100), 1000))
    result = timestamps_to_hours(values, patients, column="DT")
    assert result.ok
    ns = stamps.as_unit("ns").asi8.reshape(100, 1000)
    assert np.array_equal(result.hours.to_numpy(), ((ns - ns[:, :1]) / NS_PER_HOUR).ravel())


# --- edge cases ------------------------------------------------------------------------------------------
def test_empty_input() -> None:
    result = timestamps_to_hours(pd.Series([], dtype="str"), pd.Series([], dtype="str"), column="DT")
    assert result.ok
    assert result.hours.dtype == np.float64 and len(result.hours) == 0
    assert len(result.reference) == 0


def test_missing_patient_id_rows_are_parsed_but_not_converted() -> None:
    df = frame(["2024-03-01T08:00Z", "bad", "2024-03-01T09:00Z"], ["A", None, None])
    result = convert(df)
    assert [(v.rule, v.patient, v.row) for v in result.violations] == [("Z001", None, 11)]
    assert result.hours.loc[10] == 0.0
    assert result.hours.loc[[11, 12]].isna().all()


def test_impossible_offsets_and_out_of_range_objects() -> None:
    df = frame(["2024-03-01T08:00 +25:00", "2024-03-01T08:00+24:00", "2024-03-01T08:00Z"], ["A"] * 3)
    assert where(convert(df)) == [("Z001", "A", 10, "DT"), ("Z001", "A", 11, "DT")]
    objs = pd.Series([datetime(1500, 1, 1, 8, 0), pd.Timestamp("2024-03-01T08:00Z"), 3.5], index=INDEX,
                     dtype=object)
    result = timestamps_to_hours(objs, pd.Series(["A"] * 3, index=INDEX), column="DT")
    assert [(v.rule, v.row) for v in result.violations] == [("Z001", 10), ("Z001", 12)]
    assert result.hours.loc[11] == 0.0


def test_z003_flags_aware_rows_when_they_are_the_minority() -> None:
    df = frame(["2024-03-01 08:00", "2024-03-01 09:00", "2024-03-01T10:00Z"], ["A", "A", "B"])
    result = convert(df, assume_timezone="Europe/Paris")
    assert where(result) == [("Z003", "B", 12, "DT")]
    assert result.hours.loc[[10, 11]].tolist() == [0.0, 1.0]
