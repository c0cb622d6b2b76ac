"""``fit_fleet(..., client=...)``: a Dask cluster gives the local path's draws, exactly; so do any local
``workers`` (threads, one JAX device each) and any ``chunk_size``.

Each patient's random stream depends on the seed and its position in the cohort only, and every worker runs
the same compiled program as the local path, so the draws must be bitwise equal (same machine, same XLA).
Default suite: a ``LocalCluster`` of 2 in-process workers (threads: they reuse this process's compiled program,
so the check costs no compilation) and a round trip of every task through Dask's serialisation. The same check
on 2 worker PROCESSES (each compiles the program: ~1-2 min on 2 cores) is in ``make validate``:
``validation/test_fleet_dask_cluster.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import arviz as az
import numpy as np
import pytest

from bayestwin._extras import require_all_deps
from bayestwin.data import load_dataset
from bayestwin.diagnostics.convergence import check_convergence
from bayestwin.exceptions import ConvergenceWarning, InputError
from bayestwin.inference.fit import PopulationFit
from bayestwin.inference.fleet import fit_fleet
from bayestwin.inference.fleet_kernel import fleet_devices, fleet_trace_count
from bayestwin.inference.sampler import SamplerConfig

if not require_all_deps():  # CI sets BAYESTWIN_REQUIRE_ALL_DEPS=1: a missing extra fails there
    pytest.importorskip("distributed", reason="needs the [dask] extra")
from dask.distributed import Client, LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from model_specs.theophylline import spec as theophylline_spec

PATIENTS = [1, 3, 5, 12]  # theo_sd subjects: one dose and 11 samples each (one size bucket)
SAMPLER = SamplerConfig(chains=2, warmup=150, draws=150, seed=11)


@pytest.fixture(scope="module")
def fleet_inputs():
    spec = theophylline_spec()
    rng = np.random.default_rng(0)
    values = {"tv_ka": 1.57, "tv_cl": 2.76, "tv_v": 31.5, "omega_ka": 0.64, "omega_cl": 0.27, "omega_v": 0.13,
              "sigma_add": 0.69}  # around the nlmixr2 theophylline estimates
    post = {k: v * np.exp(0.1 * rng.normal(size=(2, 200))) for k, v in values.items()}
    idata = az.from_dict(posterior=post, sample_stats={"diverging": np.zeros((2, 200), bool),
                                                       "energy": rng.normal(size=(2, 200))})
    population = PopulationFit(spec=spec, idata=idata, diagnostics=check_convergence(idata), arrays=None,
                               data_digest="sha256:synthetic", fit_id="fit-synthetic", wall_time_s=0.0,
                               sampler=SamplerConfig())
    theo = load_dataset("theo_sd")
    cohort = theo.exclude(~theo.frame["id"].isin(PATIENTS), reason="not in this cohort")
    return spec, population, cohort


KW = {"sampler": SAMPLER, "lanes": 2, "chunk_size": 2, "n_components": 100, "override_convergence": True}


@pytest.fixture(scope="module")
def local_fleet(fleet_inputs):
    spec, population, cohort = fleet_inputs
    # chains this short fail the gate (ESS < 400): the local and the cluster paths must say so alike
    with pytest.warns(ConvergenceWarning, match="FAILED their convergence gate"):
        return fit_fleet(spec, population, cohort, **KW)


def cluster_fleet(fleet_inputs, *, processes: bool):
    """``fit_fleet`` on a fresh LocalCluster of 2 workers, and the number of tasks each worker ran."""
    spec, population, cohort = fleet_inputs
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.warns(ConvergenceWarning, match="FAILED their convergence gate"):
            fleet = fit_fleet(spec, population, cohort, client=client, **KW)
        tasks = client.run(lambda dask_worker: dask_worker.state.executed_count)
    return fleet, tasks


def assert_same_draws(remote, local) -> None:
    assert remote.patients == local.patients == tuple(PATIENTS)
    for name in local.idata.posterior.data_vars:
        np.testing.assert_array_equal(remote.idata.posterior[name].values, local.idata.posterior[name].values,
                                      err_msg=name)
    for name in ("diverging", "n_steps"):
        if name in local.idata.sample_stats:
            np.testing.assert_array_equal(remote.idata.sample_stats[name].values,
                                          local.idata.sample_stats[name].values, err_msg=name)
    assert remote.diagnostics.equals(local.diagnostics)


def test_in_process_dask_workers_give_the_local_draws(fleet_inputs, local_fleet) -> None:
    remote, tasks = cluster_fleet(fleet_inputs, processes=False)
    assert_same_draws(remote, local_fleet)
    assert sum(tasks.values()) == 2  # one task per chunk of 2 patients


def test_every_task_survives_dask_serialisation(fleet_inputs, local_fleet) -> None:
    """What a worker PROCESS receives: the task (function + arguments) after Dask's serialisation round trip."""
    from distributed.protocol import deserialize, serialize

    from bayestwin.inference import fleet_dask
    from bayestwin.inference.fleet_kernel import FleetConfig
    from bayestwin.models import get_model

    spec = fleet_inputs[0]
    arrays = local_fleet.arrays
    s = SAMPLER
    config = FleetConfig.from_sampler(s, lanes=2)
    task = (fleet_dask.run_chunk, spec, get_model(spec.model), arrays.features, 100, config, s.seed)
    back = deserialize(*serialize(task, serializers=["pickle"]))
    assert back[0] is fleet_dask.run_chunk  # by reference: a worker imports bayestwin (float64 on import)
    assert back[1].digest() == spec.digest() and back[2].name == spec.model and back[3:] == task[3:]


def test_any_workers_and_chunking_give_the_same_draws_from_one_trace(fleet_inputs, local_fleet,
                                                                   count_compiles) -> None:
    """Local threads (one device each) and chunk sizes change neither the draws nor the traced program.

    `local_fleet` ran with the default workers (one per core, 2 on the project's machines: one compilation
    on each of 2 devices, at once); workers=1 runs on device 0 only, workers=3 is capped at the 2 lane groups.
    """
    spec, population, cohort = fleet_inputs
    traces = fleet_trace_count()
    with count_compiles() as c:
        for workers, chunk_size in ((1, 4), (2, 2), (3, 4)):
            with pytest.warns(ConvergenceWarning, match="FAILED their convergence gate"):
                other = fit_fleet(spec, population, cohort, **(KW | {"workers": workers, "chunk_size": chunk_size}))
            assert_same_draws(other, local_fleet)
    assert fleet_trace_count() == traces
    assert c.n == (0 if fleet_devices() >= 2 else 1)  # device 1's compilation, unless local_fleet used it
    with pytest.raises(InputError, match="workers must be at least 1, got 0"):
        fit_fleet(spec, population, cohort, **(KW | {"workers": 0}))


def test_a_client_without_submit_is_refused(fleet_inputs) -> None:
    spec, population, cohort = fleet_inputs
    with pytest.raises(InputError, match=r"dask\.distributed\.Client"):
        fit_fleet(spec, population, cohort, sampler=SAMPLER, lanes=2, chunk_size=2, n_components=100,
                  override_convergence=True, client="tcp://scheduler:8786")
