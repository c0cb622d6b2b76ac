"""Every notebook in notebooks/ runs top to bottom in fast mode (BAYESTWIN_FAST=1), one test each.

The kernel is ipykernel's ``python3``: jupyter_client resolves its ``python`` command to
``sys.executable``, so the notebooks run in the interpreter running the tests (the project's venv).
Each notebook fits models with NUTS: a few minutes per notebook on 2 cores.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


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
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    # tests/conftest.py removes BAYESTWIN_FAST from os.environ; the kernel gets its own environment.
    env = dict(os.environ, BAYESTWIN_FAST="1")
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)  # raises CellExecutionError, with the cell and its traceback, on any error
