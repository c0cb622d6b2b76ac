"""The compiled program behind ``fit_fleet``: many patients' twin posteriors, each with its own adaptation.

One call runs NUTS for a chunk of P patients x C chains: numpyro's functional NUTS
(``numpyro.infer.hmc.hmc``) on each patient's twin posterior -- the population mixture prior of
``bayestwin.inference.individual`` times the patient's likelihood, in the scaled coordinates ``z`` of
``build_individual_model`` -- ``vmap``-ped over chains and patients. Every (patient, chain) pair adapts its
own step size and diagonal (or dense) mass matrix; nothing is shared between patients but the program.

The program is cached on its static configuration (spec digest, model, data features, number of mixture
components, NUTS settings, lanes) and JAX compiles it once per padded shape (patients per chunk, dose and
observation slots). The data -- each patient's mixture prior, doses and observations -- are arguments,
so a second cohort whose chunks pad to a seen shape compiles nothing.

Starts follow ``bayestwin.inference.sampler.optimized_starts`` (the ``Twin.fit`` default): each chain starts
at the mixture centre jittered by U(-0.5, 0.5) per scaled coordinate, climbs ``init_steps`` Adam steps, and a
chain that stalls more than ``max(50, d)`` nats above its patient's best chain restarts from that chain's
point. With ``init="prior"`` the jittered centre is used as it is.

How the patients run (``lanes``, ``workers``): one compiled call fits one group of ``lanes`` patients in
lockstep (``vmap``). Lockstep shares each operation's overhead between the patients (the twin's log density
is a few hundred tiny operations, overhead-bound on CPU), but every NUTS iteration lasts as long as the
longest trajectory of the group's ``lanes x chains`` (measured on the theophylline fleet, 8 lanes x 4
chains: 44 % of the leapfrog steps computed are a patient's own; ordering patients by their own mean
trajectory length would raise it to 45 %: the waste is per-iteration chance, not slow patients).
``run_fleet`` spreads the groups over ``workers`` threads, each with its own device: a CPU device executes
its calls one after another on one core, so one device per thread is what puts two cores to work.

Examples
--------
>>> fleet_trace_count(("never", "built"))
0
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import threading
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.infer.hmc import hmc

from bayestwin.dynamics.events import Doses, Observations
from bayestwin.exceptions import InputError
from bayestwin.inference.individual import component_log_weights
from bayestwin.inference.likelihood import _LOG_TINY
from bayestwin.inference.outputs import output_columns, select_outputs
from bayestwin.inference.sampler import adam_descent
from bayestwin.inference.twin_program import TwinConfig
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["FleetConfig", "FleetDraws", "available_cores", "fleet_devices", "fleet_program", "fleet_trace_count",
           "quadratic_form", "run_fleet", "sufficient_log_weights", "sufficient_statistics_apply"]

_TRACES: collections.Counter[Hashable] = collections.Counter()
_PROGRAMS: dict[Hashable, Callable[..., FleetDraws]] = {}


@dataclasses.dataclass(frozen=True)
class FleetConfig(TwinConfig):
    """Static settings of a fleet program: ``TwinConfig`` plus ``lanes`` (patients run in lockstep).

    Each distinct value builds and compiles another program.

    >>> from bayestwin.inference.sampler import SamplerConfig
    >>> FleetConfig.from_sampler(SamplerConfig.fast(), lanes=4).lanes
    4
    """

    lanes: int


class FleetDraws(NamedTuple):
    """Device arrays of one chunk, leading axes ``(patient, chain)``."""

    latent: jax.Array
    """``(patient, chain, draw, n_bsv)``: latent values ``u`` of the parameters with BSV."""
    component: jax.Array
    """``(patient, chain, draw)``: population component drawn for each draw (from its posterior weights)."""
    diverging: jax.Array
    energy: jax.Array
    num_steps: jax.Array
    positions: jax.Array
    """``(patient, chain, n_bsv)``: last unconstrained position (scaled coordinates ``z``)."""
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    start_potential: jax.Array
    """``(patient, chain)``: potential energy at each chain's start, after the climb."""
    restarted: jax.Array


_SUFFICIENT_KINDS = {"additive", "proportional", "lognormal"}


def sufficient_statistics_apply(spec: TwinSpec, features: frozenset[str]) -> bool:
    """Whether :func:`sufficient_log_weights` may replace ``component_log_weights`` for `spec` and `features`.

    Needed: every parameter has BSV (the prediction does not depend on the component), no censored
    observation, no time-varying covariates, and every error model has one SD that scales a fixed
    standardised Normal residual (additive, proportional, log-normal; not Student-t).
    """
    return (all(p.has_bsv for p in spec.parameters) and not features & {"censored", "time_varying"}
            and all(e.kind in _SUFFICIENT_KINDS and e.nu is None for e in spec.error))


