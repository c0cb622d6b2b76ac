"""``fit_fleet`` on a Dask ``LocalCluster`` of 2 worker PROCESSES gives the local path's draws, bitwise (issue 9).

In ``make validate``: each worker process imports bayestwin and compiles the fleet program on its first chunk
(~1-2 min on 2 cores). The default suite runs the same comparison with in-process workers and checks that
every task survives Dask's serialisation (``tests/inference/test_fleet_dask.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inference"))
from test_fleet_dask import assert_same_draws, cluster_fleet, fleet_inputs, local_fleet  # noqa: F401 (fixtures)


def test_two_worker_processes_give_the_local_draws(fleet_inputs, local_fleet) -> None:  # noqa: F811
    remote, tasks = cluster_fleet(fleet_inputs, processes=True)
    assert_same_draws(remote, local_fleet)
    assert sum(tasks.values()) == 2  # both chunks ran in worker processes
