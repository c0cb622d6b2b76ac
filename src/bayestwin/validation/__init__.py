"""Evidence that bayestwin's posteriors and forecasts are calibrated: SBC and forecast calibration."""

from bayestwin.validation.sbc import SBCResult, misspecified_prior, run_sbc

__all__ = ["SBCResult", "misspecified_prior", "run_sbc"]
