"""Validated run-time settings; the only reader of bayestwin's environment variables.

``BAYESTWIN_FAST=1`` shrinks draws and cohort sizes (notebooks in CI run this
way: same code path, smaller numbers).

Examples
--------
>>> isinstance(fast_mode(), bool)
True
"""

from __future__ import annotations

import os

__all__ = ["fast_mode"]


def fast_mode() -> bool:
    """True when ``BAYESTWIN_FAST=1`` asks for small, quick runs."""
    return os.environ.get("BAYESTWIN_FAST", "0") == "1"