def quadratic_form(mu: np.ndarray, chol_inv: np.ndarray) -> np.ndarray:
    """Rows ``W_k`` with ``W_k . [vec(u u'), u, 1] = (u - mu_k)' P_k (u - mu_k)``, ``P_k = chol_inv_k' chol_inv_k``.

    One (K, d*d + d + 1) matrix-vector product then gives every component's Mahalanobis distance: XLA on
    CPU runs K separate d x d products (``einsum``) several times slower. The expansion cancels
    ``u' P u`` against ``-2 u' P mu`` (relative rounding ~1e-16 times ``|u|^2 |P|``: harmless in float64).

    Examples
    --------
    >>> mu, ci = np.array([[1.0, 2.0]]), np.array([[[2.0, 0.0], [1.0, 3.0]]])
    >>> u = np.array([0.5, -1.0])
    >>> w = quadratic_form(mu, ci)
    >>> bool(np.isclose(w[0] @ np.concatenate([np.outer(u, u).ravel(), u, [1.0]]),
    ...                 np.sum((ci[0] @ (u - mu[0])) ** 2)))
    True
    """
    prec = np.einsum("kji,kjl->kil", chol_inv, chol_inv)  # chol_inv' chol_inv
    k, d = mu.shape
    linear = -2.0 * np.einsum("kij,kj->ki", prec, mu)
    const = np.einsum("ki,kij,kj->k", mu, prec, mu)
    return np.concatenate([prec.reshape(k, d * d), linear, const[:, None]], axis=1)


def sufficient_log_weights(spec: TwinSpec, model: AbstractStructuralModel, prior: Mapping[str, jax.Array],
                           u: jax.Array, doses: Doses, obs: Observations, features: frozenset[str]) -> jax.Array:
    """``component_log_weights`` through sufficient statistics: the same (K,) values, O(K + n) instead of O(K n).

    With one residual SD ``s_k`` per error model and component, the log-likelihood of the n_j observations
    of error model j is ``-n_j log s_k - Q_j / (2 s_k^2) + C_j`` with ``Q_j`` the sum of squared standardised
    residuals (``y - pred``; ``(y - pred) / |pred|`` for proportional error; ``log y - log pred`` for
    log-normal error) and ``C_j`` what does not depend on k (``-n_j log(2 pi) / 2``, ``-sum log |pred|``
    for proportional, the Jacobian ``-sum log y`` for log-normal). The terms are computed once per
    evaluation instead of once per component; K = 200 components and 10 observations cost about a tenth
    (measured in ``benchmarks/fleet.py``'s notes). Only where :func:`sufficient_statistics_apply` holds;
    the test suite checks the equality against ``component_log_weights``.
    """
    scaled = [spec.parameter(n) for n in spec.bsv_parameters]
    theta = {p.name: (jnp.exp(u[j]) if p.scale == "log" else u[j]) for j, p in enumerate(scaled)}
    times = jnp.where(jnp.isfinite(obs.time), obs.time, 0.0)
    pred = select_outputs(model.predict(theta, doses, times, features=features), obs.output,
                          output_columns(spec, model))
    if "quadratic" in prior:  # (u - mu_k)' P_k (u - mu_k) for every k as one matrix-vector product
        features_u = jnp.concatenate([jnp.outer(u, u).ravel(), u, jnp.ones((1,), dtype=u.dtype)])
        total = prior["log_norm"] - 0.5 * (prior["quadratic"] @ features_u)
    elif scaled:
        white = jnp.einsum("kij,kj->ki", prior["chol_inv"], u[None, :] - prior["mu"])
        total = prior["log_norm"] - 0.5 * jnp.sum(white * white, axis=1)
    else:
        total = jnp.zeros_like(prior["log_norm"])
    half_log_2pi = 0.5 * jnp.log(2 * jnp.pi)
    for j, err in enumerate(spec.error):
        mask = obs.mask if len(spec.error) == 1 else obs.mask & (obs.output == j)
        safe_value, safe_pred = jnp.where(mask, obs.value, 1.0), jnp.where(mask, pred, 1.0)
        if err.kind == "lognormal":
            y = jnp.log(jnp.where(safe_value > 0, safe_value, 1.0))
            resid = y - jnp.log(jnp.maximum(safe_pred, 0.0) + jnp.exp(_LOG_TINY))
            const = -jnp.sum(jnp.where(mask, y, 0.0))
        elif err.kind == "proportional":
            resid = (safe_value - safe_pred) / jnp.abs(safe_pred)
            const = -jnp.sum(jnp.where(mask, jnp.log(jnp.abs(safe_pred)), 0.0))
        else:
            resid = safe_value - safe_pred
            const = jnp.zeros(())
        n_j = jnp.sum(mask)
        q = jnp.sum(jnp.where(mask, resid * resid, 0.0))
        site = next(site for site, jj, _ in spec.sigma_sites if jj == j)
        s = prior[site]
        total = total - n_j * (jnp.log(s) + half_log_2pi) - q / (2 * s * s) + const
    return total


