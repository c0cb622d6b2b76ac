"""NONMEM and tidy readers: names, missing values, row accounting, units, recoding."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from bayestwin.data import read_nonmem, read_tidy, validate, write_nonmem
from bayestwin.exceptions import DataValidationError, UnitError

UNITS = {"time": "h", "amt": "mg", "dv": "mg/L"}


def csv(text: str) -> io.StringIO:
    return io.StringIO(text.strip("\n") + "\n")


def test_column_names_are_case_insensitive_with_aliases() -> None:
    t = read_nonmem(csv("""
subject,Time,Amt,conc,evid
1,0,100,.,1
1,2,.,3.5,0
"""), units=UNITS)
    assert t.frame["dv"].tolist()[1] == 3.5
    assert dict(t.source_names) == {"id": "subject", "time": "Time", "amt": "Amt", "dv": "conc", "evid": "evid"}


def test_missing_tokens_become_defaults_or_missing_never_zero_dv() -> None:
    t = read_nonmem(csv("""
ID,TIME,AMT,DV,RATE
1,0,100,.,
1,1,,NA,.
"""), units=UNITS, ignore_rules=["O001"])
    assert t.frame["rate"].tolist() == [0.0, 0.0]
    assert np.isnan(t.frame["dv"]).all()  # DV never defaults to 0
    assert "rules waived by the caller: O001" in t.notes


def test_evid_and_mdv_derived_when_absent() -> None:
    t = read_nonmem(csv("""
ID,TIME,AMT,DV
1,0,100,.
1,1,0,2.0
"""), units=UNITS)
    assert t.frame["evid"].tolist() == [1, 0]
    assert t.frame["mdv"].tolist() == [1, 0]


def test_blank_and_comment_rows_are_accounted_for_with_reasons() -> None:
    t = read_nonmem(csv("""
ID,TIME,AMT,DV,C
1,0,100,.,
,,,,

# a note
1,1,.,2.0,
1,2,.,1.0,C
"""), units=UNITS)
    acc = t.accounting
    assert acc.rows_in == 6 and acc.rows_used == 2
    assert acc.excluded["row"].tolist() == [3, 4, 5, 7]
    assert acc.reasons() == {"blank row": 2, "comment row": 2}
    assert list(t.frame.index) == [2, 6]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_separator_is_sniffed(sep: str) -> None:
    text = "ID,TIME,AMT,DV\n1,0,100,.\n1,1,.,2.0\n".replace(",", sep)
    assert len(read_nonmem(io.StringIO(text), units=UNITS).frame) == 2


def test_utf8_bom_file_and_units_sidecar(tmp_path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("\ufeffID,TIME,AMT,DV\n1,0,100,.\n1,1,.,2.0\n".encode())
    with pytest.raises(UnitError, match="no units given"):
        read_nonmem(path)
    (tmp_path / "d.csv.units.json").write_text(json.dumps({"TIME": "h", "AMT": "mg", "DV": "mg/L"}))
    t = read_nonmem(path)
    assert t.source == "d.csv" and t.units["dv"] == "mg/L"


def test_units_are_canonicalised() -> None:
    t = read_nonmem(csv("ID,TIME,AMT,DV,WT\n1,0,100,.,70\n1,1,.,2,70\n"),
                    units={"TIME": "hours", "AMT": "µg", "DV": "ng/mL", "wt": "kg"})
    assert dict(t.units) == {"time": "h", "amt": "ug", "dv": "ng/mL", "WT": "kg"}


def test_rxode2_infusion_code_and_mismatch() -> None:
    t = read_nonmem(csv("""
