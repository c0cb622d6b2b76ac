"""Test-suite configuration: strict mode (warnings are errors, see pyproject) and shared fixtures."""

from __future__ import annotations

import os

import pytest

from bayestwin._extras import require_all_deps


def importorskip_extra(module: str, extra: str):  # noqa: ANN201 - returns the module
    """Skip when an optional extra is missing — or fail, when CI demands every dependency."""
    if require_all_deps():
        import importlib

        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"needs the [{extra}] extra")


@pytest.fixture(autouse=True)
def _no_fast_mode_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests decide their own sizes; an exported BAYESTWIN_FAST must not change them silently.
    if "BAYESTWIN_FAST" in os.environ:
        monkeypatch.delenv("BAYESTWIN_FAST")
