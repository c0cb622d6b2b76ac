"""Request dependencies: the service state, the authenticated principal (rate-limited), and per-action guards.

A guard (``Depends(guard(Action.FORECAST))``) runs before FastAPI validates the body, so a caller who may
not act on a patient gets 403 before anything of the request is parsed, read or fitted. A refused request
about a patient is itself audited (``service.denied``), with the caller as actor.

Examples
--------
>>> guard(Action.FORECAST).__name__
'guard_forecast'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bayestwin.exceptions import ServiceApiError, ServiceAuthError, ServiceForbiddenError
from bayestwin.service.auth import Principal, decode_token
from bayestwin.service.authz import Action, authorize
from bayestwin.service.jobs import JobManager
from bayestwin.service.limits import RateLimiter
from bayestwin.service.settings import ServiceSettings

__all__ = ["ServiceState", "guard", "principal", "state"]

bearer = HTTPBearer(auto_error=False, description="A JWT signed by the configured issuer (HS256 or RS256) with "
                                                  "claims sub, role (clinician | modeler | service), exp and "
                                                  "optionally patients (a list of patient ids).")


@dataclass
class ServiceState:
    """What every request shares: settings, the rate limiter, the job pool and the pseudonym function."""

    settings: ServiceSettings
    limiter: RateLimiter
    jobs: JobManager
    pseudonym: Callable[[str], str]


def state(request: Request) -> ServiceState:
    """The service state of the app serving `request`."""
    return request.app.state.service  # type: ignore[no-any-return]


def principal(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """The verified caller; 401 without a valid bearer token, 429 past the subject's rate limit."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ServiceAuthError("no bearer token: send the header 'Authorization: Bearer <JWT>'")
    st = state(request)
    who = decode_token(credentials.credentials, st.settings)
    wait = st.limiter.hit(who.subject)
    if wait is not None:
        raise ServiceApiError(429, "rate limited", f"more than {st.settings.rate_limit} requests in "
                              f"{st.settings.rate_window_s:g} s from subject {who.subject!r}; retry after the "
                              "Retry-After header's seconds", headers={"Retry-After": RateLimiter.retry_after(wait)})
    return who


def guard(action: Action) -> Callable[..., Principal]:
    """A dependency that authorises `action` (on the path's ``patient``, if any) and returns the principal."""

    def dependency(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
        patient = request.path_params.get("patient")
        st = state(request)
        try:
            authorize(who, action, patient=patient, pseudonym=st.pseudonym)
        except ServiceForbiddenError:
            if patient is not None:
                _audit_denial(st, who, action, patient)
            raise
        return who

    dependency.__name__ = f"guard_{action.name.lower()}"
    return dependency


def _audit_denial(st: ServiceState, who: Principal, action: Action, patient: str) -> None:
    from bayestwin.service.ops import WRITE_LOCK, open_store

    try:
        with open_store(st.settings, who.subject) as store, WRITE_LOCK:
            store.log_action("service.denied", patient=patient, inputs={"action": action.name.lower(),
                                                                        "role": who.role})
    except Exception:  # the refusal stands even if the audit write fails; the failure is logged
        import logging

        logging.getLogger("bayestwin.service").exception("could not audit a refused request")


def audit(store: Any, action: str, patient: str | None = None, **inputs: Any) -> None:
    """Append a ``service.<action>`` audit record (actor: the store's actor, i.e. the token's subject)."""
    from bayestwin.service.ops import WRITE_LOCK

    with WRITE_LOCK:
        store.log_action(f"service.{action}", patient=patient, inputs={k: str(v) for k, v in inputs.items()})
