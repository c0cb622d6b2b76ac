"""The FastAPI application of the decision-support service: :func:`create_app`.

Examples
--------
>>> import tempfile
>>> from bayestwin.service.settings import ServiceSettings
>>> app = create_app(ServiceSettings(store=tempfile.mkdtemp(), jwt_key="k" * 32), pseudonym_key="p" * 32)
>>> sorted(p for p in app.openapi()["paths"])[:2]
['/v1/health', '/v1/jobs/{job_id}']
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from bayestwin.service.errors import describe, install_handlers
from bayestwin.service.jobs import JobManager
from bayestwin.service.limits import BodySizeLimit, RateLimiter
from bayestwin.service.settings import ServiceSettings

__all__ = ["create_app"]

DESCRIPTION = """Bayesian digital twins of patients as a service: register model specs, fit populations,
create patients' twins and add their data (event rows or FHIR R4 Bundles), forecast with intervals, compare
treatment plans and read recommendation records. Every route but `/v1/health` and `/v1/ready` needs a bearer
JWT (roles clinician, modeler, service; an optional `patients` claim limits a token to those patients). See
docs/service.md."""


def create_app(settings: ServiceSettings, *, pseudonym_key: str | bytes | None = None) -> FastAPI:
    """The service app for `settings`; opens (and if missing creates) the store to check its keys at once.

    `pseudonym_key` overrides the store's ``BAYESTWIN_PSEUDONYM_KEY[_FILE]`` (tests and doctests only).
    """
    import bayestwin
    from bayestwin.service import routes_models, routes_twins
    from bayestwin.service.deps import ServiceState
    from bayestwin.store import TwinStore

    with TwinStore.open(settings.store, key=pseudonym_key, create=True, actor="bayestwin-service") as store:
        pseudonym = store.pseudonym  # pure HMAC: usable after the connection closes
    jobs = JobManager(workers=settings.job_workers, max_queued=settings.max_queued_jobs,
                      timeout_s=settings.job_timeout_s,
                      describe_error=lambda err: describe(err, rows_field="events")[1])  # a job's rows: merged events

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        yield
        jobs.shutdown()

    app = FastAPI(title="bayestwin decision-support service", version=bayestwin.__version__,
                  description=DESCRIPTION, lifespan=lifespan, docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json")
    app.state.service = ServiceState(settings=settings, limiter=RateLimiter(settings.rate_limit,
                                                                            settings.rate_window_s),
                                     jobs=jobs, pseudonym=pseudonym)
    app.include_router(routes_models.router)
    app.include_router(routes_twins.router)
    install_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    logging.getLogger("bayestwin.service").info("service ready on store %s", settings.store)
    return app
