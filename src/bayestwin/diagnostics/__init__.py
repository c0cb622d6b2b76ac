"""Convergence and calibration diagnostics on ArviZ InferenceData."""

from bayestwin.diagnostics.convergence import ConvergenceGate, ConvergenceReport, check_convergence

__all__ = ["ConvergenceGate", "ConvergenceReport", "check_convergence"]
