"""Test-suite configuration: strict mode (warnings are errors, see pyproject) and shared fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_fast_mode_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests decide their own sizes; an exported BAYESTWIN_FAST must not change them silently.
    if "BAYESTWIN_FAST" in os.environ:
        monkeypatch.delenv("BAYESTWIN_FAST")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the marks into scheduling groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group tests for ``pytest -n N --dist loadgroup`` (``make test``): whole files, except the notebooks.

    A file's tests stay on one worker, so its module-scoped fixtures (a compiled program, a fitted twin) are
    built once; each notebook is its own group, because they are independent and each takes a minute or
    more: as one file they would run one after another on a single worker.
    """
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        path = item.path.as_posix()
        group = item.nodeid if "/notebooks/" in path and "test_notebook_runs" in item.name else path
        item.add_marker(pytest.mark.xdist_group(name=group))
