"""Optional dependencies: import them where used, fail with the extra to install.

Examples
--------
>>> require("json", extra="core").__name__
'json'
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from bayestwin.exceptions import MissingExtraError

__all__ = ["require"]


def require(module: str, *, extra: str) -> ModuleType:
    """Import `module` or raise ``MissingExtraError`` naming ``bayestwin[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"this feature needs {module!r}, which is not installed; install the extra with "
            f"pip install 'bayestwin[{extra}]'"
        ) from err


def require_all_deps() -> bool:
    """True when tests must fail rather than skip for a missing extra (CI sets it)."""
    return os.environ.get("BAYESTWIN_REQUIRE_ALL_DEPS") == "1"
