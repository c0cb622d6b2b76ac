"""Conformance checks for structural models: ``check_model`` and the simulated designs it uses."""

from bayestwin.testing.design import DEFAULT_TIMES, default_spec, simulate_cohort
from bayestwin.testing.harness import ALL_CHECKS, CheckReport, CheckResult, check_model

__all__ = ["ALL_CHECKS", "DEFAULT_TIMES", "CheckReport", "CheckResult", "check_model", "default_spec",
           "simulate_cohort"]
