"""Validated run-time settings; the only reader of bayestwin's environment variables.

``BAYESTWIN_FAST=1`` shrinks draws and cohort sizes (notebooks in CI run this
way: same code path, smaller numbers).

Examples
--------
>>> isinstance(fast_mode(), bool)
True
"""

from __future__ import annotations

import importlib.metadata as md
import os

__all__ = ["fast_mode", "software_versions"]


def fast_mode() -> bool:
    """True when ``BAYESTWIN_FAST=1`` asks for small, quick runs."""
    return os.environ.get("BAYESTWIN_FAST", "0") == "1"


def software_versions() -> dict[str, str]:
    """Installed versions of bayestwin, jax, numpyro and arviz, for a result's provenance record.

    Read from the packages' metadata (nothing is imported); ``"unknown"`` where a package has none.

    >>> sorted(software_versions())
    ['arviz', 'bayestwin', 'jax', 'numpyro']
    """
    out = {}
    for name in ("bayestwin", "jax", "numpyro", "arviz"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:  # pragma: no cover - editable installs always have metadata
            out[name] = "unknown"
    return out
