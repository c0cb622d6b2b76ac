"""Remote monitoring and early warning: vital-sign streams, a state-space twin per patient, alerts.

Sub-modules (one concept each): ``loinc`` (LOINC codes, UCUM units, impossible-value limits), ``streams`` and
``fhir`` (ingestion into the canonical stream frame; duplicates, late values and implausible values flagged, never
dropped), ``quality`` (the flag rules), ``recordings`` (the bundled NSRDB heart-rate recordings), ``simulate``
(documented cohort generator with injected deteriorations), ``rules`` (fixed-threshold NEWS2-style baseline),
``evaluate`` (detection delay, sensitivity, false alarms per patient-day, operating curves), and the Bayesian
state-space twin: ``kalman`` (exact filter of an Ornstein-Uhlenbeck deviation around a circadian baseline),
``particle`` (particle filter of the same model with Student-t noise and censoring at a bound, e.g. SpO2 at
100 %), ``model`` (hierarchical fit by NUTS), ``fit_policy`` (one refit of a failing fit, else the cohort is not
valid), ``signals`` and ``scoring`` (surprise, drift, threshold crossing), ``alerts`` (hysteresis, de-duplication,
JSON records), ``detector`` (one combined alert stream per patient), ``changepoint`` (a per-patient Bayesian
changepoint posterior over all signals) and ``twin`` (``MonitorTwin``). See
``docs/monitoring.md``.

Examples
--------
>>> from bayestwin.monitor import AlertPolicy
>>> policy = AlertPolicy(0.9)            # raise at P >= 0.9, clear below 0.45, one alert per 12 h
>>> (policy.clear_level, policy.dedup_h)
(0.45, 12.0)
"""

from bayestwin.monitor.alerts import Alert, AlertPolicy, advance_alerts, alert_table, alerts_from_scores, record_alerts
from bayestwin.monitor.changepoint import ChangepointPolicy, changepoint_alerts, changepoint_probability
from bayestwin.monitor.detector import PatientPolicy, combined_probability, patient_alerts
from bayestwin.monitor.evaluate import (
    AlertEvaluation,
    evaluate_alerts,
    matched_reduction,
    operating_curve,
    summary_table,
)
from bayestwin.monitor.fhir import read_fhir_streams
from bayestwin.monitor.fit_policy import CohortFits, FitPolicy, fit_cohort
from bayestwin.monitor.kalman import OUParams, filter_cohort, filter_series
from bayestwin.monitor.model import SignalFit, assumed_fit, fit_signal
from bayestwin.monitor.particle import Measurement, ParticleState, particle_filter, particle_filter_cohort
from bayestwin.monitor.recordings import load_nsrdb_heart_rate
from bayestwin.monitor.rules import deduplicate, news2_scores, threshold_alerts
from bayestwin.monitor.scoring import Crossing, Drift
from bayestwin.monitor.signals import crossing_probability, level_change_probability, surprise
from bayestwin.monitor.simulate import CohortConfig, SimulatedCohort, simulate_cohort
from bayestwin.monitor.streams import STREAM_COLUMNS, append_observations, flag_report, read_streams, usable
from bayestwin.monitor.structure import Structure, choose_structure
from bayestwin.monitor.twin import MonitorTwin

__all__ = [
    "STREAM_COLUMNS", "Alert", "AlertEvaluation", "AlertPolicy", "ChangepointPolicy", "CohortConfig", "CohortFits",
    "Crossing", "Drift", "FitPolicy", "Measurement", "MonitorTwin", "OUParams", "ParticleState", "PatientPolicy",
    "SignalFit", "SimulatedCohort", "Structure", "advance_alerts", "alert_table", "alerts_from_scores",
    "append_observations", "assumed_fit", "changepoint_alerts", "changepoint_probability", "choose_structure",
    "combined_probability", "crossing_probability", "deduplicate", "evaluate_alerts", "filter_cohort",
    "filter_series", "fit_cohort", "fit_signal", "flag_report", "level_change_probability", "load_nsrdb_heart_rate",
    "matched_reduction", "news2_scores", "operating_curve", "particle_filter", "particle_filter_cohort",
    "patient_alerts", "read_fhir_streams", "read_streams", "record_alerts", "simulate_cohort", "summary_table",
    "surprise", "threshold_alerts", "usable",
]
