"""What a table-stage rule sees: the candidate frame plus what the reader knew."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayestwin.data.columns import CANONICAL
from bayestwin.data.report import Violation
from bayestwin.data.rules.base import Rule

__all__ = ["RuleContext", "emit"]


@dataclass
class RuleContext:
    """Input of every table-stage check.

    Attributes
    ----------
    frame : pandas.DataFrame
        Canonical columns (float64, NaN where missing or unreadable) and
        covariates, indexed by source row, in source order.
    source_names : Mapping[str, str]
        Canonical column -> name in the source; absent columns are not keys.
    failed : Mapping[str, numpy.ndarray]
        Cells already reported as unreadable; rules skip them.
    units : Mapping[str, str]
        Declared units (canonical ``time``, ``amt``, ``dv`` and covariates).
    covariates : list of str
        Covariate columns.
    compartments : Mapping or None
        Compartments of an attached model: number -> name.
    required_covariates, static_covariates : frozenset of str
        Covariates that doses/observations need, and those constant per patient.
    known_sd_outputs : frozenset of int
        DVIDs of outputs whose error model takes each observation's SD from DVSD (``known_sd``).
    weight_column : str or None
        Covariate holding body weight, if known.
    """

    frame: pd.DataFrame
    source_names: Mapping[str, str]
    failed: Mapping[str, np.ndarray]
    units: Mapping[str, str]
    covariates: list[str]
    compartments: Mapping[int, str] | None = None
    required_covariates: frozenset[str] = frozenset()
    static_covariates: frozenset[str] = frozenset()
    known_sd_outputs: frozenset[int] = frozenset()
    weight_column: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def col(self, canonical: str) -> str:
        """Column name to show in messages: the source's spelling, else upper case."""
        return self.source_names.get(canonical, canonical.upper())

    def has(self, canonical: str) -> bool:
        """Whether the source had this canonical column."""
        return canonical in self.source_names

    def ok(self, canonical: str) -> np.ndarray:
        """Cells of `canonical` that parsed (not reported as unreadable)."""
        bad = self.failed.get(canonical)
        return np.ones(len(self.frame), dtype=bool) if bad is None else ~bad

    @property
    def is_dose(self) -> pd.Series:
        """Rows with EVID 1 or 4."""
        return self.frame["evid"].isin((1, 4))

    @property
    def is_obs(self) -> pd.Series:
        """Rows with EVID 0."""
        return self.frame["evid"] == 0


def emit(
    rule: Rule,
    ctx: RuleContext,
    mask: Any,
    column: str | None,
    message: Callable[[pd.Series], str],
    *,
    value: Callable[[pd.Series], Any] | None = None,
) -> Iterator[Violation]:
    """Yield one violation of `rule` per row where `mask` is true.

    `column` is canonical (shown with the source spelling) or a covariate name;
    `message` and `value` receive the frame row.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    shown = ctx.col(column) if column in CANONICAL else column
    sub = ctx.frame[mask]
    ids = sub["id"].tolist()  # not via iterrows, which would turn integer ids into floats
    for (label, row), pid in zip(sub.iterrows(), ids, strict=True):
        val = value(row) if value is not None else (row[column] if column in row.index else None)
        yield rule.violation(message(row), patient=pid, row=label, column=shown, value=_tidy(val))


def _tidy(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        f = float(value)
        return int(f) if f.is_integer() else f
    return value
