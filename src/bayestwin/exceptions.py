"""Every error and warning bayestwin raises, in one place.

Callers catch precisely (``except DataValidationError``) and readers find every
failure mode here. Each message says what was wrong, where (patient id, source
row, column, parameter) and how to fix it.

Examples
--------
>>> from bayestwin.exceptions import BayestwinError, UnitError
>>> issubclass(UnitError, BayestwinError)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - import only for type checkers
    from bayestwin.data.report import ValidationReport

__all__ = [
    "AuditError",
    "BayestwinError",
    "ConvergenceError",
    "ConvergenceWarning",
    "DataValidationError",
    "DataWarning",
    "InputError",
    "MissingExtraError",
    "NotFittedError",
    "PopulationMismatchError",
    "PredictionError",
    "ServiceApiError",
    "ServiceAuthError",
    "ServiceBusyError",
    "ServiceConfigError",
    "ServiceForbiddenError",
    "ServiceJobTimeoutError",
    "ServiceRequestError",
    "SpecError",
    "StoreConflictError",
    "StoreError",
    "StoreIntegrityError",
    "UnitError",
]


class BayestwinError(Exception):
    """Base class of every error bayestwin raises on purpose."""


class DataValidationError(BayestwinError, ValueError):
    """Patient data broke one or more validation rules.

    The exception carries the full ``ValidationReport``
    (``.report``) with one entry per problem, so that *all* problems in a file
    are reported at once rather than the first one only.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayestwin.data import read_nonmem
    >>> bad = pd.DataFrame({"ID": [1, 1], "TIME": [0.0, -1.0], "AMT": [100.0, 0.0],
    ...                     "DV": [".", "2.5"], "EVID": [1, 0]})
    >>> try:
    ...     read_nonmem(bad, units={"time": "h", "amt": "mg", "dv": "mg/L"})
    ... except DataValidationError as err:
    ...     print(err.report.errors[["rule", "row", "column"]].to_string(index=False))
    rule row column
    T001   1   TIME
    T002   1   TIME
    """

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.format(severity="error"))

    @property
    def violations(self) -> Any:
        """The error rows of the report as a pandas DataFrame."""
        return self.report.errors


class InputError(BayestwinError, ValueError):
    """An argument is wrong before any data is read: a missing file, an unknown patient, a malformed value.

    The command line exits with status 2 on it (see ``docs/cli.md``), as on invalid data.
    """


class UnitError(BayestwinError, ValueError):
    """A unit is unknown, missing, or incompatible with what a quantity needs."""


class SpecError(BayestwinError, ValueError):
    """A model specification is invalid or refers to something it does not define."""


class PopulationMismatchError(SpecError):
    """A twin was asked to condition on a population fitted with another spec (``Twin.rebase``).

    The twin's posterior is only defined under its own spec; fit a new twin with the
    other spec instead, or refit the population with the twin's spec.
    """


class ConvergenceError(BayestwinError, RuntimeError):
    """A fit failed its convergence diagnostics and its output was used anyway."""


class PredictionError(BayestwinError, RuntimeError):
    """The model's prediction is not finite for some posterior draws (a failed ODE solve, an overflow).

    Raised instead of summarising the draws that did solve: those are a biased subset (the failures sit in
    particular regions of the posterior), so an interval or a probability from them would look sound and not be.
    """


class StoreError(BayestwinError, OSError):
    """A twin store could not read, write or verify a stored object."""


class StoreConflictError(StoreError):
    """A version was committed on a parent that is no longer the patient's latest version.

    Another writer committed first (optimistic concurrency). Nothing was written; reload
    the patient's history, rebase the work on the new latest version and commit again.
    """


class StoreIntegrityError(StoreError):
    """A store failed its integrity check (missing or altered file, dangling row).

    ``.report`` holds the full ``IntegrityReport`` with one line per problem.
    """

    def __init__(self, message: str, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class AuditError(StoreError):
    """The hash-chained audit log was edited, truncated, reordered or had records inserted.

    ``.report`` holds the ``AuditReport`` naming the first bad record.
    """

    def __init__(self, message: str, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class NotFittedError(BayestwinError, ValueError, AttributeError):
    """A method that needs a fitted object was called before ``fit``."""


class MissingExtraError(BayestwinError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class DataWarning(UserWarning):
    """Data are usable but suspicious; the message says what to check."""


class ConvergenceWarning(UserWarning):
    """A fit failed its convergence gate; its output is marked failed and forecasts from it will raise."""


class ServiceConfigError(BayestwinError, ValueError):
    """The decision-support service is misconfigured (missing JWT key, bad limit, missing store).

    The message names the setting (environment variable or file field) and how to set it.
    """


class ServiceRequestError(BayestwinError):
    """The decision-support service answered a client's request with an error status.

    ``.status`` is the HTTP status code, ``.body`` the decoded JSON error body (``{"error": ...,
    "detail": ...}``), which names what was wrong and how to fix it, and ``.retry_after`` the seconds a
    429 asks the caller to wait (``None`` otherwise).
    """

    def __init__(self, message: str, status: int = 0, body: Any = None, retry_after: float | None = None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        super().__init__(message)


class ServiceAuthError(BayestwinError):
    """A request to the service has no valid credentials (HTTP 401); the message says what to fix."""


class ServiceForbiddenError(BayestwinError):
    """The caller is authenticated but its role or patient list does not allow the action (HTTP 403)."""


class ServiceBusyError(BayestwinError):
    """Too many background jobs wait already (HTTP 429); retry when some have finished."""


class ServiceJobTimeoutError(BayestwinError):
    """A background job passed its deadline; nothing more is committed."""


class ServiceApiError(BayestwinError):
    """An error the service answers with `status`, a short `error` name and a `detail` saying how to fix it.

    ``errors`` lists per-field problems (``{"field", "message", "type"}``); ``headers`` are sent with it.
    """

    def __init__(self, status: int, error: str, detail: str, *, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.error, self.detail, self.errors, self.headers = status, error, detail, errors, headers
        super().__init__(detail)
