"""Conformance checks for structural models (``check_model``, its simulated designs) and reference posteriors."""

from bayestwin.testing.centring import dense_mass_for, informed_parameters, shrinkage, with_design_centring
from bayestwin.testing.design import DEFAULT_TIMES, default_spec, simulate_cohort
from bayestwin.testing.harness import ALL_CHECKS, RECOVERY_SAMPLER, CheckReport, CheckResult, check_model
from bayestwin.testing.reference import compare_to_reference

__all__ = ["ALL_CHECKS", "DEFAULT_TIMES", "RECOVERY_SAMPLER", "CheckReport", "CheckResult", "check_model",
           "compare_to_reference", "default_spec", "dense_mass_for", "informed_parameters", "shrinkage",
           "simulate_cohort", "with_design_centring"]
