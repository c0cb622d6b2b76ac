"""Fleets of patient twins: N independent twin posteriors in one compiled call, chunked to bound memory.

``fit_fleet(spec, population, cohort)`` gives every patient of `cohort` the posterior ``Twin.fit`` would
give them -- the population mixture prior of ``bayestwin.inference.individual`` (``n_components`` draws of
the population posterior, the patient's covariates applied) times the patient's own likelihood -- with
each patient's chains adapting their own step size and mass matrix (``bayestwin.inference.fleet_kernel``).

Patients are padded to one size bucket (``cohort_arrays``) and run in groups of ``lanes`` patients (the
last group padded with copies, which are discarded), one group per compiled call, so the compiled program
depends only on (lanes, dose slots, observation slots): a second cohort of the same padded sizes, of any
number of patients, compiles nothing. ``workers`` threads (default: one per core) each drive one JAX device
and take the next group as soon as their last is done (``fleet_kernel.run_fleet``). Each patient's draws
depend on the seed, its position in the cohort and ``lanes`` only: bitwise the same for any ``workers``,
``chunk_size`` or Dask cluster.

Every patient passes the project's convergence gate on its own (R-hat, bulk and tail ESS, divergences,
E-BFMI over the latent parameters with BSV, as ``Twin.fit``); patients that fail are listed in a
``ConvergenceWarning`` and in ``FleetFit.failed``, and ``FleetFit.require_converged`` raises naming them.
``bayestwin.twin_fleet.fleet_twin`` turns one patient's result into a fitted ``Twin`` (for forecasts and
decisions) without refitting.

Examples
--------
>>> from bayestwin.data import load_dataset
>>> fleet = fit_fleet(spec, population, load_dataset("theo_sd"))  # doctest: +SKIP
>>> fleet.diagnostics[["max_rhat", "min_ess_bulk", "divergences", "ok"]]  # doctest: +SKIP
>>> fleet.idata.posterior["cl"].dims  # doctest: +SKIP
('chain', 'draw', 'patient')
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import arviz as az
import jax
import numpy as np
import pandas as pd

from bayestwin.data.event_table import EventTable
from bayestwin.diagnostics.convergence import ConvergenceGate
from bayestwin.diagnostics.fleet_gate import fleet_diagnostics, format_failures
from bayestwin.dynamics.events import bucket_size
from bayestwin.exceptions import ConvergenceError, ConvergenceWarning, InputError, SpecError
from bayestwin.inference.arrays import SEGMENT_STARTS, CohortArrays, cohort_arrays
from bayestwin.inference.fit import PopulationFit
from bayestwin.inference.fleet_dask import map_chunks
from bayestwin.inference.fleet_kernel import (
    FleetConfig,
    fleet_devices,
    fleet_program,
    quadratic_form,
    run_fleet,
    sufficient_statistics_apply,
)
from bayestwin.inference.individual import mixture_scaling, population_prior
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.models.registry import get_model
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["FleetFit", "chunk_patients", "fit_fleet", "fleet_diagnostics"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetFit:
    """Posteriors of N patient twins, labelled by patient, with each patient's convergence verdict.

    Attributes
    ----------
    spec, population : TwinSpec, PopulationFit
        The model and the population posterior every twin is conditioned on.
    idata : arviz.InferenceData
        ``posterior``: every structural parameter, residual SD and ``component`` with dims
        ``(chain, draw, patient)`` (units in ``attrs``); ``sample_stats``: ``diverging``, ``energy``,
        ``num_steps`` with the same dims.
    diagnostics : pandas.DataFrame
        One row per patient (index ``patient``): ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``,
        ``divergences``, ``min_bfmi``, ``ok`` and ``failures`` (text; empty when ok).
    arrays : CohortArrays
        The padded data the twins saw.
    cohort : EventTable
        The fitted events.
    warm : dict of str to numpy.ndarray
        Final sampler state per patient: ``positions`` (patient, chain, d), ``step_size`` (patient, chain),
        ``inverse_mass_matrix`` (patient, chain, d[, d]) -- what ``Twin.update`` warm-starts from.
    sampler, gate, n_components, chunk_size, lanes :
        The settings used.
    wall_time_s : float
        Wall time of the compiled calls (compilation included when it happened).
    """

    spec: TwinSpec
    population: PopulationFit
    idata: az.InferenceData
    diagnostics: pd.DataFrame
    arrays: CohortArrays
    cohort: EventTable
    warm: dict[str, np.ndarray]
    sampler: SamplerConfig
    gate: ConvergenceGate
    n_components: int
    chunk_size: int
    lanes: int
    wall_time_s: float
    population_overridden: bool = False

    @property
    def patients(self) -> tuple[Any, ...]:
        """Patient ids, in cohort order (the ``patient`` dimension)."""
        return self.arrays.patients

    @property
    def ok(self) -> bool:
        """True when every patient's twin passed the convergence gate."""
        return bool(self.diagnostics["ok"].all())

    @property
    def failed(self) -> list[Any]:
        """Ids of the patients whose twin failed the convergence gate."""
        return list(self.diagnostics.index[~self.diagnostics["ok"]])

    def require_converged(self, *, override: bool = False) -> None:
        """Raise ``ConvergenceError`` naming every failed patient, unless `override` is true."""
        if self.failed and not override:
            raise ConvergenceError(f"{len(self.failed)} of {len(self.patients)} twins failed their convergence gate:"
                                   f"\n{format_failures(self.diagnostics)}\nRefit those patients with more draws "
                                   "(fit_fleet on their events, or Twin.fit), or pass override=True.")

    def patient_posterior(self, patient: Any) -> az.InferenceData:
        """One patient's posterior and sample stats, dims ``(chain, draw)``: the layout of ``Twin.idata_``."""
        i = self._index(patient)
        post = self.idata.posterior.isel(patient=i, drop=True)
        stats = self.idata.sample_stats.isel(patient=i, drop=True)[["diverging", "energy"]]
        out = az.from_dict(posterior={k: v.to_numpy() for k, v in post.data_vars.items()},
                           sample_stats={k: v.to_numpy() for k, v in stats.data_vars.items()})
        for name in self.spec.parameter_names:
            out.posterior[name].attrs["unit"] = post[name].attrs.get("unit", "")
        return out

    def _index(self, patient: Any) -> int:
        for i, pid in enumerate(self.patients):
            if pid == patient:
                return i
        raise InputError(f"patient {patient!r} is not in this fleet; its patients are {list(self.patients)[:10]}"
                         f"{' ...' if len(self.patients) > 10 else ''}")

    def __repr__(self) -> str:
        n_bad = len(self.failed)
        verdict = "all passed" if not n_bad else f"{n_bad} FAILED: {self.failed[:5]}{' ...' if n_bad > 5 else ''}"
        return f"FleetFit(spec={self.spec.name!r}, patients={len(self.patients)}, convergence {verdict})"


