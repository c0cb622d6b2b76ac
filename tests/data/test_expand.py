"""ADDL expansion, LOCF covariates and time after dose, against hand-worked cases."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from bayestwin.data import expand_addl, read_nonmem, time_after_dose

UNITS = {"time": "h", "amt": "mg", "dv": "mg/L", "WT": "kg"}


def table(text: str):
    return read_nonmem(io.StringIO(text.strip() + "\n"), units=UNITS)


def test_implied_doses_follow_a_sample_taken_at_the_same_time() -> None:
    t = table("""
ID,TIME,AMT,II,ADDL,DV,WT
1,0,100,12,2,.,70
1,12,.,.,.,4.0,.
1,30,.,.,.,2.0,72
""")
    f = expand_addl(t).frame
    assert f[["time", "evid", "amt", "addl", "ii"]].values.tolist() == [
        [0.0, 1, 100.0, 0, 12.0],   # the recorded dose keeps its II
        [12.0, 0, 0.0, 0, 0.0],     # trough sample at 12 h comes before the implied dose
        [12.0, 1, 100.0, 0, 0.0],
        [24.0, 1, 100.0, 0, 0.0],
        [30.0, 0, 0.0, 0, 0.0],
    ]
    # implied rows keep the source row of the dose that implied them
    assert list(f.index) == [2, 3, 2, 2, 4]
    # LOCF: the weight recorded at 30 h does not apply to the dose at 24 h
    assert f["WT"].tolist() == [70.0, 70.0, 70.0, 70.0, 72.0]


def test_time_after_dose_includes_implied_doses() -> None:
    t = table("""
ID,TIME,AMT,II,ADDL,DV,WT
1,0,100,12,2,.,70
1,12,.,.,.,4.0,.
1,30,.,.,.,2.0,.
2,1,.,.,.,0.1,60
2,2,50,.,.,.,.
2,5,.,.,.,3.0,.
""")
    tad = time_after_dose(t)
    assert tad.tolist()[:5] == [0.0, 12.0, 0.0, 0.0, 6.0]
    assert np.isnan(tad.iloc[5])  # patient 2's sample before the first dose
    assert tad.tolist()[6:] == [0.0, 3.0]
    assert tad.name == "time_after_dose [h]"


def test_no_addl_returns_the_same_table() -> None:
    t = table("ID,TIME,AMT,DV,WT\n1,0,100,.,70\n1,1,.,2,.\n")
    assert expand_addl(t) is t


def test_reset_segments_keep_their_own_clock() -> None:
    t = table("""
ID,TIME,AMT,II,ADDL,EVID,DV,WT
1,0,100,24,1,1,.,70
1,30,.,.,.,0,1.5,.
1,0,80,.,.,4,.,.
1,2,.,.,.,0,3.0,.
""")
    f = expand_addl(t).frame
    assert f[["time", "evid", "amt"]].values.tolist() == [
        [0.0, 1, 100.0], [24.0, 1, 100.0], [30.0, 0, 0.0], [0.0, 4, 80.0], [2.0, 0, 0.0]]


def test_total_dose_preserved_on_pheno() -> None:
    from bayestwin.data import load_dataset

    t = load_dataset("pheno_sd")
    e = expand_addl(t)
    assert pd.Series(e.doses["amt"]).sum() == t.doses["amt"].sum()
