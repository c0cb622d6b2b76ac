"""Routes on one patient's twin: create, check and add data, forecast, compare plans, recommendations, history.

Every route is guarded by its action (role and the token's patient list) before the body is read, and
every request that reads or changes the patient's data appends a ``service.*`` record to the store's
audit trail with the token's subject as actor (commits by the background jobs are audited by the store
itself, with the same actor).

Examples
--------
>>> sorted({r.path for r in router.routes})[0]
'/v1/twins/{patient}'
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from bayestwin.exceptions import ServiceApiError
from bayestwin.service.auth import Principal
from bayestwin.service.authz import Action
from bayestwin.service.deps import audit, guard, state
from bayestwin.service.ops import append_job, forecast, open_store, read_data, require_twin, twin_job
from bayestwin.service.routes_models import CONFLICT, ERRORS, NOT_FOUND, job_out
from bayestwin.service.schemas import (
    AppendIn,
    CompareIn,
    CompareOut,
    EventRowsIn,
    EventsOut,
    FhirIn,
    ForecastIn,
    ForecastOut,
    HistoryOut,
    JobOut,
    RecordsOut,
    TwinCreateIn,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/twins", tags=["twins"])
PatientPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$",
                                  description="The patient's own id (as in the data's ID column).")]


def _bounded(name: str, values: list[Any], limit: int) -> None:
    if len(values) > limit:
        raise ServiceApiError(422, "too many values", f"{name} has {len(values)} entries; this service allows at most "
                              f"{limit} per request", errors=[{"field": name, "message": f"at most {limit} entries",
                              "type": "too_long"}])


def _levels(name: str, levels: list[float], limit: int) -> None:
    _bounded(name, levels, limit)
    bad = [p for p in levels if not 0 < p < 1]
    if bad:
        raise ServiceApiError(422, "invalid levels", f"{name} must be probabilities strictly between 0 and 1 (e.g. "
                              f"0.8, 0.95), got {bad}", errors=[{"field": name, "message": "must be in (0, 1)",
                              "type": "value_error"}])


@router.put("/{patient}", response_model=JobOut, status_code=202, responses=ERRORS | NOT_FOUND,
            summary="Create (or refit) a patient's twin on a population (background job)")
def put_twin(patient: PatientPath, body: TwinCreateIn, request: Request,
             who: Annotated[Principal, Depends(guard(Action.CREATE_TWIN))]) -> dict:
    """Fit the patient's twin to their events (rows or FHIR) on a stored population; a new version."""
    st = state(request)
    with open_store(st.settings, who.subject) as store:
        events = read_data(body.data, store, st.settings, patient=patient)
        audit(store, "create_twin", patient, data=events.digest(), population=body.population)
    work = twin_job(st.settings, who.subject, patient, events, population=body.population, sampler=body.sampler,
                    gate=body.gate, update_warmup=body.update_warmup, allow_failed=body.allow_failed_convergence)
    return job_out(st.jobs.submit("twin", owner=who.subject, patient=patient, work=work))


@router.post("/{patient}/data", response_model=JobOut, status_code=202, responses=ERRORS | NOT_FOUND,
             summary="Add event rows or a FHIR R4 Bundle to a twin and update it (background job)")
def post_data(patient: PatientPath, body: AppendIn, request: Request,
              who: Annotated[Principal, Depends(guard(Action.APPEND_DATA))]) -> dict:
    """The rows are checked now (422 names each bad row and column); the update runs as a job."""
    st = state(request)
    with open_store(st.settings, who.subject) as store:
        require_twin(store, patient)
        events = read_data(body.data, store, st.settings, patient=patient)
        audit(store, "append_data", patient, data=events.digest())
    work = append_job(st.settings, who.subject, patient, events, cold=body.cold)
    return job_out(st.jobs.submit("append", owner=who.subject, patient=patient, work=work))


@router.post("/{patient}/events/check", response_model=EventsOut, responses=ERRORS,
             summary="Check event rows or a FHIR Bundle and return the canonical event table (nothing stored)")