ID,TIME,AMT,RATE,DV,EVID
1,0,100,50,.,10101
1,3,.,.,2.0,0
"""), units=UNITS, evid_coding="rxode2")
    assert t.frame["evid"].tolist() == [1, 0] and t.frame["cmt"].tolist() == [1, 0]
    report = validate(csv("ID,TIME,AMT,DV,EVID,CMT\n1,0,100,.,201,1\n1,1,.,2,0,2\n"), units=UNITS,
                      evid_coding="rxode2")
    assert report.rules() == ["E008"] and report.errors["row"].tolist() == [2]


def test_mg_per_kg_needs_weight() -> None:
    report = validate(csv("ID,TIME,AMT,DV\n1,0,5,.\n1,1,.,2\n"), units={"time": "h", "amt": "mg/kg", "dv": "mg/L"})
    assert report.rules("error") == ["U006"]
    t = read_nonmem(csv("ID,TIME,AMT,DV,BW\n1,0,5,.,2500\n1,1,.,2,.\n"),
                    units={"time": "h", "amt": "mg/kg", "dv": "mg/L", "BW": "g"})
    assert t.frame["amt"].tolist() == [12.5, 0.0] and t.units["amt"] == "mg"


def test_named_compartments_are_kept() -> None:
    t = read_nonmem(csv("ID,TIME,AMT,DV,CMT\n1,0,100,.,depot\n1,1,.,2,central\n"), units=UNITS)
    assert t.frame["cmt"].tolist() == ["depot", "central"]
    text = write_nonmem(t)
    assert read_nonmem(io.StringIO(text), units=UNITS).equals(t)


def test_ids_keep_their_spelling() -> None:
    t = read_nonmem(csv("ID,TIME,AMT,DV\n007,0,100,.\n007,1,.,2\n7,0,100,.\n7,1,.,1\n"), units=UNITS)
    assert t.patients == ["007", "7"]
    t2 = read_nonmem(csv("ID,TIME,AMT,DV\n7,0,100,.\n7,1,.,2\n"), units=UNITS)
    assert t2.patients == [7] and t2.frame["id"].dtype == np.int64


def test_string_covariates_are_codes_and_mixed_ones_warn() -> None:
    t = read_nonmem(csv("ID,TIME,AMT,DV,SEX\n1,0,100,.,f\n1,1,.,2,f\n2,0,100,.,1\n2,1,.,2,1\n"), units=UNITS)
    assert t.frame["SEX"].tolist() == ["f", "f", 1, 1]
    assert t.report.rules() == ["V005"]


def test_datavalidationerror_message_names_every_problem() -> None:
    with pytest.raises(DataValidationError) as info:
        read_nonmem(csv("""
ID,TIME,AMT,DV,EVID
1,0,-100,.,1
1,x,.,2,0
1,2,.,inf,0
"""), units=UNITS)
    message = str(info.value)
    assert "3 errors" in message
    for fragment in ("row 2, column AMT", "row 3, column TIME", "row 4, column DV"):
        assert fragment in message
    assert info.value.report.rules() == ["D001", "V001", "V002"]


def test_tidy_reader_merges_doses_before_samples_and_labels_rows() -> None:
    obs = pd.DataFrame({"pid": ["A", "A", "B"], "t": [0.0, 2.0, 1.0], "y": [0.5, 3.0, 1.0]})
    doses = pd.DataFrame({"pid": ["A", "B"], "t": [0.0, 0.0], "dose": [100.0, 50.0]})
    t = read_tidy(obs, doses, id="pid", time="t", dv="y", amt="dose", units=UNITS, dose_cmt=1, obs_cmt=2)
    assert t.frame[["id", "time", "evid", "cmt"]].values.tolist() == [
        ["A", 0.0, 1, 1], ["A", 0.0, 0, 2], ["A", 2.0, 0, 2], ["B", 0.0, 1, 1], ["B", 1.0, 0, 2]]
    assert list(t.frame.index) == ["doses:0", "observations:0", "observations:1", "doses:1", "observations:2"]
    assert t.accounting.rows_in == 5


def test_tidy_reader_reports_missing_named_column() -> None:
    with pytest.raises(DataValidationError, match="S008"):
        read_tidy(pd.DataFrame({"id": [1], "time": [0.0], "dv": [1.0]}), pd.DataFrame({"id": [1], "time": [0.0]}),
                  amt="dose", units=UNITS)


def test_tidy_reader_with_timestamps_and_zones() -> None:
    obs = pd.DataFrame({"id": ["P1", "P1"], "when": ["2024-03-31T09:00:00+02:00", "2024-03-31T13:30:00+02:00"],
                        "dv": [4.0, 2.0]})
    doses = pd.DataFrame({"id": ["P1"], "when": ["2024-03-31T06:00:00Z"], "amt": [250.0]})
    t = read_tidy(obs, doses, time="when", units={"time": "datetime", "amt": "mg", "dv": "mg/L"})
    assert t.frame["time"].tolist() == [0.0, 1.0, 5.5]
    assert t.units["time"] == "h"