def run_fleet(run: Callable[..., FleetDraws], seed: int, data: tuple[Any, ...], *, lanes: int,
              workers: int = 1) -> FleetDraws:
    """Every patient of `data` (``(index, prior, doses, obs)``, leading patient axis) through `run`, as numpy.

    `run` (``fleet_program``) fits one group of `lanes` patients per call. `workers` threads each own one
    device (on CPU, one core: ``jax.local_devices()``) and take the next group when their last is done, so
    no device waits for another. JAX traces the program once, here, before the threads start; XLA then
    compiles it once per device, the threads compiling at once (a device executes its calls one after
    another, so one device cannot serve two threads). Each patient's draws depend on the seed, its index
    and `lanes` only -- the same bits for any `workers` and any chunking (tested): every device runs the
    same single-device program. The last group is padded with copies of the last patient (discarded).

    Examples
    --------
    >>> run = jax.jit(lambda seed, index: FleetDraws(*[index * 1.0 + seed] * 10))
    >>> run_fleet(run, 1, (np.arange(5),), lanes=2, workers=2).latent
    array([1., 2., 3., 4., 5.])
    """
    n = len(data[0])
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if n == 0:
        raise InputError("no patients to fit: the cohort (or chunk) is empty")
    groups = [np.minimum(np.arange(first, first + lanes), n - 1) for first in range(0, n, lanes)]
    seed_arg = np.int64(seed)
    take = lambda rows: jax.tree_util.tree_map(lambda a: np.asarray(a)[rows], data)  # noqa: E731
    run.trace(seed_arg, *take(groups[0]))  # trace once, before any thread (tracing is not shared between threads)
    devices = jax.local_devices()[:min(workers, len(groups))]
    local = threading.local()
    free = collections.deque(devices)

    def one(rows: np.ndarray) -> Any:
        if not hasattr(local, "device"):
            local.device = free.popleft()  # each thread keeps one device: one compilation per device
        out = run(seed_arg, *jax.device_put(take(rows), local.device))
        return jax.tree_util.tree_map(np.asarray, out)

    if len(devices) == 1:
        pieces = [one(rows) for rows in groups]
    else:
        with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="bayestwin-fleet") as pool:
            pieces = list(pool.map(one, groups))
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a)[:n], *pieces)


def fleet_trace_count(key: Hashable | None = None) -> int:
    """Times the fleet program of static key `key` (all if None) was traced, i.e. compiled.

    >>> fleet_trace_count(("never", "built"))
    0
    """
    return sum(_TRACES.values()) if key is None else _TRACES[key]


def fleet_devices(workers: int | None = None) -> int:
    """Devices a fleet program spreads its lane groups over: `workers`, at most the local devices.

    Default: as many as this process has cores (``os.sched_getaffinity``) on CPU, every device otherwise.
    Importing bayestwin before JAX gives a CPU process 4 host devices (``bayestwin/__init__.py``); where JAX
    was imported first there is one, and the fleet runs on one core.

    >>> fleet_devices(1)
    1
    """
    devices = jax.local_devices()
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if workers is None:
        workers = available_cores() if devices[0].platform == "cpu" else len(devices)
    return max(1, min(workers, len(devices)))


