"""Error bodies: every error is ``{"error", "detail", "errors"?}``; no stack trace or internal path ever leaves.

:func:`describe` maps an exception to a status and body (the handlers and the job runner share it):
bad input 422 (data rule violations name the row and column of the request's rows), missing credentials
401, not allowed 403, unknown patient/version 404, a conflicting commit or failed convergence 409, limits
413/429, store trouble 503, anything else 500 with a reference to the server log. Details are scrubbed of
file-system paths.

Examples
--------
>>> from bayestwin.exceptions import InputError
>>> describe(InputError("times must be finite, see /srv/twins/x"))
(422, {'error': 'invalid input', 'detail': 'times must be finite, see <path>'})
>>> field_name(("body", "data", "rows", 3, "TIME"))
'body.data.rows[3].TIME'
"""

from __future__ import annotations

import logging
import numbers
import re
import uuid
from typing import Any

from bayestwin.exceptions import (
    ConvergenceError,
    DataValidationError,
    InputError,
    NotFittedError,
    PredictionError,
    ServiceApiError,
    ServiceAuthError,
    ServiceBusyError,
    ServiceForbiddenError,
    SpecError,
    StoreConflictError,
    StoreError,
    UnitError,
)

__all__ = ["describe", "field_name", "install_handlers", "scrub"]

log = logging.getLogger("bayestwin.service")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-~+@]+){2,}[\\/]?")
_MAX_FIELD_ERRORS = 50


def scrub(text: str) -> str:
    """`text` with file-system paths replaced by ``<path>``."""
    return _PATH.sub("<path>", text)


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as ``body.rows[3].TIME``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(err: BaseException, *, rows_field: str = "body.data.rows") -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for `err`."""
    if isinstance(err, ServiceApiError):
        body: dict[str, Any] = {"error": err.error, "detail": scrub(err.detail)}
        if err.errors:
            body["errors"] = err.errors
        return err.status, body
    if isinstance(err, ServiceAuthError):
        return 401, {"error": "not authenticated", "detail": str(err)}
    if isinstance(err, ServiceForbiddenError):
        return 403, {"error": "forbidden", "detail": str(err)}
    if isinstance(err, ServiceBusyError):
        return 429, {"error": "too many jobs", "detail": str(err)}
    if isinstance(err, DataValidationError):
        return 422, {"error": "invalid event data", "detail": scrub(_first_line(err)),
                     "errors": _violations(err, rows_field)}
    if isinstance(err, InputError | UnitError | SpecError):
        return 422, {"error": "invalid input", "detail": scrub(str(err))}
    if isinstance(err, PredictionError):
        return 422, {"error": "prediction failed", "detail": scrub(str(err))}
    if isinstance(err, StoreConflictError):
        return 409, {"error": "conflict", "detail": "another request committed a version of this patient first; "
                                                     "nothing was written: send the request again"}
    if isinstance(err, ConvergenceError | NotFittedError):
        return 409, {"error": "failed convergence", "detail": scrub(str(err))}
    if isinstance(err, StoreError):
        ref = _log(err)
        return 503, {"error": "store unavailable", "detail": f"the twin store could not complete the request "
                                                              f"(reference {ref} in the service log)"}
    ref = _log(err)
    return 500, {"error": "internal error", "detail": f"an unexpected error (reference {ref} in the service log)"}


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _violations(err: DataValidationError, rows_field: str) -> list[dict[str, str]]:
    frame = err.report.violations
    frame = frame[frame["severity"] == "error"] if "severity" in frame else frame
    out = []
    for rec in frame.head(_MAX_FIELD_ERRORS).to_dict("records"):
        row, column = rec.get("row"), rec.get("column")
        where = rows_field + (f"[{int(row)}]" if isinstance(row, numbers.Integral) else "")
        where += f".{column}" if column else ""
        out.append({"field": where, "message": scrub(f"{rec.get('rule')}: {rec.get('message')}. {rec.get('fix')}"),
                    "type": str(rec.get("rule"))})
    return out


def _log(err: BaseException) -> str:
    ref = uuid.uuid4().hex[:12]
    log.error("request failed (reference %s)", ref, exc_info=err)
    return ref


def install_handlers(app: Any) -> None:
    """Register the handlers on a FastAPI `app` (validation, HTTP, auth, domain and unexpected errors)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def respond(err: BaseException) -> JSONResponse:
        status, body = describe(err)
        headers = dict(getattr(err, "headers", None) or {})
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(body, status_code=status, headers=headers or None)

    async def validation(_request: Any, err: RequestValidationError) -> JSONResponse:
        errors = [{"field": field_name(e.get("loc", ())), "message": scrub(str(e.get("msg", ""))),
                   "type": str(e.get("type", ""))} for e in err.errors()[:_MAX_FIELD_ERRORS]]
        where = ", ".join(e["field"] for e in errors[:5])
        return JSONResponse({"error": "invalid request", "detail": f"the request does not match the API schema at "
                                                                   f"{where}; see 'errors' and docs/openapi.json",
                             "errors": errors}, status_code=422)

    async def http(_request: Any, err: HTTPException) -> JSONResponse:
        names = {404: "not found", 405: "method not allowed"}
        return JSONResponse({"error": names.get(err.status_code, "http error"), "detail": scrub(str(err.detail))},
                            status_code=err.status_code, headers=getattr(err, "headers", None))

    async def domain(_request: Any, err: Exception) -> JSONResponse:
        return respond(err)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, domain)
    for kind in (ServiceApiError, ServiceAuthError, ServiceForbiddenError, ServiceBusyError, DataValidationError,
                 InputError, UnitError, SpecError, PredictionError,
                 StoreError, ConvergenceError, NotFittedError):
        app.add_exception_handler(kind, domain)
