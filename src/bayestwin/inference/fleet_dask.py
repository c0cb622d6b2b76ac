"""Scale-out of ``fit_fleet`` beyond one machine: each chunk of patients is one task on a Dask worker.

``fit_fleet(..., client=client)`` with a ``dask.distributed.Client`` (the optional ``[dask]`` extra) sends every
chunk of patients to the cluster as one task. A worker runs the chunk's groups of ``lanes`` patients with the
same cached compiled program as the local path (``bayestwin.inference.fleet_kernel.fleet_program``, on the
worker's first JAX device): each worker process compiles it once, on its first chunk, and reuses it for every
later chunk of the same padded sizes. Each patient's draws depend only on the seed, the patient's position
in the cohort and ``lanes``, so they are the local path's for the same seed, whatever the number of workers,
the chunk size or the order in which they finish (``tests/inference/test_fleet_dask.py`` checks this
on a ``LocalCluster`` with 2 worker processes).

Workers must run the same versions of bayestwin, jax and jaxlib as the client (XLA's code generation decides the
last bits of every draw); ``docs/fleet.md`` ("Scale-out on Dask") says how to start such a cluster. Importing
this module on a worker imports bayestwin, which enables float64 before any array is made, as on the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bayestwin.exceptions import InputError
from bayestwin.inference.fleet_kernel import FleetConfig, FleetDraws, fleet_program, run_fleet
from bayestwin.spec import TwinSpec
from bayestwin.spec.structural import AbstractStructuralModel

__all__: list[str] = []


def run_chunk(spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str], n_components: int,
              config: FleetConfig, seed: int, data: tuple[Any, ...]) -> FleetDraws:
    """Fit one chunk of patients (``(index, prior, doses, obs)``, leading patient axis) in this process.

    The task a Dask worker runs: its groups of ``config.lanes`` patients one after another on this
    process's first device (a Dask worker thread per core gives the parallelism); the local path of
    ``fit_fleet`` calls the same compiled program. Returns numpy arrays (what travels back to the client).

    Examples
    --------
    >>> from dask.distributed import Client, LocalCluster                   # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))    # doctest: +SKIP
    >>> fleet = fit_fleet(spec, population, cohort, client=client)          # doctest: +SKIP
    """
    run = fleet_program(spec, model, features, n_components, config)
    return run_fleet(run, seed, data, lanes=config.lanes)


def map_chunks(client: Any, spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str],
               n_components: int, config: FleetConfig, seed: int,
               chunks: Sequence[tuple[Any, ...]]) -> list[FleetDraws]:
    """Run every chunk as one task on `client`'s cluster and return the results in chunk order.

    The static arguments (spec, model, configuration) are sent once with each task (they are small); a task
    that fails on a worker raises here with the worker's exception.

    Examples
    --------
    >>> map_chunks(object(), None, None, frozenset(), 1, None, 0, [])
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.InputError: client must be a dask.distributed.Client (with submit and gather), got object; \
start one with `from dask.distributed import Client; client = Client(address)` (pip install 'bayestwin[dask]')
    """
    if not (callable(getattr(client, "submit", None)) and callable(getattr(client, "gather", None))):
        raise InputError(f"client must be a dask.distributed.Client (with submit and gather), got "
                         f"{type(client).__name__}; start one with `from dask.distributed import Client; "
                         "client = Client(address)` (pip install 'bayestwin[dask]')")
    futures = [client.submit(run_chunk, spec, model, features, n_components, config, seed, chunk, pure=False)
               for chunk in chunks]
    return list(client.gather(futures))
