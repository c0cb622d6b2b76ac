r"""Validation of patient data: one declarative rule table, all violations at once.

Rules live in ``bayestwin.data.rules`` (one module per family: time/events/
patients, doses, observations, covariates and units) and in the readers for
problems found while parsing. ``rule_table`` lists them all; every rule has
an id, a severity, a title and the fix a person should apply.

* ``validate`` reads a source and returns its ``ValidationReport``
  without raising, so a data manager sees every problem in one pass.
* ``check_events`` re-checks a table against a model (compartments,
  required covariates).
* ``report.raise_if_errors()`` raises ``DataValidationError``.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"ID": [1, 1, 1], "TIME": [0.0, 1.0, 0.5], "AMT": [100, 0, -5],
...                       "DV": [".", "3.2", "."], "EVID": [1, 0, 1]})
>>> report = validate(frame, units={"time": "h", "amt": "mg", "dv": "mg/L"})
>>> report.errors[["rule", "row", "column", "value"]].to_string(index=False)
'rule row column value\nD001   2    AMT    -5\nT002   2   TIME   0.5'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bayestwin.data.report import ValidationReport, Violation
from bayestwin.data.rules.base import RULES, iter_rules, rule_table

if TYPE_CHECKING:
    from bayestwin.data.event_table import EventTable
    from bayestwin.data.ingest.raw import Source
    from bayestwin.data.rules.context import RuleContext

__all__ = ["RULES", "check_events", "rule_table", "run_rules", "validate"]


def run_rules(ctx: RuleContext, *, stages: Iterable[str] = ("table", "model")) -> Iterator[Violation]:
    """Run every registered table- and model-stage rule on `ctx`."""
    _load_rules()
    wanted = set(stages)
    for r in iter_rules():
        if r.stage in wanted and r.check is not None:
            yield from r.check(ctx, r)


def validate(source: Source, **read_options: Any) -> ValidationReport:
    """Read `source` like ``read_nonmem`` and return its report.

    Bad data never raise here: every problem is in the report.

    Parameters
    ----------
    source : path, stream or DataFrame
        NONMEM-style data.
    **read_options
        Options of ``read_nonmem`` (``units`` is required).
    """
    from bayestwin.data.ingest.nonmem import nonmem_table

    _, report = nonmem_table(source, **read_options)
    return report


def check_events(
    table: EventTable,
    *,
    compartments: Mapping[int, str] | None = None,
    required_covariates: Iterable[str] = (),
    known_sd_outputs: Iterable[int] = (),
) -> ValidationReport:
    """Check a table against a model: compartments (E006), required covariates (C001), known SDs (O011).

    `known_sd_outputs` lists the DVIDs whose error model is ``known_sd``: each of their observations
    needs its SD in DVSD.

    Examples
    --------
    >>> from bayestwin.data import load_dataset
    >>> report = check_events(load_dataset("theo_sd"), compartments={1: "depot"})
    >>> report.rules(), len(report.errors)
    (['E006'], 132)
    """
    from bayestwin.data.rules.context import RuleContext

    _load_rules()
    f = table.frame
    ctx = RuleContext(frame=f, source_names=table.source_names, failed={}, units=table.units,
                      covariates=list(table.covariates), compartments=compartments,
                      required_covariates=frozenset(required_covariates),
                      known_sd_outputs=frozenset(int(k) for k in known_sd_outputs))
    checks = [RULES["E006"], RULES["C001"], RULES["O011"]]
    violations = [v for r in checks if r.check is not None for v in r.check(ctx, r)]
    return ValidationReport.from_violations(violations, source=table.source)


def _load_rules() -> None:
    # Importing the rule modules registers their rules.
    from bayestwin.data.rules import covariates, doses, events, observations  # noqa: F401
