"""Evidence that bayestwin's posteriors and forecasts are calibrated: SBC (population and twin level), forecasts."""

from bayestwin.validation.bootstrap import cluster_bootstrap_coverage, cluster_bootstrap_interval
from bayestwin.validation.calibration import (
                                              LEVELS,
                                              CalibrationResult,
                                              calibration_by_group,
                                              crps_from_draws,
                                              leave_future_out,
)
from bayestwin.validation.conditioning import ConditioningCurve, conditioning_curve
from bayestwin.validation.folds import FoldPopulations, fit_fold_populations, fold_assignment
from bayestwin.validation.sbc import SBCResult, misspecified_prior, run_sbc
from bayestwin.validation.sbc_parts import combine_sbc, sbc_from_dict, sbc_to_dict
from bayestwin.validation.twin_sbc import run_twin_sbc, scale_bsv, synthetic_population, twin_design

__all__ = ["LEVELS", "CalibrationResult", "ConditioningCurve", "FoldPopulations", "SBCResult", "calibration_by_group",
           "cluster_bootstrap_coverage", "cluster_bootstrap_interval", "combine_sbc", "conditioning_curve",
           "crps_from_draws", "fit_fold_populations", "fold_assignment", "leave_future_out", "misspecified_prior",
           "run_sbc", "run_twin_sbc", "sbc_from_dict", "sbc_to_dict", "scale_bsv", "synthetic_population",
           "twin_design"]
