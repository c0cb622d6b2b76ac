"""The declarative rule table: every check on patient data, with its id and fix.

Each rule is a value: an id, a severity, a one-line title, the fix a person
should apply, the stage it runs at and (for table-stage rules) a pure check
function that returns ``Violation`` objects.

Stages
------
``parse``
    Applied while reading a source (columns, cells, timestamps); the readers
    collect them, nothing raises halfway.
``table``
    Applied to the canonical event table, one pass over all rules.
``model``
    Applied when a model is attached (compartments, required covariates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from bayestwin.data.report import Severity, Violation

__all__ = ["RULES", "Rule", "declare", "iter_rules", "register", "rule", "rule_table"]

Stage = Literal["parse", "table", "model"]
Check = Callable[[Any, "Rule"], Iterable[Violation]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One validation rule.

    Examples
    --------
    >>> r = Rule("X999", "error", "an example", "Do the right thing.", "parse")
    >>> r.violation("value is 3", patient=1, row=2, column="AMT", value=3).fix
    'Do the right thing.'
    """

    id: str
    severity: Severity
    title: str
    fix: str
    stage: Stage
    check: Check | None = None

    def violation(
        self,
        message: str,
        *,
        patient: Any = None,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
        fix: str | None = None,
        severity: Severity | None = None,
    ) -> Violation:
        """Make a ``Violation`` of this rule at one place."""
        return Violation(
            rule=self.id,
            severity=severity or self.severity,
            message=message,
            fix=fix or self.fix,
            patient=patient,
            row=row,
            column=column,
            value=value,
        )


RULES: dict[str, Rule] = {}


def register(
    rule_id: str, severity: Severity, title: str, fix: str, stage: Stage = "table"
) -> Callable[[Check], Check]:
    """Decorator registering a table- or model-stage check under `rule_id`."""

    def wrap(check: Check) -> Check:
        _add(Rule(rule_id, severity, title, fix, stage, check))
        return check

    return wrap


def declare(rule_id: str, severity: Severity, title: str, fix: str, stage: Stage = "parse") -> Rule:
    """Register a rule that a reader applies itself (no check function); return it."""
    return _add(Rule(rule_id, severity, title, fix, stage, None))


def _add(new: Rule) -> Rule:
    if new.id in RULES:
        raise RuntimeError(f"validation rule id {new.id!r} is registered twice")
    RULES[new.id] = new
    return new


def rule(rule_id: str) -> Rule:
    """Look up a registered rule by id."""
    return RULES[rule_id]


def iter_rules(stage: Stage | None = None) -> Iterator[Rule]:
    """Registered rules in id order, optionally of one stage."""
    for key in sorted(RULES):
        if stage is None or RULES[key].stage == stage:
            yield RULES[key]


def rule_table() -> Any:
    """All registered rules as a pandas DataFrame (id, severity, stage, title, fix).

    Examples
    --------
    >>> import bayestwin.data  # registers every rule
    >>> table = rule_table()
    >>> list(table.columns)
    ['id', 'severity', 'stage', 'title', 'fix']
    """
    import pandas as pd

    return pd.DataFrame(
        [(r.id, r.severity, r.stage, r.title, r.fix) for r in iter_rules()],
        columns=["id", "severity", "stage", "title", "fix"],
    )
