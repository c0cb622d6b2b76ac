"""Run a notebook top to bottom in fast mode (``BAYESTWIN_FAST=1``): shared by tests/ and validation/.

Which notebooks the default suite runs: those whose fast mode costs about a minute of CPU or less
(``DEFAULT_SUITE``). The others fit several populations (03: theophylline population + twins; 05: pbcseq
and an eGFR cohort, ~140 s CPU; 06 and 07: ODE and stenosis fits) and run in ``make validate``
(validation/test_notebooks_heavy.py); their APIs are covered by unit tests in the default suite
(tests/decision, tests/models).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
DEFAULT_SUITE = frozenset({"01_theophylline_twin.ipynb", "02_living_twin.ipynb", "04_oncology_tgi.ipynb"})


def run_notebook(path: Path) -> None:
    """Execute `path` in a python3 kernel with BAYESTWIN_FAST=1; raises CellExecutionError on any error."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    # tests/conftest.py removes BAYESTWIN_FAST from os.environ; the kernel gets its own environment.
    env = dict(os.environ, BAYESTWIN_FAST="1", **_compilation_cache())
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)


_CACHE: dict[str, str] = {}


def _compilation_cache() -> dict[str, str]:
    """JAX settings that give every kernel started by this process one shared, fresh compilation cache.

    Each kernel starts cold, and notebooks 01 and 02 fit the same theophylline population with the same
    sampler: with the cache the second kernel loads those compiled programs (and the hundreds of small ones
    every fit compiles while it initialises) instead of compiling them again. The cache holds compiled code
    only, starts empty for each test process (no state carried between runs) and is removed at exit.
    A cache directory the caller set (``JAX_COMPILATION_CACHE_DIR``) is used as it is.
    """
    if not _CACHE:
        directory = os.environ.get("JAX_COMPILATION_CACHE_DIR")
        if not directory:
            directory = tempfile.mkdtemp(prefix="bayestwin-notebook-jax-cache-")
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _CACHE.update({"JAX_COMPILATION_CACHE_DIR": directory, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})
    return _CACHE
