"""EventTable invariants, views, exclusions, digests and the validation report object."""

from __future__ import annotations

import pandas as pd
import pytest

from bayestwin.data import EventTable, RowAccounting, ValidationReport, Violation, load_dataset
from bayestwin.exceptions import DataValidationError


@pytest.fixture(scope="module")
def theo():
    return load_dataset("theo_sd")


def test_views_and_units(theo) -> None:
    assert theo.patients == list(range(1, 13))
    assert theo.unit("rate") == "mg/h" and theo.unit("ii") == "h" and theo.unit("WT") == "kg"
    with pytest.raises(KeyError, match="has no unit"):
        theo.unit("nope")
    one = theo.patient(9)
    assert one.n_patients == 1 and len(one.observations) == 11
    with pytest.raises(KeyError, match="is not in"):
        theo.patient(99)


def test_summary_has_units_in_column_names(theo) -> None:
    s = theo.summary()
    assert list(s.columns) == ["doses", "total_amount [mg]", "observations", "censored", "first_time [h]",
                               "last_time [h]"]
    assert s["observations"].sum() == 132


def test_exclude_records_reason_per_row(theo) -> None:
    t = theo.exclude(theo.frame["time"] > 20, reason="after 20 h")
    acc = t.accounting
    assert acc.rows_in == 144 and acc.rows_used + len(acc.excluded) == 144
    assert set(acc.excluded["reason"]) == {"after 20 h"}
    assert acc.excluded["row"].tolist() == list(theo.frame.index[theo.frame["time"] > 20])
    with pytest.raises(ValueError, match="give a reason"):
        theo.exclude(theo.frame["time"] > 20, reason=" ")
    with pytest.raises(ValueError, match="expected"):
        theo.exclude([True], reason="x")


def test_digest_is_stable_and_sensitive(theo) -> None:
    assert theo.digest() == load_dataset("theo_sd").digest()
    changed = theo.exclude(theo.frame["time"] > 24, reason="late")
    assert changed.digest() != theo.digest()


def test_invariants_are_enforced(theo) -> None:
    with pytest.raises(AssertionError, match="columns"):
        EventTable(frame=theo.frame.drop(columns="WT"), units=theo.units, covariates=("WT",))
    bad = theo.frame.copy()
    bad.loc[bad.index[0], "time"] = float("nan")
    with pytest.raises(AssertionError, match="missing values"):
        EventTable(frame=bad, units=theo.units, covariates=("WT",))
    with pytest.raises(AssertionError, match="accounting"):
        RowAccounting(rows_in=3, rows_used=1, excluded=pd.DataFrame({"row": [1], "patient": [1], "reason": ["x"]}))


def test_report_formats_and_raises() -> None:
    v = [Violation("T001", "error", "time -1 is negative", "Shift the clock.", patient="P1", row=5, column="TIME",
                   value=-1),
         Violation("P002", "warning", "patient has 1 dose(s) and no observations", "Fine for forecasting.",
                   patient="P2", row="doses:3", column="ID")]
    report = ValidationReport.from_violations(v, source="f.csv")
    assert not report.ok and len(report.errors) == 1 and len(report.warnings) == 1
    text = report.format()
    assert text.splitlines()[0] == "1 error and 1 warning in 'f.csv'"
    assert "[T001] patient P1, row 5, column TIME (value -1): time -1 is negative. Fix: Shift the clock." in text
    assert "[P002 warning] patient P2, row doses:3" in text
    with pytest.raises(DataValidationError, match="row 5, column TIME") as info:
        report.raise_if_errors()
    assert info.value.violations["rule"].tolist() == ["T001"]
    assert report.drop_rules(["T001"]).ok
    assert len(report.merge(report)) == 4


def test_describe_mentions_accounting_and_notes(theo) -> None:
    text = theo.describe()
    assert "rows in 144 = used 144 + set aside 0" in text
    assert "rxode2" in text and "O007 warning" in text
    assert repr(theo) == ("EventTable(source='nlmixr2data_theo_sd.csv', patients=12, rows=144, doses=12, "
                          "observations=132, warnings=3)")
