"""Process-wide settings of one ``bayestwin`` invocation (set by the global options).

>>> set_verbose(False); verbose()
False
"""

from __future__ import annotations

__all__ = ["set_verbose", "verbose"]

_STATE = {"verbose": False}


def set_verbose(value: bool) -> None:
    """Record ``-v/--verbose`` (tracebacks on errors, INFO logging)."""
    _STATE["verbose"] = bool(value)


def verbose() -> bool:
    """Whether ``-v/--verbose`` was given."""
    return _STATE["verbose"]
