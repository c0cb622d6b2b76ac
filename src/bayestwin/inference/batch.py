"""Many independent NUTS fits of one NumPyro model in one compiled program.

SBC replications, leave-future-out forecasts of every patient, and fleets of twins all fit the same model
to B data sets of the same padded shapes. ``run_batched_nuts`` compiles NUTS once -- numpyro's functional
kernel (``numpyro.infer.hmc.hmc``) in a ``lax.fori_loop`` / ``lax.scan`` -- maps it over a batch of
(data set, chain) pairs and ``pmap``-s the batches over the host devices; the data are arguments, so every
call after the first reuses the compiled program.

How a batch is mapped (``batch_method``): on CPU one fit after another (``lax.map``), on accelerators in
lockstep (``vmap``). On CPU ``vmap`` adds no arithmetic throughput -- every step of the batch waits for its
longest trajectory -- and it can deadlock: with a dense mass matrix it turns each fit's triangular solves
into batched LAPACK calls, which jaxlib splits over the same thread pool that runs the ``pmap``-ed device
programs; with every pool thread running a device program, the split waits forever (seen on the
two-compartment SBC: no CPU used for > 14 min; gdb: ``TriMatrixEquationSolver`` -> ``ParallelBatchMap``
blocked on its counter).

Examples
--------
>>> import jax.numpy as jnp
>>> import numpyro, numpyro.distributions as dist
>>> def m(y):
...     mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
...     numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
>>> ys = jnp.array([[0.0, 0.2, -0.2, 0.1], [5.0, 5.2, 4.8, 5.1]])   # two data sets
>>> out = run_batched_nuts(m, (ys,), warmup=200, draws=400, chains=2, keep=lambda s: s["mu"][None])
>>> out.draws.shape                                             # (data set, chain, draw, quantity)
(2, 2, 400, 1)
>>> [round(float(out.draws[i].mean()), 1) for i in range(2)]
[0.0, 5.0]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.infer.hmc import hmc
from numpyro.infer.util import initialize_model

from bayestwin.exceptions import InputError
from bayestwin.inference.adaptation import init_gradient_adaptation, update_gradient_adaptation, warmup_schedule
from bayestwin.inference.sampler import init_near_prior_median
from bayestwin.inference.trajectory import hmc_state_transition

__all__ = ["BatchDraws", "batched_trace_count", "run_batched_nuts"]

_RUNNERS: OrderedDict[Hashable, Callable[..., Any]] = OrderedDict()  # cache_key + settings + shapes -> program
_MAX_RUNNERS = 16  # compiled programs kept (least recently used dropped): each holds its XLA executable
_TRACES: dict[Hashable, int] = {}


class BatchDraws(NamedTuple):
    """Thinned draws of the kept quantities and sampler statistics of B independent fits."""

    draws: np.ndarray
    """``(data set, chain, draw, ...)``: what `keep` returned at each kept draw."""
    divergences: np.ndarray
    """``(data set, chain)``: divergent transitions after warm-up."""
    mean_steps: np.ndarray
    """``(data set, chain)``: mean leapfrog steps per iteration after warm-up."""


def run_batched_nuts(
    model: Callable[..., None], args: tuple[Any, ...], *, warmup: int, draws: int, chains: int = 2, thin: int = 1,
    keep: Callable[[dict[str, jax.Array]], Any] | None = None, max_tree_depth: int | tuple[int, int] = 8,
    target_accept: float = 0.8, dense_mass: bool = False, batch: int = 4, parallel_ok: bool = True,
    seed: int = 0, batch_method: str | None = None, adaptation: str = "stan", cache_key: Hashable | None = None,
    trajectory: str = "numpyro", fit_ids: Sequence[int] | None = None,
) -> BatchDraws:
    """NUTS on ``model(*args_b)`` for every data set b; each leaf of `args` has a leading data-set axis B.

    Parameters
    ----------
    model : callable
        A NumPyro model; every data set must give it the same shapes (pad and mask).
    args : tuple
        The model's arguments, each leaf stacked over the B data sets (leading axis).
    warmup, draws, thin, chains :
        Per data set and chain: warm-up iterations (step size and diagonal mass matrix adapted), then
        `draws` iterations of which every `thin`-th is kept.
    keep : callable, optional
        Maps the constrained values of a draw (sample and deterministic sites) to what is stored (default:
        the sample sites). Keep it small: it is stored for B x chains x draws / thin draws.
    max_tree_depth, target_accept, dense_mass :
        NUTS settings (the mass matrix, diagonal or dense, is adapted in warm-up); a pair of depths is
        (warm-up, sampling).
    batch : int
        (data set, chain) fits run on each device per call.
    parallel_ok : bool
        False runs on one device (diffrax solves cannot be differentiated under ``pmap``, see ``run_nuts``).
    seed : int
        Same seed, same data: same draws.
    batch_method : {"map", "vmap"}, optional
        How each device runs its batch: one fit after another (default on CPU) or vectorised in lockstep
        (default on GPU/TPU); see the module docstring.
    adaptation : {"stan", "gradient"}
        Warm-up: NumPyro's windowed adaptation, or the diagonal mass from draws and gradients of
        ``bayestwin.inference.adaptation`` (needs ``dense_mass=False``), as ``SamplerConfig.adaptation``.
    cache_key : hashable, optional
        Identifies `model` and `keep` (two different models or keep functions must not share a key). With
        it, the compiled program is kept (the 16 most recently used) and a later call with the same key,
        settings and argument shapes compiles nothing: e.g. an SBC's good and broken fits, or a calibration
        study's conditioning sizes. Without it every call traces and compiles anew.
    trajectory : {"numpyro", "stan"}
        NUTS tree: NumPyro's, or ``bayestwin.inference.trajectory`` (Stan's U-turn criterion; with
        ``adaptation="gradient"`` only), as ``SamplerConfig.trajectory``.
    fit_ids : sequence of int, optional
        One non-negative id per data set. Chain c of data set b then draws its random numbers from
        ``fold_in(key, fit_ids[b] * chains + c)`` instead of a split over all fits, so a data set's draws do not
        depend on which other data sets run in the same call (``run_sbc(replication_ids=...)``: an SBC run in
        blocks, on several machines, is one SBC).

    Notes
    -----
    Chains start from the prior medians, jittered by U(-0.5, 0.5) in unconstrained space except for sites
    inside the ``patient`` plate (as ``init_near_prior_median`` does).
    """
    if adaptation not in ("stan", "gradient"):
        raise InputError(f"run_batched_nuts(adaptation={adaptation!r}) is not known; use 'stan' or 'gradient'.")
    if adaptation == "gradient" and dense_mass:
        raise InputError("run_batched_nuts(adaptation='gradient') adapts a diagonal mass matrix; set "
                         "dense_mass=False, or use adaptation='stan' for a dense one.")
    if trajectory not in ("numpyro", "stan") or (trajectory == "stan" and adaptation != "gradient"):
        raise InputError(f"run_batched_nuts(trajectory={trajectory!r}) needs 'numpyro', or 'stan' with "
                         "adaptation='gradient'.")
    gradient = adaptation == "gradient"
    n_sets = int(jax.tree_util.tree_leaves(args)[0].shape[0])
    ids = None if fit_ids is None else np.asarray(fit_ids, dtype=np.int64)
    if ids is not None and (ids.shape != (n_sets,) or (ids < 0).any()):
        raise InputError(f"run_batched_nuts: fit_ids must hold one non-negative id per data set ({n_sets}), got "
                         f"{ids.tolist()}.")
    first = jax.tree_util.tree_map(lambda a: a[0], args)
    key_init, key_fit = jax.random.split(jax.random.PRNGKey(seed))
    info = initialize_model(key_init, model, model_args=first, dynamic_args=True,
                            init_strategy=init_near_prior_median(radius=0.0))
    z0 = info.param_info.z
    # the plates of each site (values substituted: sites without a sampler, e.g. ImproperUniform, are fine)
    constrained = info.postprocess_fn(*first)(z0)
    tr = handlers.trace(handlers.substitute(handlers.seed(model, key_init), data={k: constrained[k] for k in z0})
                        ).get_trace(*first)
    fixed = {k for k in z0 if any(f.name == "patient" for f in tr[k].get("cond_indep_stack", ()))}
    init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")
    post_gen = info.postprocess_fn
    keep = keep or (lambda s: {k: s[k] for k in z0})
    n_kept = draws // thin
    n_fit = n_sets * chains
    n_dev = jax.local_device_count() if parallel_ok else 1
    method = batch_method or ("map" if jax.default_backend() == "cpu" else "vmap")
    if method not in ("map", "vmap"):
        raise ValueError(f"batch_method must be 'map' or 'vmap', got {batch_method!r}")
    shapes = jax.tree_util.tree_structure((first, z0)), tuple(
        (jnp.shape(a), jnp.result_type(a)) for a in jax.tree_util.tree_leaves((first, z0)))
    config = (cache_key, warmup, draws, thin, chains, max_tree_depth, float(target_accept), bool(dense_mass),
              int(batch), n_dev, method, adaptation, trajectory, frozenset(fixed), shapes)

    def one(key: jax.Array, data: tuple[Any, ...], z0: dict[str, jax.Array]) -> tuple[Any, jax.Array, jax.Array]:
        _TRACES[cache_key] = _TRACES.get(cache_key, 0) + 1  # runs while tracing only
        k_jit, k_run = jax.random.split(key)
        start = {k: v if k in fixed else v + jax.random.uniform(jax.random.fold_in(k_jit, i), jnp.shape(v),
                                                                 minval=-0.5, maxval=0.5)
                 for i, (k, v) in enumerate(sorted(z0.items()))}
        state = init_kernel(start, warmup, model_args=data, rng_key=k_run, max_tree_depth=max_tree_depth,
                            target_accept_prob=target_accept, dense_mass=dense_mass,
                            **({"adapt_step_size": False, "adapt_mass_matrix": False} if gradient else {}))
        potential = info.potential_fn(*data)
        if trajectory == "stan":
            def transition(s: Any) -> Any:
                return hmc_state_transition(s, potential, max_depth=max_tree_depth, warmup=warmup)
        else:
            def transition(s: Any) -> Any:
                return sample_kernel(s, model_args=data)
        if gradient:
            plan = warmup_schedule(warmup)
            state = init_gradient_adaptation(state, potential)
            state = jax.lax.fori_loop(0, warmup, lambda i, s: update_gradient_adaptation(
                s, transition(s), potential, schedule=plan, target_accept=target_accept), state)
        else:
            state = jax.lax.fori_loop(0, warmup, lambda i, s: transition(s), state)
        post = post_gen(*data)

        def kept(carry: tuple[Any, ...], _: None) -> tuple[tuple[Any, ...], Any]:
            def step(i: int, c: tuple[Any, ...]) -> tuple[Any, ...]:
                s1 = transition(c[0])
                return s1, c[1] + s1.diverging.astype(jnp.int32), c[2] + s1.num_steps.astype(jnp.int32)

            carry = jax.lax.fori_loop(0, thin, step, carry)
            return carry, keep(post(carry[0].z))

        (_, div, steps), out = jax.lax.scan(kept, (state, jnp.int32(0), jnp.int32(0)), None, length=n_kept)
        return out, div, steps

    if ids is None:
        keys = jax.random.split(key_fit, n_fit)
    else:
        flat = (ids[:, None] * chains + np.arange(chains)).ravel().astype(np.uint32)
        keys = jax.vmap(lambda i: jax.random.fold_in(key_fit, i))(jnp.asarray(flat))
    which = np.repeat(np.arange(n_sets), chains)  # fit i is data set which[i]
    per_call = n_dev * batch
    runner = _RUNNERS.get(config) if cache_key is not None else None
    if runner is None:
        if method == "vmap":
            mapped = jax.vmap(one, in_axes=(0, 0, None))
        else:
            def mapped(k: jax.Array, d: Any, z: Any) -> Any:
                return jax.lax.map(lambda kd: one(*kd, z), (k, d))
        runner = jax.pmap(mapped, in_axes=(0, 0, None)) if n_dev > 1 else jax.jit(mapped)
        if cache_key is not None:
            _RUNNERS[config] = runner
            while len(_RUNNERS) > _MAX_RUNNERS:
                _RUNNERS.popitem(last=False)
    else:
        _RUNNERS.move_to_end(config)
    pieces: list[Any] = []
    for start in range(0, n_fit, per_call):
        idx = np.minimum(np.arange(start, start + per_call), n_fit - 1)  # the last call is padded by repeats
        k_c = keys[idx]
        d_c = jax.tree_util.tree_map(lambda a, i=which[idx]: a[i], args)
        if n_dev > 1:
            k_c, d_c = jax.tree_util.tree_map(lambda a: a.reshape(n_dev, batch, *a.shape[1:]), (k_c, d_c))
        res = runner(k_c, d_c, z0)
        if n_dev > 1:
            res = jax.tree_util.tree_map(lambda a: a.reshape(per_call, *a.shape[2:]), res)
        take = min(per_call, n_fit - start)
        pieces.append(jax.tree_util.tree_map(lambda a, t=take: np.asarray(a)[:t], res))
    out, div, steps = (jax.tree_util.tree_map(lambda *a: np.concatenate(a), *[p[j] for p in pieces])
                       for j in range(3))
    shape = lambda a: a.reshape(n_sets, chains, *a.shape[1:])  # noqa: E731
    return BatchDraws(draws=jax.tree_util.tree_map(shape, out), divergences=shape(div),
                      mean_steps=shape(steps) / max(1, n_kept * thin))


def batched_trace_count(cache_key: Hashable) -> int:
    """How often the program of ``run_batched_nuts(..., cache_key=cache_key)`` was traced in this process.

    Each trace is followed by a compilation; tests use it to prove that a second call with the same key,
    settings and shapes compiles nothing.

    Examples
    --------
    >>> batched_trace_count(("never", "used"))
    0
    """
    return _TRACES.get(cache_key, 0)
