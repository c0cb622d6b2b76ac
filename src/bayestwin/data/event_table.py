"""The canonical event table: one patient cohort's history, with units and provenance.

Every model in bayestwin consumes an ``EventTable``. It is immutable:
methods return new tables. Its frame is indexed by *source row* (the line in
the file, or the DataFrame index label), so any value can be traced back to
where it came from, and it carries a ``RowAccounting`` proving that every
input row was either used or set aside with a reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from bayestwin.data.columns import COLUMN_ORDER
from bayestwin.data.report import ValidationReport
from bayestwin.exceptions import DataValidationError

__all__ = ["EventTable", "RowAccounting"]

DOSE_EVIDS = (1, 4)


@dataclass(frozen=True)
class RowAccounting:
    """Rows in = rows used + rows set aside, each set-aside row with its reason.

    Examples
    --------
    >>> acc = RowAccounting(rows_in=3, rows_used=2, excluded=pd.DataFrame(
    ...     {"row": [4], "patient": [None], "reason": ["blank row"]}))
    >>> acc.reasons()
    {'blank row': 1}
    """

    rows_in: int
    rows_used: int
    excluded: pd.DataFrame

    def __post_init__(self) -> None:
        if self.rows_in != self.rows_used + len(self.excluded):
            raise AssertionError(
                f"row accounting broken: {self.rows_in} rows in, {self.rows_used} used, "
                f"{len(self.excluded)} set aside"
            )

    def reasons(self) -> dict[str, int]:
        """Number of set-aside rows per reason."""
        return {str(k): int(v) for k, v in self.excluded["reason"].value_counts(sort=False).items()}

    def add(self, excluded: pd.DataFrame) -> RowAccounting:
        """Move the rows in `excluded` (row, patient, reason) from used to set aside."""
        both = pd.concat([self.excluded, excluded], ignore_index=True)
        return RowAccounting(self.rows_in, self.rows_used - len(excluded), both)


@dataclass(frozen=True)
class EventTable:
    """A validated cohort history in NONMEM-compatible columns, with units.

    Build one with ``read_nonmem`` or
    ``read_tidy``; the constructor checks only internal
    invariants.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``COLUMN_ORDER`` then covariates;
        index ``source_row``.
    units : Mapping[str, str]
        Unit of ``time``, ``amt``, ``dv`` and of each quantitative covariate.
    covariates : tuple of str
        Covariate column names (as in the source).
    accounting : RowAccounting
        What happened to every input row.
    report : ValidationReport
        Warnings found at ingestion (errors would have raised).
    source : str
        Display name of the source.
    source_names : Mapping[str, str]
        Canonical column -> column name in the source (for messages and writers).
    notes : tuple of str
        Recodings applied at ingestion (e.g. rxode2 EVID decoding, mg/kg -> mg).

    Examples
    --------
    >>> from bayestwin.data import load_dataset
    >>> table = load_dataset("theo_sd")
    >>> table.n_patients, len(table.doses), len(table.observations)
    (12, 12, 132)
    """

    frame: pd.DataFrame
    units: Mapping[str, str]
    covariates: tuple[str, ...] = ()
    accounting: RowAccounting | None = None
    report: ValidationReport = field(default_factory=lambda: ValidationReport.from_violations([]))
    source: str = "<data>"
    source_names: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        expected = list(COLUMN_ORDER) + list(self.covariates)
        if list(self.frame.columns) != expected:
            raise AssertionError(f"EventTable columns {list(self.frame.columns)} != {expected}")
        object.__setattr__(self, "units", MappingProxyType(dict(self.units)))
        object.__setattr__(self, "source_names", MappingProxyType(dict(self.source_names)))
        if self.accounting is None:
            empty = pd.DataFrame({"row": [], "patient": [], "reason": []})
            object.__setattr__(self, "accounting", RowAccounting(len(self.frame), len(self.frame), empty))
        for col in ("time", "evid", "amt", "rate", "dur", "ii", "addl", "ss", "mdv", "cens"):
            if self.frame[col].isna().any():
                raise AssertionError(f"EventTable column {col!r} has missing values")

    # --- views ------------------------------------------------------------------------
    @property
    def patients(self) -> list[Any]:
        """Patient ids in order of first appearance."""
        return list(pd.unique(self.frame["id"]))

    @property
    def n_patients(self) -> int:
        """Number of patients."""
        return int(self.frame["id"].nunique())

    @property
    def doses(self) -> pd.DataFrame:
        """Dose rows (EVID 1 or 4), as recorded (ADDL not expanded)."""
        return self.frame[self.frame["evid"].isin(DOSE_EVIDS)]

    @property
    def observations(self) -> pd.DataFrame:
        """Observation rows that enter the likelihood (EVID 0 and MDV 0)."""
        f = self.frame
        return f[(f["evid"] == 0) & (f["mdv"] == 0)]

    def patient(self, patient_id: Any) -> EventTable:
        """The table restricted to one patient (accounting kept for the whole source)."""
        mask = self.frame["id"] == patient_id
        if not mask.any():
            raise KeyError(f"patient {patient_id!r} is not in {self.source!r}; patients: {self.patients[:10]}")
        return replace(self, frame=self.frame[mask])

    def unit(self, column: str) -> str:
        """Unit of a column: ``time``, ``amt``, ``dv``, ``rate``, ``dur``, ``ii`` or a covariate.

        ``"dv[k]"`` is the unit of DV on rows with DVID k (``units["dv"]`` unless declared apart).
        """
        if column in ("dur", "ii"):
            return self.units["time"]
        if column == "rate":
            return f"{self.units['amt']}/{self.units['time']}"
        if column in ("limit", "lloq", "dvsd"):
            return self.units["dv"]
        if column.startswith("dv[") and column not in self.units:
            return self.units["dv"]
        if column not in self.units:
            raise KeyError(f"column {column!r} has no unit; units are declared for {sorted(self.units)}")
        return self.units[column]

    # --- derived tables ---------------------------------------------------------------
    def dv_unit(self, dvid: int) -> str:
        """Unit of DV (and LIMIT, LLOQ, DVSD) on rows with DVID `dvid`.

        Examples
        --------
        >>> from bayestwin.data import load_dataset
        >>> load_dataset("theo_sd").dv_unit(1)
        'mg/L'
        """
        return self.unit(f"dv[{int(dvid)}]")

    def summary(self) -> pd.DataFrame:
        """Per-patient counts: doses (after ADDL expansion), total amount, observations, BLQ, span.

        Examples
        --------
        >>> from bayestwin.data import load_dataset
        >>> load_dataset("theo_sd").summary().loc[1, ["doses", "observations"]].tolist()
        [1, 11]
        """
        from bayestwin.data.expand import expand_addl

        f = expand_addl(self).frame
        is_dose = f["evid"].isin(DOSE_EVIDS)
        is_obs = (f["evid"] == 0) & (f["mdv"] == 0)
        amt_unit, time_unit = self.units["amt"], self.units["time"]
        grouped = f.assign(_dose=is_dose, _obs=is_obs, _blq=is_obs & (f["cens"] != 0),
                           _amt=f["amt"].where(is_dose, 0.0)).groupby("id", sort=False)
        out = pd.DataFrame({
            "doses": grouped["_dose"].sum().astype(int),
            f"total_amount [{amt_unit}]": grouped["_amt"].sum(),
            "observations": grouped["_obs"].sum().astype(int),
            "censored": grouped["_blq"].sum().astype(int),
            f"first_time [{time_unit}]": grouped["time"].min(),
            f"last_time [{time_unit}]": grouped["time"].max(),
        })
        out.index.name = "id"
        return out

    def describe(self) -> str:
        """A short, human-readable description with row accounting and warnings."""
        acc = self.accounting
        assert acc is not None
        lines = [
            f"EventTable from {self.source!r}: {self.n_patients} patients, {len(self.frame)} rows "
            f"({len(self.doses)} dose records, {len(self.observations)} observations)",
            f"  units: time {self.units['time']}, amount {self.units['amt']}, DV {self.units['dv']}",
            f"  rows in {acc.rows_in} = used {acc.rows_used} + set aside {len(acc.excluded)}"
            + (f" ({', '.join(f'{k}: {v}' for k, v in acc.reasons().items())})" if len(acc.excluded) else ""),
        ]
        if self.covariates:
            covs = [f"{c} [{self.units[c]}]" if c in self.units else c for c in self.covariates]
            lines.append(f"  covariates: {', '.join(covs)}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if len(self.report):
            lines.append("  " + self.report.format().replace("\n", "\n  "))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"EventTable(source={self.source!r}, patients={self.n_patients}, rows={len(self.frame)}, "
                f"doses={len(self.doses)}, observations={len(self.observations)}, "
                f"warnings={len(self.report)})")

    # --- transforms -------------------------------------------------------------------
    def exclude(self, mask: Sequence[bool] | pd.Series, reason: str) -> EventTable:
        """Set aside the rows where `mask` is true, recording `reason` for each.

        Examples
        --------
        >>> from bayestwin.data import load_dataset
        >>> t = load_dataset("theo_sd")
        >>> t2 = t.exclude(t.frame["time"] > 12, reason="after 12 h")
        >>> t2.accounting.reasons()
        {'after 12 h': 20}
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self.frame),):
            raise ValueError(f"mask has shape {mask.shape}; expected ({len(self.frame)},) booleans")
        if not reason.strip():
            raise ValueError("give a reason for setting rows aside; it is recorded with each row")
        gone = self.frame[mask]
        excluded = pd.DataFrame({"row": list(gone.index), "patient": list(gone["id"]),
                                 "reason": [reason] * len(gone)})
        assert self.accounting is not None
        return replace(self, frame=self.frame[~mask], accounting=self.accounting.add(excluded))

    def digest(self) -> str:
        """SHA-256 of the table's content (values, units, covariates): a stable data hash.

        Examples
        --------
        >>> from bayestwin.data import load_dataset
        >>> load_dataset("theo_sd").digest().startswith("sha256:")
        True
        """
        h = hashlib.sha256()
        h.update(repr(sorted(self.units.items())).encode())
        h.update(repr(self.covariates).encode())
        h.update(self.frame.to_csv(float_format="%.17g").encode())
        return "sha256:" + h.hexdigest()

    def equals(self, other: EventTable) -> bool:
        """True when both tables hold the same events, values, units and covariates."""
        return (
            dict(self.units) == dict(other.units)
            and self.covariates == other.covariates
            and self.frame.reset_index(drop=True).equals(other.frame.reset_index(drop=True))
        )

    def raise_if_errors(self) -> None:
        """Raise ``DataValidationError`` if the attached report has errors."""
        if not self.report.ok:
            raise DataValidationError(self.report)
