"""Notebooks run top to bottom in fast mode (BAYESTWIN_FAST=1), one test each; every notebook is stored clean.

The default suite runs ``notebook_runner.DEFAULT_SUITE``; ``make validate`` runs the rest
(validation/test_notebooks_heavy.py).

The kernel is ipykernel's ``python3``: jupyter_client resolves its ``python`` command to
``sys.executable``, so the notebooks run in the interpreter running the tests (the project's venv).
Each notebook fits models with NUTS: a few minutes per notebook on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_runner import DEFAULT_SUITE, NOTEBOOKS, run_notebook  # noqa: E402

IN_SUITE = [p for p in NOTEBOOKS if p.name in DEFAULT_SUITE]


def test_every_notebook_is_run_somewhere() -> None:
    assert {p.name for p in NOTEBOOKS} >= DEFAULT_SUITE, "DEFAULT_SUITE names a notebook that does not exist"


def test_python3_kernel_is_this_interpreter() -> None:
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    assert km.format_kernel_cmd()[0] == sys.executable


def test_notebooks_are_stored_without_outputs() -> None:
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        stored = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not stored, f"{path.name}: clear the outputs of cells {stored} before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", IN_SUITE, ids=[p.name for p in IN_SUITE])
def test_notebook_runs(path: Path) -> None:
    run_notebook(path)
