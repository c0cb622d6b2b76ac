"""Run a notebook top to bottom in fast mode (``BAYESTWIN_FAST=1``): shared by tests/ and validation/.

Which notebooks the default suite runs: those whose fast mode costs about a minute of CPU or less
(``DEFAULT_SUITE``). The others fit several populations (03: theophylline population + twins; 05: pbcseq
and an eGFR cohort, ~140 s CPU; 06 and 07: ODE and stenosis fits) and run in ``make validate``
(validation/test_notebooks_heavy.py); their APIs are covered by unit tests in the default suite
(tests/decision, tests/models).
"""

from __future__ import annotations

import os
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
DEFAULT_SUITE = frozenset({"01_theophylline_twin.ipynb", "02_living_twin.ipynb", "04_oncology_tgi.ipynb"})


def run_notebook(path: Path) -> None:
    """Execute `path` in a python3 kernel with BAYESTWIN_FAST=1; raises CellExecutionError on any error."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    # tests/conftest.py removes BAYESTWIN_FAST from os.environ; the kernel gets its own environment.
    env = dict(os.environ, BAYESTWIN_FAST="1")
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
