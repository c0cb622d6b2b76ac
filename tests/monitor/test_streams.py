"""Stream ingestion: canonical frame, units, flags with reasons, duplicates, late arrivals, append."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayestwin.exceptions import InputError, UnitError
from bayestwin.monitor.loinc import LOINC, SIGNALS, accepted_units, signal_for_loinc, to_canonical
from bayestwin.monitor.quality import RULES, STATUSES
from bayestwin.monitor.recordings import heart_rate_from_rr, load_nsrdb_heart_rate, load_nsrdb_rr, rr_artefacts
from bayestwin.monitor.rules import threshold_alerts
from bayestwin.monitor.streams import STREAM_COLUMNS, append_observations, flag_report, read_streams, usable
from bayestwin.units import convert

T0 = "2024-01-01T00:00:00Z"


def _raw(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient", "timestamp", "signal", "value", "unit", "device", "received"])


MIXED = _raw([
    ("p1", 0.0, "heart_rate", 70.0, "/min", "watch", 0.1),
    ("p1", 1.0, "heart_rate", 72.0, "/min", "watch", 5.0),   # late: 2.0 arrived at 2.1
    ("p1", 2.0, "heart_rate", 74.0, "/min", "watch", 2.1),
    ("p1", 2.0, "heart_rate", 74.0, "/min", "watch", 2.6),   # duplicate of the row above
    ("p1", 3.0, "heart_rate", 400.0, "/min", "watch", 3.1),  # implausible
    ("p1", 0.5, "temperature", 98.6, "[degF]", "thermo", 0.5),
    ("p1", 0.5, "weight", 176.0, "[lb_av]", "scale", 0.5),
    ("p1", 0.7, "spo2", 97.0, "mm[Hg]", "watch", 0.7),       # unit error
    ("p1", 0.8, "sbp", np.nan, "mm[Hg]", "cuff", 0.8),       # missing
    ("p1", 0.9, "lactate", 2.0, "mmol/L", "lab", 0.9),       # unknown signal
    ("p2", 5.0, "glucose", 5.5, "mmol/L", "meter", 5.0),
])  # fmt: skip


def test_canonical_frame_columns_dtypes_and_order() -> None:
    f = read_streams(MIXED)
    assert tuple(f.columns) == STREAM_COLUMNS
    assert str(f["timestamp"].dtype) == "datetime64[ns, UTC]"
    for col in ("time_h", "value", "received_h"):
        assert f[col].dtype == np.float64
    assert f["late"].dtype == bool
    keys = f[["patient", "signal", "time_h"]].to_records(index=False).tolist()
    assert keys == sorted(keys)
    assert set(f["status"]) <= set(STATUSES)
    # numeric times are hours since DEFAULT_EPOCH; each patient's clock starts at its first observation
    assert f.attrs["origin"] == {"p1": "2026-01-01T00:00:00+00:00", "p2": "2026-01-01T05:00:00+00:00"}
    assert f.loc[f["patient"] == "p2", "time_h"].tolist() == [0.0]


def test_every_input_row_is_kept_and_every_flag_has_a_reason() -> None:
    f = read_streams(MIXED)
    assert len(f) == len(MIXED)
    assert f.set_index("source")["status"].to_dict() == {
        "row 0": "ok", "row 1": "ok", "row 2": "ok", "row 3": "duplicate", "row 4": "implausible", "row 5": "ok",
        "row 6": "ok", "row 7": "unit_error", "row 8": "missing", "row 9": "unknown_code", "row 10": "ok"}
    flagged = flag_report(f)
    assert len(flagged) == 5 and (flagged["reason"] != "").all()
    assert (f.loc[f["status"] == "ok", "reason"] == "").all()
    reason = f.set_index("source")["reason"]
    assert reason["row 3"] == "duplicate of row 2 (same patient, signal, time, device and value)"
    assert reason["row 4"] == ("rule heart_rate_range: 400 /min is outside the physiologically possible range "
                               "[20, 300] /min")
    assert "unit 'mm[Hg]' is not a unit of oxygen saturation" in reason["row 7"]
    assert "signal 'lactate' is not one of" in reason["row 9"]


def test_units_are_normalised_to_the_canonical_unit() -> None:
    f = read_streams(MIXED).set_index("source")
    assert f.loc["row 5", ["value", "unit"]].tolist() == [37.0, "Cel"]
    assert f.loc["row 6", "value"] == pytest.approx(176.0 * 0.45359237, rel=1e-15)
    assert f.loc["row 6", "unit"] == "kg"
    assert f.loc["row 10", "value"] == pytest.approx(5.5 * 18.0156, rel=1e-12)
    # a unit error keeps the raw value and unit for the record
    assert f.loc["row 7", ["value", "unit"]].tolist() == [97.0, "mm[Hg]"]


def test_late_rows_are_marked_and_usable_excludes_flagged_rows() -> None:
    f = read_streams(MIXED)
    assert f.loc[f["late"], "source"].tolist() == ["row 1"]
    u = usable(f)
    assert (u["status"] == "ok").all() and len(u) == 6
    assert u.attrs["origin"] == f.attrs["origin"]


def test_csv_file_rows_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "vitals.csv"
    MIXED.assign(timestamp=[f"2024-01-01T{int(h):02d}:{int(60 * (h % 1)):02d}:00Z" for h in MIXED["timestamp"]]
                 ).to_csv(path, index=False)
    f = read_streams(path, received="none")
    assert f.loc[f["status"] == "implausible", "source"].tolist() == ["vitals.csv:row 6"]
    assert f.attrs["origin"]["p1"] == "2024-01-01T00:00:00+00:00"
    assert (f["received_h"] == f["time_h"]).all()  # no arrival times given


def test_malformed_input_names_the_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    bad = MIXED.head(3).astype({"timestamp": str, "value": str}).copy()
    bad["timestamp"] = [T0, "yesterday", T0]
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"1 row\(s\) with a timestamp that is not a date-time: bad.csv:row 3: "
                                         r"'yesterday'"):
        read_streams(path)
    bad["timestamp"] = T0
    bad["value"] = ["70", "seventy", "71"]
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"a value that is not a number: bad.csv:row 3: 'seventy'"):
        read_streams(path)
    with pytest.raises(InputError, match=r"lacks column\(s\) \['unit'\]"):
        read_streams(MIXED.drop(columns="unit"))
    with pytest.raises(InputError, match=r"row 9: signal 'lactate' is not one of"):
        read_streams(MIXED, unknown="error")


def test_empty_input_gives_an_empty_canonical_frame() -> None:
    f = read_streams(MIXED.iloc[:0])
    assert len(f) == 0 and tuple(f.columns) == STREAM_COLUMNS
    assert str(f["timestamp"].dtype) == "datetime64[ns, UTC]" and f["time_h"].dtype == np.float64
    merged, todo = append_observations(f, MIXED.head(2))
    assert len(merged) == 2 and todo["refilter"].tolist() == [False]
    assert threshold_alerts(f).empty


def test_naive_and_offset_timestamps_are_utc() -> None:
    raw = _raw([("p", "2024-01-01T10:00:00+02:00", "sbp", 120.0, "mm[Hg]", "cuff", None),
                ("p", "2024-01-01T09:00:00", "sbp", 121.0, "mm[Hg]", "cuff", None)])
    f = read_streams(raw, tz="Europe/Paris")  # the naive 09:00 Paris is 08:00 UTC
    assert f["timestamp"].dt.strftime("%H:%M").tolist() == ["08:00", "08:00"]
    assert f["status"].tolist() == ["ok", "ok"]  # same time and device but different values: both kept


def test_loinc_table_and_unit_helpers() -> None:
    assert {LOINC[c] for c in ("8867-4", "8480-6", "8462-4", "59408-5", "2708-6", "9279-1", "8310-5", "29463-7",
                                "2339-0", "15074-8")} == set(SIGNALS)
    assert all(SIGNALS[s].unit == accepted_units(s)[0] for s in SIGNALS)
    with pytest.raises(InputError, match=r"LOINC code '0000-0' is not a vital sign"):
        signal_for_loinc("0000-0")
    with pytest.raises(UnitError, match=r"unit 'mg' is not a unit of body weight \(weight\)"):
        to_canonical([1.0], "mg", "weight")
    assert [r.name for r in RULES] == [f"{s}_range" for s in SIGNALS]


_ROUND_TRIPS = [("temperature", "degC", "degF", "[degF]"), ("weight", "kg", "lb", "[lb_av]"),
                ("sbp", "mmHg", "kPa", "kPa"), ("glucose", "mg/dL", "mmol/L", "mmol/L")]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(x=st.floats(min_value=1e-3, max_value=1e4, allow_nan=False), case=st.sampled_from(_ROUND_TRIPS))
def test_unit_conversions_round_trip(x: float, case: tuple[str, str, str, str]) -> None:
    signal, canonical, other_pint, other_ucum = case
    molar = "180.156 g/mol" if signal == "glucose" else None
    there = convert(x, canonical, other_pint, molar_mass=molar)
    back = float(to_canonical([there], other_ucum, signal)[0])
    assert back == pytest.approx(x, rel=1e-12, abs=1e-12)


_ROW = st.tuples(
    st.sampled_from(["a", "b"]), st.integers(0, 30).map(lambda k: k / 4.0),
    st.sampled_from(["heart_rate", "spo2", "temperature", "bogus"]), st.one_of(st.none(), st.integers(-5, 420)),
    st.sampled_from(["/min", "%", "Cel", "[degF]"]), st.sampled_from(["watch", "cuff"]),
    st.integers(0, 40).map(lambda k: k / 4.0),
)  # fmt: skip


def _usable_key(frame: pd.DataFrame) -> list[tuple]:
    u = usable(frame)
    return sorted(u[["patient", "signal", "time_h", "value", "unit", "device", "received_h", "late"]]
                  .itertuples(index=False, name=None))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(_ROW, min_size=1, max_size=25), data=st.data())
def test_any_permutation_or_duplication_gives_the_same_usable_frame(rows: list[tuple], data: st.DataObject) -> None:
    raw = _raw([(p, t, s, np.nan if v is None else float(v), u, d, r) for p, t, s, v, u, d, r in rows])
    origin = "2026-01-01T00:00:00Z"
    base = read_streams(raw, origin=origin)
    assert len(base) == len(raw)  # no row lost
    assert (base.loc[base["status"] != "ok", "reason"] != "").all()  # every flag has a reason
    assert (base.loc[base["status"] == "ok", "reason"] == "").all()
    order = data.draw(st.permutations(range(len(raw))))
    extra = data.draw(st.lists(st.integers(0, len(raw) - 1), max_size=5))
    shuffled = raw.iloc[list(order) + extra]  # index labels travel with the rows, so sources stay the same
    again = read_streams(shuffled, origin=origin)
    assert len(again) == len(shuffled)
    assert _usable_key(again) == _usable_key(base)
    status = base.set_index("source")["status"]
    repeats = sum(status[f"row {i}"] in ("ok", "duplicate") for i in extra)
    assert (again["status"] == "duplicate").sum() >= repeats


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(_ROW, min_size=2, max_size=20), cut=st.integers(1, 19))
def test_appending_in_batches_equals_reading_everything_at_once(rows: list[tuple], cut: int) -> None:
    raw = _raw([(p, t, s, np.nan if v is None else float(v), u, d, r) for p, t, s, v, u, d, r in rows])
    cut = min(cut, len(raw) - 1)
    origin = {"a": "2026-01-01T00:00:00Z", "b": "2026-01-01T00:00:00Z"}
    whole = read_streams(raw, origin=origin)
    first = read_streams(raw.iloc[:cut], origin=origin)
    merged, todo = append_observations(first, raw.iloc[cut:])
    assert len(merged) == len(raw)
    cols = [c for c in STREAM_COLUMNS if c != "timestamp"]
    pd.testing.assert_frame_equal(merged[cols].reset_index(drop=True), whole[cols].reset_index(drop=True))
    # the re-filter table: exactly the streams whose new usable rows start before their last old usable time
    old = usable(first).groupby(["patient", "signal"])["time_h"].max()
    for row in todo.itertuples():
        last = old.get((row.patient, row.signal), -np.inf)
        assert row.refilter == (row.from_h < last)


def test_append_reports_the_streams_to_refilter() -> None:
    first = read_streams(_raw([("p", 0.0, "sbp", 120.0, "mm[Hg]", "cuff", 0.0),
                               ("p", 4.0, "sbp", 124.0, "mm[Hg]", "cuff", 4.0),
                               ("p", 4.0, "heart_rate", 70.0, "/min", "watch", 4.0)]))
    new = _raw([("p", 2.0, "sbp", 150.0, "mm[Hg]", "cuff", 6.0),       # late: before 4.0 already filtered
                ("p", 5.0, "heart_rate", 71.0, "/min", "watch", 6.0),  # in order
                ("p", 4.0, "sbp", 124.0, "mm[Hg]", "cuff", 6.0),       # duplicate of an old row
                ("q", 1.0, "spo2", 97.0, "%", "watch", 1.0)])          # new patient
    merged, todo = append_observations(first, new, name="batch2")
    assert len(merged) == 7
    assert todo.values.tolist() == [["p", "heart_rate", 5.0, 1, False], ["p", "sbp", 2.0, 1, True],
                                    ["q", "spo2", 0.0, 1, False]]
    flags = merged.set_index("source")
    assert flags.loc["batch2:row 2", "status"] == "duplicate" and flags.loc["batch2:row 0", "late"]
    assert merged.attrs["origin"]["q"] == "2026-01-01T01:00:00+00:00"  # a new patient gets its own origin


def test_nsrdb_heart_rate_stream_from_real_rr_intervals() -> None:
    rr = load_nsrdb_rr()
    assert len(rr) == 5021 and rr.groupby("subject").size().to_dict() == {"nsrdb_long": 4684, "nsrdb_short": 337}
    hr = load_nsrdb_heart_rate()
    assert (hr["status"] == "ok").all() and (hr["unit"] == "/min").all()
    long = hr[hr["patient"] == "nsrdb_long"]
    # the README: mean interval 768 ms (78 bpm); the per-minute means weight each beat once
    beats = rr[rr["subject"] == "nsrdb_long"]
    bins = np.floor(beats["time_s"] / 60.0)
    expected = (60000.0 / beats.groupby(bins)["rr_ms"].mean()).to_numpy()
    np.testing.assert_allclose(long["value"].to_numpy(), expected, rtol=1e-12)
    assert 75.0 < long["value"].mean() < 81.0
    assert rr_artefacts(rr).groupby("subject").size().to_dict() == {"nsrdb_long": 92, "nsrdb_short": 26}
    with pytest.raises(InputError, match="bin_s=0"):
        heart_rate_from_rr(rr, bin_s=0)
