"""Routes without a patient: health, readiness, model specs, populations, jobs.

Examples
--------
>>> sorted(r.path for r in router.routes)[:3]
['/v1/health', '/v1/jobs/{job_id}', '/v1/populations']
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from bayestwin.exceptions import ServiceApiError, ServiceForbiddenError
from bayestwin.service.auth import Principal
from bayestwin.service.authz import Action, authorize
from bayestwin.service.deps import audit, guard, state
from bayestwin.service.jobs import Job
from bayestwin.service.ops import WRITE_LOCK, jsonable, load_spec, open_store, population_job, read_data, register_spec
from bayestwin.service.schemas import (
    ErrorOut,
    HealthOut,
    JobOut,
    PopulationFitIn,
    PopulationOut,
    ReadyOut,
    SpecIn,
    SpecOut,
)

__all__ = ["CONFLICT", "ERRORS", "NOT_FOUND", "job_out", "router"]

#: Error responses every authenticated route may give (documented in the OpenAPI document).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text} for code, text in (
        (401, "No or invalid bearer token"), (403, "The token's role or patient list does not allow this"),
        (413, "Request body too large"), (422, "Invalid request: the body names each bad field"),
        (429, "Rate limit (see Retry-After) or job queue full"), (500, "Unexpected error (reference in the log)"),
        (503, "The store is unavailable"))}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "Unknown resource"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorOut, "description": "A concurrent commit, or a twin "
                                                   "(or population) that failed its convergence gate"}}

router = APIRouter(prefix="/v1")


def job_out(job: Job) -> dict[str, Any]:
    """The public view of a job."""
    url = None
    if job.status == "succeeded" and job.result is not None:
        url = (f"/v1/populations/{job.result['version']}" if job.kind == "population"
               else f"/v1/twins/{job.patient}/history")
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": round(job.progress, 4),
            "message": job.message, "patient": job.patient, "result_url": url,
            "result": job.result if job.status == "succeeded" else None, "error": job.error}


@router.get("/health", response_model=HealthOut, tags=["service"], summary="Liveness (no token needed)")
def health() -> dict[str, Any]:
    """The service process answers."""
    import bayestwin

    return {"status": "ok", "version": bayestwin.__version__}


@router.get("/ready", response_model=ReadyOut, tags=["service"], summary="Readiness (no token needed)",
            responses={503: {"model": ReadyOut, "description": "Not ready: the store cannot be opened"}})
def ready(request: Request) -> Any:
    """The store opens and the job pool has room."""
    st = state(request)
    try:  # a fresh connection: the store must still open (path, keys, schema), not only a cached one
        from bayestwin.store import TwinStore

        with WRITE_LOCK:  # opening checks the schema under SQLite's write lock
            TwinStore.open(st.settings.store, create=False, actor="service.ready").close()
    except Exception:
        return JSONResponse({"status": "not ready", "detail": "the twin store cannot be opened; check the store "
                             "path and keys in the service log", "jobs_busy": st.jobs.busy()}, status_code=503)
    return {"status": "ready", "detail": "store open, job pool running", "jobs_busy": st.jobs.busy()}


@router.post("/specs", response_model=SpecOut, status_code=201, tags=["models"], responses=ERRORS,
             summary="Register a model spec (modeler)")
def post_spec(body: SpecIn, request: Request, who: Annotated[Principal, Depends(guard(Action.REGISTER_SPEC))]) -> dict:
    """Check a ``TwinSpec.to_dict()`` document and keep it under its digest (its ``spec_id``)."""
    st = state(request)
    with open_store(st.settings, who.subject) as store:
        spec = register_spec(st.settings, store, body.spec)
    return {"spec_id": spec.digest(), "name": spec.name, "model": spec.model,
            "parameters": list(spec.parameter_names)}


@router.get("/specs/{spec_id}", response_model=dict[str, Any], tags=["models"], responses=ERRORS | NOT_FOUND,
            summary="Read a registered spec")
def get_spec(request: Request, spec_id: Annotated[str, Path(max_length=100)],
             who: Annotated[Principal, Depends(guard(Action.READ_SPEC))]) -> dict:
    """The spec's ``TwinSpec.to_dict()`` document."""
    return load_spec(state(request).settings, spec_id).to_dict()


