"""Read a source into uninterpreted cells with the row numbers a person sees.

Nothing is converted here: cells stay as written (strings from files, Python
objects from DataFrames). Each row keeps its *source row*: the line number in
a file (the header is line 1) or the index label of a DataFrame. Blank and
comment rows are set aside with their reason so that every input row is
accounted for.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bayestwin.data.report import Violation
from bayestwin.data.rules.base import declare

__all__ = ["RawTable", "Source", "read_raw"]

Source = str | os.PathLike[str] | pd.DataFrame | io.TextIOBase

EMPTY = declare("S001", "error", "the source has no data rows",
                "Check that the right file was given and that it has a header and at least one row.")
RAGGED = declare("S004", "error", "a row has a different number of fields than the header",
                 "Look for an unquoted comma (e.g. '1,5' as a decimal) or a missing field on that line.")
NO_NAME = declare("S006", "error", "a column has an empty name in the header",
                  "Give every column a name in the header row, or delete the empty column.")


@dataclass
class RawTable:
    """Cells of a source as written, keyed by source row.

    Attributes
    ----------
    header : list of str
        Column names as written (may contain duplicates; they are reported later).
    rows : list of list
        Cell values of the kept rows, one list per row, aligned with `header`.
    row_labels : list of int
        Source row of each kept row.
    rows_in : int
        Number of data rows in the source (kept + set aside).
    set_aside : list of (row, reason)
        Blank and comment rows that were not read, with the reason.
    violations : list of Violation
        Structural problems found while reading.
    source : str
        Display name of the source.
    """

    header: list[str]
    rows: list[list[Any]]
    row_labels: list[Any]
    rows_in: int
    source: str
    set_aside: list[tuple[Any, str]] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    def column(self, position: int) -> list[Any]:
        """Cells of the column at `position`, one per kept row."""
        return [r[position] for r in self.rows]


def _is_blank(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, str):
        return cell.strip() in {""}
    try:
        return bool(pd.isna(cell))
    except (TypeError, ValueError):
        return False


def _is_comment(cells: Sequence[Any], header: Sequence[str], comment: str) -> bool:
    first = cells[0] if cells else None
    if isinstance(first, str) and first.lstrip().startswith(comment):
        return True
    # NONMEM convention: a column named C whose value is "C" marks a commented-out record.
    for name, cell in zip(header, cells, strict=False):
        if name.strip().upper() == "C" and isinstance(cell, str) and cell.strip().upper() == "C":
            return True
    return False


def read_raw(source: Source, *, sep: str | None = None, comment: str = "#") -> RawTable:
    r"""Read `source` (CSV path, text stream or DataFrame) into a ``RawTable``.

    Parameters
    ----------
    source : path, text stream or pandas.DataFrame
        A CSV file (UTF-8, optional byte-order mark) or an in-memory frame.
    sep : str, optional
        Field separator; by default sniffed from the header among ``, ; \t``.
    comment : str
        Rows whose first cell starts with this text are comment rows.

    Examples
    --------
    >>> raw = read_raw(io.StringIO("ID,TIME,DV\n1,0,.\n\n# note\n1,1,2.5\n"))
    >>> raw.row_labels, raw.set_aside
    ([2, 5], [(3, 'blank row'), (4, 'comment row')])
    """
    if isinstance(source, pd.DataFrame):
        return _read_frame(source, comment)
    name = "<stream>"
    if isinstance(source, io.TextIOBase):
        text = source.read().removeprefix("\ufeff")
    else:
        path = Path(source)
        name = path.name
        text = path.read_text(encoding="utf-8-sig")
    return _read_text(text, name, sep, comment)


def _read_text(text: str, name: str, sep: str | None, comment: str) -> RawTable:
    lines = text.splitlines(keepends=True)
    first = next((ln for ln in lines if ln.strip()), "")
    if sep is None:
        counts = {s: first.count(s) for s in (",", ";", "\t")}
        sep = max(counts, key=lambda s: counts[s]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    header: list[str] | None = None
    rows: list[list[Any]] = []
    labels: list[Any] = []
    set_aside: list[tuple[Any, str]] = []
    violations: list[Violation] = []
    rows_in = 0
    start_line = 1
    for record in reader:
        line = start_line
        start_line = reader.line_num + 1
        if header is None:
            if not any(c.strip() for c in record):
                continue  # leading blank lines before the header
            header = [c.strip() for c in record]
            for pos, col in enumerate(header):
                if not col:
                    violations.append(NO_NAME.violation(
                        f"column {pos + 1} of the header has no name", row=line, column=f"#{pos + 1}"))
            continue
        rows_in += 1
        if all(_is_blank(c) for c in record):
            set_aside.append((line, "blank row"))
            continue
        if _is_comment(record, header, comment):
            set_aside.append((line, "comment row"))
            continue
        if len(record) != len(header):
            violations.append(RAGGED.violation(
                f"row has {len(record)} fields but the header has {len(header)}", row=line,
                value=sep.join(record)[:60]))
            set_aside.append((line, "unreadable row (field count)"))
            continue
        rows.append(record)
        labels.append(line)
    if header is None:
        header = []
    if not rows and not any(v.rule == "S004" for v in violations):
        violations.append(EMPTY.violation(f"{name!r} has no data rows"))
    return RawTable(header, rows, labels, rows_in, name, set_aside, violations)


def _read_frame(frame: pd.DataFrame, comment: str) -> RawTable:
    header = [str(c) for c in frame.columns]
    violations: list[Violation] = []
    for pos, col in enumerate(header):
        if not col.strip():
            violations.append(NO_NAME.violation(f"column {pos + 1} has no name", column=f"#{pos + 1}"))
    positional = frame.index.nlevels > 1 or not frame.index.is_unique
    labels_all = list(range(len(frame))) if positional else list(frame.index)
    rows: list[list[Any]] = []
    labels: list[Any] = []
    set_aside: list[tuple[Any, str]] = []
    for label, values in zip(labels_all, frame.itertuples(index=False, name=None), strict=True):
        cells = list(values)
        if all(_is_blank(c) for c in cells):
            set_aside.append((label, "blank row"))
        elif _is_comment(cells, header, comment):
            set_aside.append((label, "comment row"))
        else:
            rows.append(cells)
            labels.append(label)
    if not rows:
        violations.append(EMPTY.violation("the DataFrame has no data rows"))
    return RawTable(header, rows, labels, len(frame), "<DataFrame>", set_aside, violations)
