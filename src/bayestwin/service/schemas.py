"""Request and response bodies of the service (pydantic): the OpenAPI document is generated from them.

Static bounds here (string lengths, numeric ranges) make malformed input a precise 422 naming the field;
the configurable per-request bounds (times, levels, plans, rows, draws) are checked by the routes against
:class:`~bayestwin.service.settings.ServiceSettings` and answered the same way.

Examples
--------
>>> ForecastIn(times=[1, 2, 4]).levels
[0.8, 0.95]
>>> EventRowsIn(rows=[{"ID": 1, "TIME": 0, "AMT": 320, "EVID": 1}], units={"time": "h"}).format
'rows'
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AppendIn", "CompareIn", "CompareOut", "ErrorOut", "EventRowsIn", "EventsOut", "FhirIn", "ForecastIn",
           "ForecastOut", "GateIn", "HealthOut", "HistoryOut", "JobOut", "PlanIn", "PopulationFitIn", "PopulationOut",
           "ReadyOut", "RecommendationIn", "RecordsOut", "SamplerIn", "SpecIn", "SpecOut", "TargetIn", "TwinCreateIn",
           "VersionOut"]

Name = Annotated[str, Field(min_length=1, max_length=200)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldError(_Strict):
    """One invalid field: where (``body.times[3]``), what was wrong and the kind of check."""

    field: str
    message: str
    type: str


class ErrorOut(_Strict):
    """Every error body: a short ``error``, a ``detail`` that says how to fix it, and per-field problems."""

    error: str
    detail: str
    errors: list[FieldError] | None = None


class SpecIn(_Strict):
    """A model spec in ``TwinSpec.to_dict()`` form (its structural model must be registered in bayestwin)."""

    spec: dict[str, Any]


class SpecOut(_Strict):
    """A registered spec: its id (the spec's content digest), name, structural model and parameters."""

    spec_id: str
    name: str
    model: str
    parameters: list[str]


class SamplerIn(_Strict):
    """NUTS settings of a fit (chains x draws is bounded by the service's ``max_draws``)."""

    chains: int = Field(4, ge=1, le=16)
    warmup: int = Field(1000, ge=1, le=20_000)
    draws: int = Field(1000, ge=1, le=20_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    init: Literal["optimize", "prior"] = "optimize"


class GateIn(_Strict):
    """The convergence gate (defaults: R-hat 1.01, ESS 400)."""

    max_rhat: float | None = Field(None, gt=1.0, le=2.0)
    min_ess: float | None = Field(None, ge=1.0, le=1e6)


class EventRowsIn(_Strict):
    """NONMEM-style event rows (one object per row: ID, TIME, AMT, DV, EVID, ... covariates) with their units."""

    format: Literal["rows"] = "rows"
    rows: list[dict[str, float | int | str | None]] = Field(min_length=1)
    units: dict[str, str] = Field(description='Units by column, e.g. {"time": "h", "amt": "mg", "dv": "mg/L"}.')
    evid_coding: Literal["nonmem", "rxode2"] = "nonmem"


class FhirIn(_Strict):
    """A FHIR R4 Bundle (Patient, MedicationAdministration, Observation) read by ``bayestwin.data.read_fhir``."""

    format: Literal["fhir"] = "fhir"
    bundle: dict[str, Any]
    observations: dict[str, tuple[int, str]] = Field(
        min_length=1, description='LOINC code -> [DVID, unit], e.g. {"4049-3": [1, "mg/L"]}.')
    dose_unit: str = "mg"
    routes: dict[str, int | str] | None = Field(None, description='Route -> CMT, e.g. {"oral": 1}.')


Data = Annotated[EventRowsIn | FhirIn, Field(discriminator="format")]


class PopulationFitIn(_Strict):
    """Fit (or refit: a new version) a population of a registered spec to a cohort."""

    spec_id: str = Field(min_length=1, max_length=100)
    data: Data
    sampler: SamplerIn = SamplerIn()
    gate: GateIn = GateIn()
    allow_failed_convergence: bool = False


class PopulationOut(_Strict):
    """A stored population version."""

    version: str
    spec_name: str | None = None
    spec_hash: str | None = None
    n_patients: int | None = None
    created_utc: str | None = None
    converged: bool | None = None


class TwinCreateIn(_Strict):
    """Create a patient's twin: fit it to the patient's events on a stored population (a background job)."""

    population: str = Field("latest", max_length=100, description="Population version (pop-...) or 'latest'.")
    data: Data
    sampler: SamplerIn = SamplerIn()
    gate: GateIn = GateIn()
    update_warmup: int = Field(200, ge=1, le=20_000)
    allow_failed_convergence: bool = False


class AppendIn(_Strict):
    """New events of the patient (rows or FHIR); the twin is updated (warm start unless ``cold``)."""

    data: Data
    cold: bool = False


class EventsOut(_Strict):
    """A checked event table (nothing stored): its digest, counts, warnings and rows."""

    patient: str
    digest: str
    rows: int
    doses: int
    observations: int
    warnings: list[str]
    table: list[dict[str, Any]]


class ForecastIn(_Strict):
    """Forecast intervals at `levels` and `times` (patient clock, in the spec's time unit)."""

    times: list[Finite] = Field(min_length=1)
    levels: list[float] = Field([0.8, 0.95], min_length=1)
    version: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    allow_failed_convergence: bool = False


class ForecastOut(_Strict):
    """The forecast (JSON schema ``bayestwin.forecast/1``), recorded with the twin version it came from."""

    patient: str
    version: int
    record: int
    status: str
    forecast: dict[str, Any]


class PlanIn(_Strict):
    """A treatment plan: ``repeat`` (dose every interval) or ``none`` (past doses only)."""

    name: Name
    kind: Literal["repeat", "none"] = "repeat"
    dose: Finite | None = Field(None, gt=0)
    interval: Finite | None = Field(None, gt=0)
    count: int | None = Field(None, ge=1, le=1000)
    start: Finite = 0.0
    duration: Finite = Field(0.0, ge=0)
    route: int | str = 0


class TargetIn(_Strict):
    """What to estimate: ``in_window`` P(lo <= y <= hi at `at` or the trough) or ``exceeds`` P(y > threshold)."""

    name: Name
    kind: Literal["in_window", "exceeds"]
    lo: float | None = None
    hi: float | None = None
    at: Finite | Literal["trough"] | None = None
    threshold: Finite | None = None
    output: str | None = None


class RecommendationIn(_Strict):
    """Record a recommendation: the plan chosen and the rule it was chosen by."""

    chosen: Name | None
    rule: str = Field(min_length=1, max_length=2000)


class CompareIn(_Strict):
    """Compare plans on the twin's whole posterior; optionally record the recommendation."""

    plans: list[PlanIn] = Field(min_length=1)
    targets: list[TargetIn] = Field(min_length=1)
    times: list[Finite] = Field(min_length=1)
    levels: list[float] = Field([0.8, 0.95], min_length=1)
    interval_draws: int = Field(1000, ge=10)
    version: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    recommend: RecommendationIn | None = None


class CompareOut(_Strict):
    """The comparison (``PlanComparison.to_dict()``) and the recommendation record's index if one was made."""

    patient: str
    version: int
    comparison: dict[str, Any]
    recommendation_record: int | None = None


class RecordsOut(_Strict):
    """Records of one twin version (newest last)."""

    patient: str
    version: int
    records: list[dict[str, Any]]


class VersionOut(_Strict):
    """One twin version in a patient's history."""

    version: int
    parent: int | None
    created_utc: str
    actor: str
    population_version: str | None
    converged: bool | None
    fit_mode: str | None
    data_hash: str
    records: int


class HistoryOut(_Strict):
    """A patient's twin versions, oldest first."""

    patient: str
    pseudonym: str
    versions: list[VersionOut]


class JobOut(_Strict):
    """A background job: status, progress, and where its result is."""

    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "timed_out"]
    progress: float
    message: str
    patient: str | None = None
    result_url: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class HealthOut(_Strict):
    """Liveness."""

    status: Literal["ok"]
    version: str


class ReadyOut(_Strict):
    """Readiness: the store opens, the job pool has room."""

    status: Literal["ready", "not ready"]
    detail: str
    jobs_busy: int