@router.post("/populations", response_model=JobOut, status_code=202, tags=["models"],
             responses=ERRORS | NOT_FOUND, summary="Fit or refit a population (modeler; background job)")
def post_population(body: PopulationFitIn, request: Request,
                    who: Annotated[Principal, Depends(guard(Action.FIT_POPULATION))]) -> dict:
    """Fit the registered spec to a cohort (rows or FHIR); poll the job; each fit is a new version."""
    st = state(request)
    spec = load_spec(st.settings, body.spec_id)
    with open_store(st.settings, who.subject) as store:
        cohort = read_data(body.data, store, st.settings, patient=None)
        audit(store, "fit_population", spec=body.spec_id, data=cohort.digest())
    work = population_job(st.settings, who.subject, spec, cohort, body.sampler, body.gate,
                          body.allow_failed_convergence)
    return job_out(st.jobs.submit("population", owner=who.subject, patient=None, work=work))


@router.get("/populations", response_model=list[PopulationOut], tags=["models"], responses=ERRORS,
            summary="List population versions")
def list_populations(request: Request, who: Annotated[Principal, Depends(guard(Action.READ_POPULATION))]) -> list:
    """Every stored population version, oldest first."""
    with open_store(state(request).settings, who.subject) as store:
        frame = store.population_history()
    return [_population(rec) for rec in frame.to_dict("records")]


@router.get("/populations/{version}", response_model=PopulationOut, tags=["models"], responses=ERRORS | NOT_FOUND,
            summary="Read a population version")
def get_population(request: Request, version: Annotated[str, Path(max_length=100)],
                   who: Annotated[Principal, Depends(guard(Action.READ_POPULATION))]) -> dict:
    """One stored population version."""
    with open_store(state(request).settings, who.subject) as store:
        frame = store.population_history()
    for rec in frame.to_dict("records"):
        if str(rec["version"]) == version:
            return _population(rec)
    raise ServiceApiError(404, "not found", f"no population version {version!r}; list them with GET /v1/populations")


def _population(rec: dict[str, Any]) -> dict[str, Any]:
    ok = rec.get("ok")
    n = rec.get("n_patients")
    return jsonable({"version": str(rec["version"]), "spec_name": rec.get("name"), "spec_hash": rec.get("spec_hash"),
                     "n_patients": None if n is None else int(n), "created_utc": str(rec.get("created_utc")),
                     "converged": None if ok is None else bool(ok)})


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=ERRORS | NOT_FOUND,
            summary="A background job's status, progress and result")
def get_job(request: Request, job_id: Annotated[str, Path(max_length=64)],
            who: Annotated[Principal, Depends(guard(Action.READ_JOB))]) -> dict:
    """Visible to the subject that started it, and to callers allowed to read its patient's history."""
    st = state(request)
    job = st.jobs.get(job_id)
    if job is None or not _may_see(who, job, st.pseudonym):
        raise ServiceApiError(404, "not found", f"no job {job_id!r} visible to this token")
    return job_out(job)


def _may_see(who: Principal, job: Job, pseudonym: Any) -> bool:
    if job.owner == who.subject and (job.patient is None or _allowed(who, job.patient, pseudonym)):
        return True
    return job.patient is not None and _allowed(who, job.patient, pseudonym)


def _allowed(who: Principal, patient: str, pseudonym: Any) -> bool:
    try:
        authorize(who, Action.READ_HISTORY, patient=patient, pseudonym=pseudonym)
    except ServiceForbiddenError:
        return False
    return True
