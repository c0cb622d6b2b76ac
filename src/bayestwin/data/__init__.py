"""Patient data: the canonical event table, readers, writers and validation.

Examples
--------
>>> from bayestwin.data import load_dataset
>>> load_dataset("theo_sd")
EventTable(source='nlmixr2data_theo_sd.csv', patients=12, rows=144, doses=12, observations=132, warnings=3)
"""

from bayestwin.data.append import append_events
from bayestwin.data.datasets import dataset_path, list_datasets, load_dataset
from bayestwin.data.event_table import EventTable, RowAccounting
from bayestwin.data.expand import expand_addl, time_after_dose
from bayestwin.data.fhir import read_fhir, read_fhir_plan
from bayestwin.data.ingest import timestamps as _timestamps  # noqa: F401  (registers Z rules)
from bayestwin.data.ingest.nonmem import read_nonmem, write_nonmem
from bayestwin.data.ingest.tidy import read_tidy
from bayestwin.data.report import ValidationReport, Violation
from bayestwin.data.rules import covariates as _c  # noqa: F401  (importing registers the rules)
from bayestwin.data.rules import doses as _d  # noqa: F401
from bayestwin.data.rules import events as _e  # noqa: F401
from bayestwin.data.rules import observations as _o  # noqa: F401
from bayestwin.data.validate import check_events, rule_table, validate

__all__ = [
    "EventTable",
    "RowAccounting",
    "ValidationReport",
    "Violation",
    "append_events",
    "check_events",
    "dataset_path",
    "expand_addl",
    "list_datasets",
    "load_dataset",
    "read_fhir",
    "read_fhir_plan",
    "read_nonmem",
    "read_tidy",
    "rule_table",
    "time_after_dose",
    "validate",
    "write_nonmem",
]
