"""Compiled NUTS for one patient's twin, cached: a new lab value does not recompile the sampler.

``numpyro.infer.MCMC`` traces and compiles its sampler on every ``run`` call, so refitting a twin each time a
value arrives pays the compilation each time. Here the sampler is numpyro's functional NUTS
(``numpyro.infer.hmc.hmc``) in a ``lax.fori_loop`` / ``lax.scan``, built once per *static configuration* --
spec digest, structural model, data features, chains, warm-up and draw counts, NUTS settings -- and kept in
a module-level cache. The patient's data (population prior, doses, observations) and the chains' starting
state are *arguments*, so JAX compiles once per padded shape (``bayestwin.dynamics.events.bucket_size``) and
reuses the program for every later call with data of the same bucket.

Warm start: the result carries each chain's last position, adapted step size and inverse mass matrix
(``WarmState``); passing it back starts the next fit there, so a short warm-up suffices when the previous
posterior is close to the new one. The convergence gate is applied to the result as to any fit.

``trace_count()`` counts how often the sampler program was traced (each trace is followed by a compilation),
per configuration; tests use it to prove that only bucket changes compile.

Examples
--------
>>> import jax.numpy as jnp
>>> import numpyro, numpyro.distributions as dist
>>> def m(y):
...     numpyro.sample("y", dist.Normal(numpyro.sample("mu", dist.Normal(0.0, 10.0)), 1.0), obs=y)
>>> run = nuts_program(m, key=("doc", 1), chains=2, warmup=200, draws=300)
>>> out = run((jnp.array([1.0, 1.2, 0.8]),), {"mu": jnp.zeros(2)}, seed=0)
>>> out.samples["mu"].shape, round(float(out.samples["mu"].mean()), 1)
((2, 300), 1.0)
>>> again = run((jnp.array([2.0, 2.2, 1.8]),), out.warm.positions, seed=1, warm=out.warm)
>>> round(float(again.samples["mu"].mean()), 1), trace_count(("doc", 1))
(2.0, 2)
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc
from numpyro.infer.util import initialize_model

__all__ = ["KernelResult", "WarmState", "nuts_program", "trace_count"]

_TRACES: collections.Counter[Hashable] = collections.Counter()
_PROGRAMS: dict[Hashable, Callable[..., KernelResult]] = {}


class WarmState(NamedTuple):
    """Where each chain ended: unconstrained positions, adapted step size and inverse mass matrix."""

    positions: dict[str, jax.Array]
    """Each site ``(chain, ...)``, unconstrained."""
    step_size: jax.Array
    """``(chain,)``."""
    inverse_mass_matrix: jax.Array
    """``(chain, d)`` (diagonal) or ``(chain, d, d)`` (dense), ``d`` the flattened dimension of all sites."""


class KernelResult(NamedTuple):
    """Draws and statistics of one call, as numpy arrays with leading ``(chain, draw)`` axes."""

    samples: dict[str, np.ndarray]
    """Constrained values of the sample and deterministic sites."""
    diverging: np.ndarray
    energy: np.ndarray
    num_steps: np.ndarray
    warm: WarmState


def trace_count(key: Hashable | None = None) -> int:
    """Times the program of configuration `key` (all programs if None) was traced, i.e. compiled.

    >>> trace_count(("never", "built"))
    0
    """
    return sum(_TRACES.values()) if key is None else _TRACES[key]


def nuts_program(
    model: Callable[..., None], *, key: Hashable, chains: int, warmup: int, draws: int, target_accept: float = 0.8,
    max_tree_depth: int = 10, dense_mass: bool = False, parallel: bool = False,
) -> Callable[..., KernelResult]:
    """The cached NUTS program of `model` for the static configuration `key` (built on first use).

    Parameters
    ----------
    model : callable
        NumPyro model; its arguments are the data and vary between calls (same padded shapes: no new
        compilation; a new shape compiles once more).
    key : hashable
        Identifies `model` and everything static about it (for a twin: spec digest, model name, data
        features). Two different models must not share a key.
    chains, warmup, draws, target_accept, max_tree_depth, dense_mass :
        NUTS settings; part of the configuration (a different value builds another program).
    parallel : bool
        Chains on separate JAX devices (``pmap``; needs ``chains`` devices) instead of one after another
        (``lax.map``). Not for ODE models (see ``bayestwin.inference.sampler.run_nuts``).

    Returns
    -------
    callable
        ``run(args, positions, *, seed, warm=None) -> KernelResult``: `positions` are each chain's
        unconstrained start (``(chain, ...)`` per site); with `warm`, the step size and inverse mass
        matrix start from it (warm-up still adapts them).
    """
    config = (key, chains, warmup, draws, float(target_accept), int(max_tree_depth), bool(dense_mass), bool(parallel))
    if config in _PROGRAMS:
        return _PROGRAMS[config]
    programs: dict[bool, Callable[..., Any]] = {}

    def build(args: tuple[Any, ...], with_warm: bool) -> Callable[..., Any]:
        info = initialize_model(jax.random.PRNGKey(0), model, model_args=args, dynamic_args=True)
        init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")
        post_gen = info.postprocess_fn

        def one(rng: jax.Array, data: tuple[Any, ...], z0: dict[str, jax.Array], step: jax.Array,
                inv_mass: jax.Array) -> tuple[Any, ...]:
            _TRACES[key] += 1  # runs while tracing only: one count per compilation
            state = init_kernel(z0, warmup, model_args=data, rng_key=rng, max_tree_depth=max_tree_depth,
                                target_accept_prob=target_accept, dense_mass=dense_mass,
                                **({"step_size": step, "inverse_mass_matrix": inv_mass} if with_warm else {}))
            state = jax.lax.fori_loop(0, warmup, lambda i, s: sample_kernel(s, model_args=data), state)
            post = post_gen(*data)

            def draw(s: Any, _: None) -> tuple[Any, tuple[Any, ...]]:
                s = sample_kernel(s, model_args=data)
                return s, (post(s.z), s.diverging, s.energy, s.num_steps)

            state, out = jax.lax.scan(draw, state, None, length=draws)
            return (*out, state.z, state.adapt_state.step_size, state.adapt_state.inverse_mass_matrix)

        if parallel:
            return jax.pmap(one, in_axes=(0, None, 0, 0, 0))
        return jax.jit(lambda r, d, z, s, m: jax.lax.map(lambda x: one(x[0], d, *x[1:]), (r, z, s, m)))

    def run(args: tuple[Any, ...], positions: dict[str, jax.Array], *, seed: int,
            warm: WarmState | None = None) -> KernelResult:
        with_warm = warm is not None
        if with_warm not in programs:
            programs[with_warm] = build(args, with_warm)
        # cold: placeholders (the cold program ignores them; numpyro starts from step 1 and an identity mass)
        step = jnp.ones((chains,)) if warm is None else warm.step_size
        inv = jnp.ones((chains,)) if warm is None else warm.inverse_mass_matrix
        keys = jax.random.split(jax.random.PRNGKey(seed), chains)
        samples, div, energy, steps, z, step_out, inv_out = programs[with_warm](keys, args, positions, step, inv)
        return KernelResult(samples={k: np.asarray(v) for k, v in samples.items()}, diverging=np.asarray(div),
                            energy=np.asarray(energy), num_steps=np.asarray(steps),
                            warm=WarmState(positions=z, step_size=step_out, inverse_mass_matrix=inv_out))

    _PROGRAMS[config] = run
    return run
