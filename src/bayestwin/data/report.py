"""Validation reports: every problem in a data set, with where it is and how to fix it.

A ``ValidationReport`` is a thin, immutable wrapper around a tidy pandas
table with one row per violation. Rules never raise; they return violations,
so one pass over a file reports *all* problems at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from bayestwin.exceptions import DataValidationError

__all__ = ["REPORT_COLUMNS", "ValidationReport", "Violation"]

Severity = Literal["error", "warning"]

#: Columns of ``ValidationReport.violations``, in order.
REPORT_COLUMNS: tuple[str, ...] = (
    "severity", "rule", "patient", "row", "column", "value", "message", "fix",
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule at one place in the data.

    Parameters
    ----------
    rule : str
        Rule identifier, e.g. ``"T003"`` (see ``bayestwin.data.rule_table``).
    severity : {"error", "warning"}
        Errors stop ingestion; warnings are reported and kept with the table.
    message : str
        What is wrong, in words a clinician or modeler understands.
    fix : str
        How to fix it.
    patient : object, optional
        Patient id, when the problem belongs to one patient.
    row : int or str, optional
        Source row: the line number in a file (header = line 1), the index
        label of a DataFrame row, or ``"table:row"`` for multi-table readers.
    column : str, optional
        Column name as written in the source.
    value : object, optional
        The offending value, as written in the source where possible.

    Examples
    --------
    >>> Violation("D001", "error", "dose amount is -5", "Doses must be > 0.",
    ...           patient=3, row=12, column="AMT", value="-5").rule
    'D001'
    """

    rule: str
    severity: Severity
    message: str
    fix: str
    patient: Any = None
    row: Any = None
    column: str | None = None
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        """Return the violation as a plain dict keyed by ``REPORT_COLUMNS``."""
        return {name: getattr(self, name) for name in REPORT_COLUMNS}


@dataclass(frozen=True)
class ValidationReport:
    """All problems found in one data set.

    Parameters
    ----------
    violations : pandas.DataFrame
        One row per problem, columns ``REPORT_COLUMNS``.
    source : str
        Name of the data source (file name or ``"<DataFrame>"``).

    Examples
    --------
    >>> report = ValidationReport.from_violations(
    ...     [Violation("D001", "error", "dose amount is -5", "Doses must be > 0.",
    ...                patient=3, row=12, column="AMT", value="-5")], source="cohort.csv")
    >>> report.ok
    False
    >>> print(report.format())
    1 error in 'cohort.csv'
      [D001] patient 3, row 12, column AMT (value -5): dose amount is -5. Fix: Doses must be > 0.
    """

    violations: pd.DataFrame
    source: str = "<data>"
    _sorted: bool = field(default=False, repr=False)

    @classmethod
    def from_violations(
        cls, violations: Iterable[Violation], *, source: str = "<data>"
    ) -> ValidationReport:
        """Build a report from ``Violation`` objects, sorted by row then rule."""
        rows = [v.as_dict() for v in violations]
        frame = pd.DataFrame(rows, columns=list(REPORT_COLUMNS), dtype=object)
        if len(frame):
            order = sorted(range(len(frame)), key=lambda i: (_row_key(rows[i]["row"]), rows[i]["rule"]))
            frame = frame.iloc[order]
        frame = frame.astype(object)
        return cls(frame.reset_index(drop=True), source=source)

    # --- views -----------------------------------------------------------------
    @property
    def errors(self) -> pd.DataFrame:
        """Violations with severity ``"error"``."""
        return self.violations[self.violations["severity"] == "error"].reset_index(drop=True)

    @property
    def warnings(self) -> pd.DataFrame:
        """Violations with severity ``"warning"``."""
        return self.violations[self.violations["severity"] == "warning"].reset_index(drop=True)

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return bool((self.violations["severity"] != "error").all())

    def rules(self, severity: Severity | None = None) -> list[str]:
        """Sorted distinct rule ids that fired, optionally of one severity."""
        frame = self.violations
        if severity is not None:
            frame = frame[frame["severity"] == severity]
        return sorted(set(frame["rule"]))

    def __len__(self) -> int:
        return len(self.violations)

    def merge(self, other: ValidationReport) -> ValidationReport:
        """Return a report holding the violations of both reports."""
        both = pd.concat([self.violations, other.violations], ignore_index=True)
        return ValidationReport(both, source=self.source)

    def drop_rules(self, rules: Sequence[str]) -> ValidationReport:
        """Return a copy without the given rule ids (an explicit, recorded waiver)."""
        keep = ~self.violations["rule"].isin(list(rules))
        return ValidationReport(self.violations[keep].reset_index(drop=True), source=self.source)

    # --- output ----------------------------------------------------------------
    def format(self, severity: Severity | None = None, *, limit: int = 200) -> str:
        """Human-readable listing, one line per violation (at most `limit` lines)."""
        frame = self.violations
        if severity is not None:
            frame = frame[frame["severity"] == severity]
        n_err = int((frame["severity"] == "error").sum())
        n_warn = int((frame["severity"] == "warning").sum())
        parts = []
        if n_err:
            parts.append(f"{n_err} error{'s' if n_err != 1 else ''}")
        if n_warn:
            parts.append(f"{n_warn} warning{'s' if n_warn != 1 else ''}")
        head = f"{' and '.join(parts) or 'no problems'} in {self.source!r}"
        lines = [head]
        for rec in frame.head(limit).itertuples(index=False):
            lines.append("  " + _format_one(rec))
        if len(frame) > limit:
            lines.append(f"  ... and {len(frame) - limit} more (see .report.violations)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def raise_if_errors(self) -> None:
        """Raise ``DataValidationError`` listing every error, if there is any.

        Examples
        --------
        >>> ValidationReport.from_violations([]).raise_if_errors()  # nothing to raise
        """
        if not self.ok:
            raise DataValidationError(self)


def _row_key(row: Any) -> tuple[int, str, float]:
    """Sort key for source rows: none first, then line numbers, then 'table:row' labels."""
    if row is None or _isna(row):
        return (0, "", 0.0)
    if isinstance(row, int | float):
        return (1, "", float(row))
    text = str(row)
    name, _, number = text.rpartition(":")
    try:
        return (2, name, float(number))
    except ValueError:
        return (2, text, 0.0)


def _format_one(rec: Any) -> str:
    where = []
    if rec.patient is not None and not _isna(rec.patient):
        where.append(f"patient {rec.patient}")
    if rec.row is not None and not _isna(rec.row):
        where.append(f"row {rec.row}")
    if rec.column is not None and not _isna(rec.column):
        where.append(f"column {rec.column}")
    loc = ", ".join(where)
    if rec.value is not None and not _isna(rec.value):
        loc += f" (value {rec.value})"
    tag = f"[{rec.rule}]" if rec.severity == "error" else f"[{rec.rule} warning]"
    prefix = f"{tag} {loc}: " if loc else f"{tag} "
    return f"{prefix}{str(rec.message).rstrip('.')}. Fix: {rec.fix}"


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
