"""Every bundled data set ingests with exact, asserted counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bayestwin.data import dataset_path, expand_addl, list_datasets, load_dataset

#: name -> (patients, rows, dose records after ADDL expansion, observations, EVID 2 rows, rows set aside)
EXPECTED = {
    "theoph": (12, 144, 12, 132, 0, 0),
    "theo_sd": (12, 144, 12, 132, 0, 0),
    "pheno_sd": (59, 744, 589, 155, 0, 0),
    "oral_1cpt": (120, 7920, 960, 6947, 13, 0),
    "pbcseq": (312, 1945, 0, 1945, 0, 0),
    "cgm_hall2018": (3, 5573, 9, 5564, 0, 0),
}


@pytest.fixture(scope="module")
def tables() -> dict[str, object]:
    return {name: load_dataset(name) for name in list_datasets()}


def test_every_bundled_dataset_has_expected_counts(tables) -> None:
    assert set(tables) == set(EXPECTED)
    for name, (patients, rows, doses, obs, other, aside) in EXPECTED.items():
        t = tables[name]
        assert t.n_patients == patients, name
        assert len(t.frame) == rows, name
        assert len(expand_addl(t).doses) == doses, name
        assert len(t.observations) == obs, name
        assert int((t.frame["evid"] == 2).sum()) == other, name
        assert t.accounting.rows_in == rows + aside == t.accounting.rows_used + len(t.accounting.excluded)
        assert len(t.accounting.excluded) == aside, name


def test_row_counts_match_the_raw_files(tables) -> None:
    for name in ("theo_sd", "pheno_sd", "oral_1cpt"):
        raw = pd.read_csv(dataset_path(name))
        assert tables[name].accounting.rows_in == len(raw)
        # every row is kept and traceable to its file line (header = line 1)
        assert list(tables[name].frame.index) == list(range(2, len(raw) + 2))


@pytest.mark.parametrize("name", ["theoph", "theo_sd"])
def test_theophylline_predose_carry_over_is_reported_not_dropped(tables, name) -> None:
    t = tables[name]
    warnings = t.report.warnings
    assert warnings["rule"].tolist() == ["O007"] * 3
    assert warnings["patient"].tolist() == [1, 7, 10]
    assert warnings["value"].tolist() == [0.74, 0.15, 0.24]
    expected_rows = ["observations:0", "observations:66", "observations:99"] if name == "theoph" else [3, 75, 111]
    assert warnings["row"].tolist() == expected_rows
    assert t.report.ok


def test_theoph_mg_per_kg_and_theo_sd_mg_give_identical_dosing(tables) -> None:
    a = tables["theoph"].doses.reset_index(drop=True)
    b = tables["theo_sd"].doses.reset_index(drop=True)
    assert tables["theoph"].units["amt"] == tables["theo_sd"].units["amt"] == "mg"
    for col in ("id", "time", "evid", "cmt", "rate", "ii", "addl", "ss"):
        assert a[col].tolist() == b[col].tolist(), col
    # Dose (mg/kg) x Wt (kg) is one correctly rounded product; theo_sd stores the same decimal
    # number written with 10 significant digits, so the two agree to within 1 ulp (~2.2e-16 rel).
    rel = np.abs(a["amt"].to_numpy() - b["amt"].to_numpy()) / b["amt"].to_numpy()
    assert rel.max() <= 2.3e-16
    raw = pd.read_csv(dataset_path("theo_sd"))
    assert math.isclose(math.fsum(a["amt"]), math.fsum(raw.loc[raw["EVID"] == 101, "AMT"]), rel_tol=1e-15)
    # and the observations are the same samples
    oa, ob = tables["theoph"].observations, tables["theo_sd"].observations
    assert oa[["id", "time", "dv"]].reset_index(drop=True).equals(ob[["id", "time", "dv"]].reset_index(drop=True))


def test_theo_sd_rxode2_codes_are_decoded(tables) -> None:
    t = tables["theo_sd"]
    assert set(t.doses["evid"]) == {1} and set(t.doses["cmt"]) == {1}
    assert set(t.observations["cmt"]) == {2}
    assert any("rxode2" in n for n in t.notes)


def test_pheno_sd_units_and_totals(tables) -> None:
    t = tables["pheno_sd"]
    assert dict(t.units) == {"time": "h", "amt": "mg", "dv": "mg/L", "WT": "kg"}
    assert t.covariates == ("WT", "APGR")
    assert math.isclose(t.doses["amt"].sum(), 3929.2, rel_tol=1e-12)
    assert t.summary()["observations"].between(1, 6).all()
    assert len(t.report) == 0


def test_oral_1cpt_ss_recoded_and_single_dose_subset(tables) -> None:
    t = tables["oral_1cpt"]
    assert sorted(set(t.frame["ss"])) == [0, 1]
    assert int((t.frame["ss"] == 1).sum()) == 120
    assert any("SS recoded {99: 0} on 5520 rows" in n for n in t.notes)
    single = t.exclude(t.frame["SD"] != 1, reason="multiple-dose phase (SD = 0)")
    assert len(single.frame) == 2400
    assert len(single.doses) == 120 and len(single.observations) == 2273
    assert single.accounting.reasons() == {"multiple-dose phase (SD = 0)": 5520}
    # the true individual parameters are constant within a subject
    assert (single.frame.groupby("id")[["CL", "V", "KA"]].nunique() == 1).all().all()


def test_unknown_dataset_name_lists_choices() -> None:
    with pytest.raises(KeyError, match="choose one of"):
        load_dataset("theophylline")
    with pytest.raises(KeyError, match="choose one of"):
        dataset_path("nope")