def chunk_patients(n_patients: int, *, chains: int, draws: int, n_components: int, n_obs: int, n_bsv: int,
                   memory_mb: float = 1024.0, lanes: int = 8, most: int = 256) -> int:
    """Patients per chunk: the cohort in equal chunks of at most `most` patients and the memory bound.

    A chunk is one Dask task (``fit_fleet(..., client=...)``); it changes neither the compiled program nor
    the draws. Locally the patients in flight are `workers` groups of `lanes`, whatever the chunk.

    The memory estimate (bytes per patient): kept draws and statistics ``chains x draws x (n_bsv + 5) x 8``,
    the mixture prior ``n_components x (n_bsv**2 * 2 + 2 n_bsv + 5) x 8``, and the live intermediates of the
    lockstep gradient ``chains x n_components x (n_obs + n_bsv) x 8 x 6`` (values, tangents and residuals
    of the mixture terms). The cohort is split into as few chunks as these bounds allow, of equal size
    rounded up to a multiple of `lanes` (the last chunk is padded with copies of a patient: wasted work).

    Examples
    --------
    >>> chunk_patients(200, chains=4, draws=1000, n_components=200, n_obs=12, n_bsv=3)
    200
    >>> chunk_patients(2000, chains=4, draws=1000, n_components=200, n_obs=12, n_bsv=3)
    256
    >>> chunk_patients(2000, chains=4, draws=1000, n_components=200, n_obs=12, n_bsv=3, memory_mb=64)
    72
    """
    per_patient = 8 * (chains * draws * (n_bsv + 5) + n_components * (2 * n_bsv**2 + 2 * n_bsv + 5)
                       + 6 * chains * n_components * (n_obs + n_bsv))
    bound = max(lanes, min(most, int(memory_mb * 2**20 // per_patient)) // lanes * lanes)
    n_chunks = math.ceil(n_patients / bound)
    return math.ceil(math.ceil(n_patients / n_chunks) / lanes) * lanes


def fit_fleet(
    spec: TwinSpec, population: PopulationFit, cohort: EventTable, *, sampler: SamplerConfig | None = None,
    gate: ConvergenceGate | None = None, n_components: int = 200, chunk_size: int | None = None,
    lanes: int = 8, memory_mb: float = 1024.0, override_convergence: bool = False, client: Any | None = None,
    workers: int | None = None,
) -> FleetFit:
    """Fit every patient's twin in `cohort`, given `population`, in compiled chunks; see the module docstring.

    Parameters
    ----------
    spec : TwinSpec
        The model; must be the spec `population` was fitted with.
    population : PopulationFit
        Cohort posterior used as every patient's prior (it must have passed its gate, or pass
        `override_convergence`).
    cohort : EventTable
        The patients to fit (one twin each).
    sampler : SamplerConfig, optional
        Chains, warm-up, draws, seed, ``target_accept``, ``max_tree_depth``, ``dense_mass``, ``init``,
        ``init_steps`` as for ``Twin.fit`` (``chain_method`` does not apply). Default
        ``SamplerConfig.default()``.
    gate : ConvergenceGate, optional
        Each patient's convergence thresholds (default R-hat 1.01, ESS 400, no divergences, E-BFMI 0.2).
    n_components : int
        Population draws used as prior mixture components (K), as ``Twin(n_components=...)``.
    chunk_size : int, optional
        Patients in flight at once (a multiple of `lanes`): dispatched to the devices before the draws of
        the earliest are collected (locally), or per Dask task (with `client`). Default from
        :func:`chunk_patients` with `memory_mb`. It changes neither the draws nor the compiled program.
    lanes : int
        Patients sampled in lockstep on one device (one compiled call runs one group of `lanes` patients
        per device); with the default `chunk_size`, at most the cohort's size bucket. Each distinct value
        compiles another program and gives other draws (the last bits of the arithmetic differ).
    memory_mb : float
        Memory budget of the patients in flight, for the default `chunk_size`.
    override_convergence : bool
        Use a population that failed its gate anyway (recorded in ``population_overridden``).
    client : dask.distributed.Client, optional
        Run the chunks as tasks on this Dask cluster (``bayestwin.inference.fleet_dask``; the ``[dask]``
        extra) instead of here: the same draws as the local path for the same seed.
    workers : int, optional
        Devices the lane groups are spread over at once (on CPU, one core each): default as many as the
        process's cores (``os.sched_getaffinity``), at most the local devices
        (:func:`~bayestwin.inference.fleet_kernel.fleet_devices`). One compilation serves them all.

    Returns
    -------
    FleetFit
        Always returned; failed patients are in ``.failed`` (and a ``ConvergenceWarning`` lists them).

    Raises
    ------
    SpecError
        If `population` was fitted with another spec, or the cohort has time-varying covariates.
    ConvergenceError
        If `population` failed its gate and `override_convergence` is false.
    """
    if population.spec.digest() != spec.digest():
        raise SpecError(f"the population was fitted with spec {population.spec.name!r} "
                        f"({population.spec.digest()[:19]}), not {spec.name!r} ({spec.digest()[:19]}); fit the "
                        "population with the same spec")
    population.require_converged(override=override_convergence)
    sampler = sampler or SamplerConfig.default()
    gate = gate or ConvergenceGate()
    if lanes < 1:
        raise InputError(f"lanes must be at least 1, got {lanes}")
    model = get_model(spec.model)
    arrays = cohort_arrays(cohort, spec, model)
    if SEGMENT_STARTS in arrays.covariates:
        raise SpecError("fit_fleet does not support covariates that change within a patient yet (the cohort has "
                        "time-varying covariates); fit those patients with Twin.fit one by one")
    n = arrays.n_patients
    n_bsv = len(spec.bsv_parameters)
    if chunk_size is None:
        lanes = min(lanes, bucket_size(n, minimum=1))  # a small cohort is not padded up to `lanes` patients
        chunk_size = chunk_patients(n, chains=sampler.chains, draws=sampler.draws, n_components=n_components,
                                    n_obs=int(arrays.obs.time.shape[1]), n_bsv=n_bsv, memory_mb=memory_mb,
                                    lanes=lanes)
    if chunk_size < 1 or chunk_size % lanes:
        raise InputError(f"chunk_size must be a positive multiple of lanes={lanes}, got {chunk_size}")
    prior = _priors(spec, population, arrays, n_components)
    config = FleetConfig(chains=sampler.chains, warmup=sampler.warmup, draws=sampler.draws,
                         target_accept=float(sampler.target_accept), max_tree_depth=int(sampler.max_tree_depth),
                         dense_mass=bool(sampler.dense_mass), init=sampler.init, init_steps=int(sampler.init_steps),
                         lanes=lanes)
    data = (np.arange(n), prior, arrays.doses, arrays.obs)
    start = time.perf_counter()
    if client is None:
        workers = fleet_devices(workers)
        run = fleet_program(spec, model, arrays.features, n_components, config)
        draws = run_fleet(run, sampler.seed, data, lanes=lanes, workers=workers)
    else:
        # one task per chunk; the last chunk is padded with copies of the last patient, dropped below
        rows = [np.minimum(np.arange(first, first + chunk_size), n - 1) for first in range(0, n, chunk_size)]
        chunks = [jax.tree_util.tree_map(lambda a, i=i: np.asarray(a)[i], data) for i in rows]
        outs = map_chunks(client, spec, model, arrays.features, n_components, config, sampler.seed, chunks)
        draws = jax.tree_util.tree_map(lambda *a: np.concatenate(a)[:n], *outs)
    wall = time.perf_counter() - start
    idata = _inference_data(spec, arrays, prior, draws)
    table = fleet_diagnostics(idata, list(spec.bsv_parameters), gate)
    warm = {"positions": draws.positions, "step_size": draws.step_size,
            "inverse_mass_matrix": draws.inverse_mass_matrix}
    fit = FleetFit(spec=spec, population=population, idata=idata, diagnostics=table, arrays=arrays, cohort=cohort,
                   warm=warm, sampler=sampler, gate=gate, n_components=n_components, chunk_size=chunk_size,
                   lanes=lanes, wall_time_s=wall, population_overridden=not population.ok)
    if not fit.ok:
        warnings.warn(f"fit_fleet: {len(fit.failed)} of {n} twins FAILED their convergence gate; do not use them "
                      f"before refitting:\n{format_failures(table)}", ConvergenceWarning, stacklevel=2)
    log.info("fleet of %d twins (%s): %d failed, %.1f s", n, spec.name, len(fit.failed), wall)
    return fit


def _priors(spec: TwinSpec, population: PopulationFit, arrays: CohortArrays, k: int) -> dict[str, np.ndarray]:
    """Every patient's mixture prior, stacked over patients.

    With ``center`` and ``scale`` (the sampler's coordinates) and, where ``sufficient_log_weights`` applies,
    ``quadratic`` (see ``quadratic_form``).
    """
    draws = population.population_draws(k)
    n = arrays.n_patients
    fast = sufficient_statistics_apply(spec, arrays.features)

    def one(i: int) -> dict[str, np.ndarray]:
        covs = {name: float(v[i]) for name, v in arrays.covariates.items()}
        prior = dict(population_prior(spec, draws, covs))
        prior["center"], prior["scale"] = mixture_scaling(prior)
        if fast and spec.bsv_parameters:
            prior["quadratic"] = quadratic_form(prior["mu"], prior["chol_inv"])
        return prior

    if not arrays.covariates:  # the same prior for everyone: build it once
        shared = one(0)
        return {name: np.broadcast_to(v, (n, *np.shape(v))) for name, v in shared.items()}
    per_patient = [one(i) for i in range(n)]
    return {name: np.stack([p[name] for p in per_patient]) for name in per_patient[0]}


def _inference_data(spec: TwinSpec, arrays: CohortArrays, prior: dict[str, np.ndarray], d: Any) -> az.InferenceData:
    """Labelled posterior ``(chain, draw, patient)`` from the chunk outputs (patient, chain, draw, ...)."""
    to_cdp = lambda a: np.moveaxis(np.asarray(a), 0, 2)  # noqa: E731  (patient, chain, draw) -> (chain, draw, patient)
    comp = np.asarray(d.component)
    rows = np.arange(comp.shape[0])[:, None, None]
    posterior: dict[str, np.ndarray] = {}
    for j, name in enumerate(spec.bsv_parameters):
        u = np.asarray(d.latent[..., j])  # numpy, not jnp: an eager JAX op would compile per cohort size
        posterior[name] = to_cdp(np.exp(u) if spec.parameter(name).scale == "log" else u)
    others = [p.name for p in spec.parameters if not p.has_bsv]
    for j, name in enumerate(others):
        posterior[name] = to_cdp(np.asarray(prior["fixed"])[rows, comp, j])
    for s in spec.sigma_names:
        posterior[s] = to_cdp(np.asarray(prior[s])[rows, comp])
    posterior["component"] = to_cdp(comp)
    dims = {name: ["patient"] for name in posterior}
    stats = {"diverging": to_cdp(d.diverging), "energy": to_cdp(d.energy), "num_steps": to_cdp(d.num_steps)}
    patients = [p.item() if hasattr(p, "item") else p for p in arrays.patients]
    idata = az.from_dict(posterior=posterior, sample_stats=stats, dims=dims | {k: ["patient"] for k in stats},
                         coords={"patient": patients})
    for p in spec.parameters:
        idata.posterior[p.name].attrs["unit"] = p.unit
    return idata