def available_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count()`` where it is missing).

    >>> available_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def fleet_program(spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str], n_components: int,
                  config: FleetConfig) -> Callable[..., FleetDraws]:
    """The cached program ``run(seed, index, prior, doses, obs) -> FleetDraws`` for one static configuration.

    One call fits one group of ``config.lanes`` patients. `index` is ``(lanes,)``: each patient's position
    in its cohort, which with `seed` (a scalar) fixes the patient's random stream; each leaf of `prior` (a
    ``PopulationPrior`` plus ``center``, ``scale`` and, for sufficient statistics, ``quadratic``), `doses`
    and `obs` has a leading patient axis of length ``lanes``; :func:`run_fleet` runs a whole cohort. Float64
    throughout when x64 is enabled (the mixture's log-sum-exp over hundreds of components and the likelihood
    sums need it; bayestwin enables x64 on import).
    """
    key = ("fleet", spec.digest(), model.name, features, int(n_components), config)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    n_bsv = len(spec.bsv_parameters)

    log_weights = (functools.partial(sufficient_log_weights, spec, model) if sufficient_statistics_apply(spec, features)
                   else functools.partial(component_log_weights, spec, model))

    def potential(z: jax.Array, prior: Mapping[str, jax.Array], doses: Doses, obs: Observations) -> jax.Array:
        u = prior["center"] + prior["scale"] * z
        terms = log_weights(prior, u, doses, obs, features)
        return -(logsumexp(terms) - jnp.log(terms.shape[0]))

    init_kernel, sample_kernel = hmc(
        potential_fn_gen=lambda prior, doses, obs: (lambda zd: potential(zd["z"], prior, doses, obs)), algo="NUTS")

    def climb(z0: jax.Array, data: tuple[Any, ...]) -> tuple[jax.Array, jax.Array]:
        """Adam uphill from `z0` (as ``optimized_starts``): the best point met and its potential."""
        return adam_descent(lambda z: potential(z, *data), z0, config.init_steps, 0.05)

    def nuts(rng: jax.Array, z0: jax.Array, data: tuple[Any, ...]) -> tuple[jax.Array, ...]:
        """One chain: warm-up (adapting its own step size and mass matrix), then the kept draws."""
        k_run, k_comp = jax.random.split(rng)
        state = init_kernel({"z": z0}, config.warmup, model_args=data, rng_key=k_run,
                            max_tree_depth=config.max_tree_depth, target_accept_prob=config.target_accept,
                            dense_mass=config.dense_mass)
        state = jax.lax.fori_loop(0, config.warmup, lambda i, s: sample_kernel(s, model_args=data), state)
        prior, doses, obs = data

        def draw(s: Any, t: jax.Array) -> tuple[Any, tuple[jax.Array, ...]]:
            s = sample_kernel(s, model_args=data)
            u = prior["center"] + prior["scale"] * s.z["z"]
            weights = log_weights(prior, u, doses, obs, features)
            comp = jax.random.categorical(jax.random.fold_in(k_comp, t), weights)
            return s, (u, comp, s.diverging, s.energy, s.num_steps)

        state, out = jax.lax.scan(draw, state, jnp.arange(config.draws))
        return (*out, state.z["z"], state.adapt_state.step_size, state.adapt_state.inverse_mass_matrix)

    def patient(keys: jax.Array, prior: Mapping[str, jax.Array], doses: Doses, obs: Observations) -> tuple[Any, ...]:
        """All chains of one patient: starts (with restarts of stalled climbs), then NUTS per chain."""
        data = (prior, doses, obs)
        k_start = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
        k_nuts = jax.vmap(lambda k: jax.random.split(k)[1])(keys)
        z0 = jax.vmap(lambda k: jax.random.uniform(k, (n_bsv,), minval=-0.5, maxval=0.5))(k_start)
        if config.init == "optimize":
            z0, pe = jax.vmap(lambda z: climb(z, data))(z0)
            best = jnp.argmin(pe)
            restarted = pe > pe[best] + max(50.0, float(n_bsv))
            z0 = jnp.where(restarted[:, None], z0[best][None, :], z0)
            pe = jnp.where(restarted, pe[best], pe)
        else:
            pe = jax.vmap(lambda z: potential(z, *data))(z0)
            restarted = jnp.zeros(pe.shape, dtype=bool)
        out = jax.vmap(lambda k, z: nuts(k, z, data))(k_nuts, z0)
        return (*out, pe, restarted)

    def program(seed: jax.Array, index: jax.Array, prior: Mapping[str, jax.Array], doses: Doses,
                obs: Observations) -> FleetDraws:
        """One group of ``lanes`` patients, in lockstep."""
        _TRACES[key] += 1  # runs while tracing only: one count per trace
        base = jax.random.PRNGKey(seed)
        keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(base, i), config.chains))(index)
        return FleetDraws(*jax.vmap(patient)(keys, prior, doses, obs))

    _PROGRAMS[key] = jax.jit(program)
    return _PROGRAMS[key]
