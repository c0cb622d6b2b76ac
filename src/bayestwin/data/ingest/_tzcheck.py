"""Per-patient checks on parsed timestamps: zone consistency, localisation and reference times.

Private helper of ``bayestwin.data.ingest.timestamps``, which documents the
rules of interpretation and declares the rules (``Z002``, ``Z003``, ``Z004``,
``Z006`` here, plus the per-cell issues of ``._tzparse``). Violations are
collected by a ``Reporter`` with their patient, source row, column and
cell value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayestwin.data.ingest._tzparse import AWARE, INVALID, NAIVE, NAT, localize, parse
from bayestwin.data.report import Violation
from bayestwin.data.rules.base import rule


def _py(x: Any) -> Any:
    """NumPy scalar -> Python scalar (cleaner reports)."""
    return x.item() if isinstance(x, np.generic) else x


def _plural(n: int, word: str) -> str:
    return f"{word}{'s' if n != 1 else ''}"


def _rows_text(labels: list[Any], limit: int = 5) -> str:
    shown = ", ".join(str(_py(x)) for x in labels[:limit])
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return f"{_plural(len(labels), 'row')} {shown}{more}"


def _group(pos: np.ndarray, codes: np.ndarray) -> dict[int, np.ndarray]:
    """Positions grouped by patient code, groups in order of first position, positions ascending."""
    if not len(pos):
        return {}
    order = np.argsort(codes[pos], kind="stable")
    sorted_pos, sorted_codes = pos[order], codes[pos][order]
    cut = np.flatnonzero(np.diff(sorted_codes)) + 1
    groups = {int(g[0]): p for g, p in zip(np.split(sorted_codes, cut), np.split(sorted_pos, cut), strict=True)}
    return dict(sorted(groups.items(), key=lambda kv: kv[1][0]))


class Reporter:
    """Collects violations located at source rows, with their patient, label, column and cell value."""

    def __init__(self, values: pd.Series, codes: np.ndarray, uniques: pd.Index, column: str) -> None:
        self.labels, self.cells, self.codes, self.uniques = values.index, values.iat, codes, uniques
        self.column = column
        self.found: list[tuple[int, str, Violation]] = []  # (position, rule id, violation), -1 = no row

    def patient(self, code: int) -> Any:
        return _py(self.uniques[code]) if code >= 0 else None

    def who(self, code: int) -> str:
        return f"patient {self.patient(code)}" if code >= 0 else "rows without a patient id"

    def rows(self, pos: np.ndarray) -> str:
        return _rows_text(list(self.labels[pos]))

    def at(self, rule_id: str, pos: int, message: str, fix: str | None = None, cell: bool = True) -> None:
        self.found.append((pos, rule_id, rule(rule_id).violation(
            message, patient=self.patient(int(self.codes[pos])), row=_py(self.labels[pos]),
            column=self.column, value=_py(self.cells[pos]) if cell else None, fix=fix,
        )))

    def unplaced(self, rule_id: str, message: str, patient: Any, value: Any, fix: str | None = None) -> None:
        self.found.append((-1, rule_id, rule(rule_id).violation(message, patient=patient, value=_py(value), fix=fix)))

    def sorted(self) -> list[Violation]:
        return [v for _, _, v in sorted(self.found, key=lambda item: (item[0], item[1]))]


def flag_mixed_kinds(rep: Reporter, kind: np.ndarray, n_pat: int) -> None:
    """Z003: aware and naive values in one file; flag the minority kind, once per patient."""
    n_aware, n_naive = int((kind == AWARE).sum()), int((kind == NAIVE).sum())
    if not (n_aware and n_naive):
        return
    minority, majority = (NAIVE, AWARE) if n_naive <= n_aware else (AWARE, NAIVE)
    has = {NAIVE: "no time zone", AWARE: "a time zone"}
    # Majority rows per patient code; index 0 counts rows without a patient id (code -1).
    own_majority = np.bincount(rep.codes[kind == majority] + 1, minlength=n_pat + 1)
    for code, pos in _group(np.flatnonzero(kind == minority), rep.codes).items():
        own, n = int(own_majority[code + 1]), len(pos)
        if own:
            msg = (f"{rep.who(code)} mixes timestamps with and without a time zone: {n} of {n + own} "
                   f"have {has[minority]} ({rep.rows(pos)})")
        else:
            msg = (f"{rep.who(code)}: {n} {_plural(n, 'timestamp')} with {has[minority]} "
                   f"({rep.rows(pos)}), while the file's other {max(n_aware, n_naive)} have {has[majority]}")
        rep.at("Z003", int(pos[0]), msg)
    kind[kind == minority] = INVALID


def resolve_naive(rep: Reporter, kind: np.ndarray, ns: np.ndarray, assume_timezone: str | None) -> None:
    """Naive values: one Z002 per patient without `assume_timezone`, else localise them (Z004 per row)."""
    naive = np.flatnonzero(kind == NAIVE)
    if not len(naive):
        return
    if assume_timezone is None:
        for code, pos in _group(naive, rep.codes).items():
            rep.at("Z002", int(pos[0]),
                   f"{rep.who(code)}: {len(pos)} {_plural(len(pos), 'timestamp')} without a time "
                   f"zone ({rep.rows(pos)}) and no assume_timezone was given")
        kind[naive] = INVALID
        return
    utc, good, issues = localize(naive, ns[naive], assume_timezone)
    kind[naive] = np.where(good, AWARE, INVALID)
    ns[naive[good]] = utc[good]
    for issue in issues:
        rep.at(issue.rule, issue.pos, issue.message, issue.fix)


def map_reference(
    reference: Mapping[Any, Any] | pd.Series, rep: Reporter, n_pat: int, assume_timezone: str | None
) -> np.ndarray:
    """Parse a patient id -> time mapping into reference ns per patient code (Z006 and zone rules)."""
    ref_ns = np.full(n_pat, NAT, np.int64)
    lookup: dict[Any, int] = {}
    for code in range(n_pat):
        lookup.setdefault(rep.patient(code), code)
    keys = [_py(k) for k, _ in reference.items()]
    vals = [v for _, v in reference.items()]
    parsed = parse(pd.Series(vals, dtype=object))
    problems = {issue.pos: issue for issue in parsed.issues}
    given = np.zeros(n_pat, bool)
    for i, (key, value) in enumerate(zip(keys, vals, strict=True)):
        code = lookup.get(key)
        if code is None or given[code]:
            why = f"who has no rows in column {rep.column}" if code is None else "given more than once"
            rep.unplaced("Z006", f"reference time given for patient {key}, {why}", key, value)
            continue
        given[code] = True
        what = f"reference time for patient {key}"
        if i in problems:
            issue = problems[i]
            rep.unplaced(issue.rule, f"{what}: {issue.message}", key, value, issue.fix)
        elif parsed.kind[i] == NAIVE and assume_timezone is None:
            rep.unplaced("Z002", f"{what} ({value}) has no time zone and no assume_timezone was given", key, value)
        elif parsed.kind[i] == NAIVE:
            utc, _, issues = localize(np.array([-1]), parsed.ns[i : i + 1], assume_timezone, what=f"{what}:")
            if issues:
                rep.unplaced("Z004", issues[0].message, key, value, issues[0].fix)
            else:
                ref_ns[code] = utc[0]
        elif parsed.kind[i] == AWARE:
            ref_ns[code] = parsed.ns[i]
    rows_per_patient = np.bincount(rep.codes[rep.codes >= 0], minlength=n_pat)
    present, first = np.unique(rep.codes, return_index=True)
    for code, p in zip(present.tolist(), first.tolist(), strict=True):
        if code >= 0 and not given[code]:
            n = int(rows_per_patient[code])
            rep.at("Z006", p, f"{rep.who(code)} has no reference time in `reference`, so its {n} "
                   f"{_plural(n, 'row')} cannot be converted to hours", cell=False)
    return ref_ns
