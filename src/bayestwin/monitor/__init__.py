"""Remote monitoring and early warning: vital-sign streams, a state-space twin per patient, alerts.

Sub-modules (one concept each): ``streams`` (ingestion, LOINC/UCUM mapping, duplicates, late values,
plausibility flags), ``simulate`` (documented cohort generator with injected deteriorations),
``rules`` (fixed-threshold baseline, NEWS2-style), ``evaluate`` (detection delay, sensitivity, false
alarms per patient-day, operating curves), and the Bayesian state-space twin (model, filters,
signals, alerts).
"""

__all__: list[str] = []
