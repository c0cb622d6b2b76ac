"""Test-suite configuration: strict mode (warnings are errors, see pyproject) and shared fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_fast_mode_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests decide their own sizes; an exported BAYESTWIN_FAST must not change them silently.
    if "BAYESTWIN_FAST" in os.environ:
        monkeypatch.delenv("BAYESTWIN_FAST")

