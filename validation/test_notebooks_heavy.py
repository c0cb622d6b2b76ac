"""The notebooks the default suite does not run (see tests/notebooks/notebook_runner.py), in fast mode."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("nbclient")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "notebooks"))
from notebook_runner import DEFAULT_SUITE, NOTEBOOKS, run_notebook

REST = [p for p in NOTEBOOKS if p.name not in DEFAULT_SUITE]


@pytest.mark.parametrize("path", REST, ids=[p.name for p in REST])
def test_notebook_runs(path: Path) -> None:
    run_notebook(path)
