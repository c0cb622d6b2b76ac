"""Exit codes of the ``bayestwin`` command, and the guard that turns exceptions into them.

===  ===================================================================================================
0    success
1    an unexpected error (a bug, or a failure outside bayestwin's checks); ``-v`` shows the traceback.
     ``bayestwin validate`` also exits 1 when the file breaks a validation rule (it is a checker).
2    bad input: invalid data (``DataValidationError``), units (``UnitError``), spec (``SpecError``),
     a missing file, an unknown patient, a malformed option (``InputError``, usage errors)
3    failed convergence: the fit ran but failed its convergence gate (nothing was committed), or a
     forecast was asked of a twin or population that failed it; ``--allow-failed-convergence`` goes on
4    store error: ``StoreError`` and its kinds -- a conflicting commit (``StoreConflictError``), a damaged
     store (``StoreIntegrityError``), a broken audit chain (``AuditError``), a wrong or missing key
130  interrupted (Ctrl-C)
===  ===================================================================================================

Examples
--------
>>> from bayestwin.exceptions import StoreConflictError, UnitError
>>> exit_code(StoreConflictError("moved on")), exit_code(UnitError("mg/L?")), exit_code(KeyError("x"))
(4, 2, 1)
"""

from __future__ import annotations

import json
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

import typer

from bayestwin.exceptions import (
    ConvergenceError,
    DataValidationError,
    InputError,
    SpecError,
    StoreError,
    UnitError,
)

if TYPE_CHECKING:  # pragma: no cover
    from bayestwin.cli.output import Output


def _usage_error_types() -> tuple[type[Exception], ...]:
    """Usage-error classes: recent typer vendors click (``typer.TyperException``), older typer uses click's."""
    found: list[type[Exception]] = []
    if hasattr(typer, "TyperException"):
        found.append(typer.TyperException)
    try:
        from click import ClickException
    except ImportError:  # pragma: no cover - click is not installed beside a typer that vendors it
        pass
    else:
        found.append(ClickException)
    return tuple(found)


USAGE_ERRORS = _usage_error_types()

__all__ = ["BAD_INPUT", "EXIT_CODES_HELP", "NOT_CONVERGED", "OK", "STORE_ERROR", "UNEXPECTED", "USAGE_ERRORS",
           "exit_code", "guarded"]

OK, UNEXPECTED, BAD_INPUT, NOT_CONVERGED, STORE_ERROR, INTERRUPTED = 0, 1, 2, 3, 4, 130

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 unexpected error (-v for the traceback; `validate`: the file breaks a rule); "
    "2 bad input (data, units, spec, missing file, unknown patient, usage); "
    "3 failed convergence (nothing committed; --allow-failed-convergence goes on); "
    "4 store error (conflicting commit, damaged store, broken audit chain, wrong or missing key)."
)


def exit_code(err: BaseException) -> int:
    """The exit status for `err` (see the module docstring)."""
    if isinstance(err, KeyboardInterrupt | typer.Abort):
        return INTERRUPTED
    if isinstance(err, StoreError):
        return STORE_ERROR
    if isinstance(err, ConvergenceError):
        return NOT_CONVERGED
    bad_input = (DataValidationError, UnitError, SpecError, InputError, FileNotFoundError, IsADirectoryError)
    if isinstance(err, bad_input + USAGE_ERRORS):
        return BAD_INPUT
    return UNEXPECTED


_TITLES = {UNEXPECTED: "unexpected error", BAD_INPUT: "bad input", NOT_CONVERGED: "failed convergence",
           STORE_ERROR: "store error", INTERRUPTED: "interrupted"}


def error_document(err: BaseException, code: int) -> dict[str, Any]:
    """The JSON printed on stdout for a failed command run with ``--json``."""
    doc: dict[str, Any] = {"ok": False, "exit_code": code, "error": {"kind": _TITLES.get(code, "error"),
                                                                       "type": type(err).__name__,
                                                                       "message": str(err)}}
    report = getattr(err, "report", None)
    if isinstance(err, DataValidationError):
        doc["error"]["violations"] = json.loads(err.violations.to_json(orient="records"))
    elif is_dataclass(report) and not isinstance(report, type):
        doc["error"]["report"] = json.loads(json.dumps(asdict(report), default=str))
    return doc


@contextmanager
def guarded(out: Output, *, verbose: bool = False) -> Iterator[None]:
    """Run a command body: warnings go to stderr, exceptions become a message and an exit code.

    A ``typer.Exit`` passes through. Any other exception is reported (on stderr; with ``--json`` also
    as a JSON document on stdout) and re-raised as ``typer.Exit(exit_code(err))``.
    """

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        out.warning(f"{category.__name__}: {message}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show
            yield
    except typer.Exit:
        raise
    except BaseException as err:
        code = exit_code(err)
        if verbose or code == UNEXPECTED:
            detail = "".join(traceback.format_exception(err)) if verbose else ""
            if detail:
                out.err.print(detail, markup=False, highlight=False)
        out.fail(_TITLES.get(code, "error"), str(err) or type(err).__name__, code,
                 hint="rerun with -v for the traceback" if code == UNEXPECTED and not verbose else None)
        if out.json:
            out.emit(error_document(err, code))
        raise typer.Exit(code) from err