def check_events(patient: PatientPath, body: EventRowsIn | FhirIn, request: Request,
                 who: Annotated[Principal, Depends(guard(Action.CHECK_EVENTS))]) -> dict:
    """The event table the data would add, with its digest and warnings; nothing is stored."""
    from bayestwin.service.ops import jsonable

    st = state(request)
    with open_store(st.settings, who.subject) as store:
        table = read_data(body, store, st.settings, patient=patient, field="body")
        audit(store, "check_events", patient, data=table.digest())
    frame = table.frame.assign(id=str(patient))
    return {"patient": patient, "digest": table.digest(), "rows": len(table.frame), "doses": len(table.doses),
            "observations": len(table.observations), "warnings": sorted(table.report.rules()),
            "table": jsonable(frame.to_dict("records"))}


@router.post("/{patient}/forecast", response_model=ForecastOut, responses=ERRORS | NOT_FOUND | CONFLICT,
             summary="Forecast intervals at given levels and times (bayestwin.forecast/1)")
def post_forecast(patient: PatientPath, body: ForecastIn, request: Request,
                  who: Annotated[Principal, Depends(guard(Action.FORECAST))]) -> dict:
    """Forecast from the latest (or a given) version; the forecast is recorded with that version."""
    st = state(request)
    _bounded("body.times", body.times, st.settings.max_times)
    _levels("body.levels", body.levels, st.settings.max_levels)
    with open_store(st.settings, who.subject) as store:
        require_twin(store, patient, body.version)
        audit(store, "forecast", patient, times=len(body.times), levels=",".join(map(str, body.levels)))
        return forecast(store, patient, body.version, list(body.times), list(body.levels), body.seed,
                        body.allow_failed_convergence)


@router.post("/{patient}/compare", response_model=CompareOut, responses=ERRORS | NOT_FOUND | CONFLICT,
             summary="Compare treatment plans; optionally record the recommendation (clinician)")
def post_compare(patient: PatientPath, body: CompareIn, request: Request,
                 who: Annotated[Principal, Depends(guard(Action.COMPARE))]) -> dict:
    """P(target) under every plan on the twin's whole posterior, with Monte Carlo errors."""
    from bayestwin.service.decisions import compare

    st = state(request)
    _bounded("body.plans", body.plans, st.settings.max_plans)
    _bounded("body.targets", body.targets, st.settings.max_targets)
    _bounded("body.times", body.times, st.settings.max_times)
    _levels("body.levels", body.levels, st.settings.max_levels)
    with open_store(st.settings, who.subject) as store:
        require_twin(store, patient, body.version)
        audit(store, "compare", patient, plans=len(body.plans), targets=len(body.targets))
        return compare(store, patient, body, max_draws=st.settings.max_draws)


@router.get("/{patient}/recommendations", response_model=RecordsOut, responses=ERRORS | NOT_FOUND,
            summary="The recommendation records of a twin version (clinician)")
def get_recommendations(patient: PatientPath, request: Request,
                        who: Annotated[Principal, Depends(guard(Action.READ_RECOMMENDATION))],
                        version: Annotated[int | None, Query(ge=1, description="Twin version (default: the latest).")
                                           ] = None) -> dict:
    """Recommendation records, oldest first (the Recommendation JSON of ``bayestwin.decision``)."""
    from bayestwin.service.decisions import recommendations

    with open_store(state(request).settings, who.subject) as store:
        require_twin(store, patient, version)
        audit(store, "read_recommendations", patient, version=version or "latest")
        return recommendations(store, patient, version)


@router.get("/{patient}/history", response_model=HistoryOut, responses=ERRORS | NOT_FOUND,
            summary="A twin's versions, oldest first")
def get_history(patient: PatientPath, request: Request,
                who: Annotated[Principal, Depends(guard(Action.READ_HISTORY))]) -> dict:
    """Version, parent, time, actor, population, convergence and fit mode of every version."""
    import json

    with open_store(state(request).settings, who.subject) as store:
        require_twin(store, patient)
        audit(store, "history", patient)
        frame = store.history(patient)
        pseudo = store.pseudonym(patient)
    versions = []
    for rec in frame.to_dict("records"):
        diag = json.loads(rec["diagnostics"])
        versions.append({"version": int(rec["version"]), "parent": None if rec["parent"] is None
                         else int(rec["parent"]), "created_utc": str(rec["created_utc"]), "actor": rec["actor"],
                         "population_version": rec["population_version"],
                         "converged": diag.get("twin", {}).get("ok"), "fit_mode": diag.get("fit_mode"),
                         "data_hash": rec["data_hash"], "records": int(rec["n_records"])})
    return {"patient": patient, "pseudonym": pseudo, "versions": versions}
