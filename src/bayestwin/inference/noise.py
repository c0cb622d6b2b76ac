"""Residual noise for predictive draws on CPU: numpy's PCG64 + ziggurat, filled in parallel blocks.

On CPU, drawing the residual noise of a large posterior predictive with JAX's threefry generator costs far
more than the predictions (``benchmarks/predictive.py``: ~80 % of the time of 200 patients x 4,000 draws x 100
times); XLA's float64 inverse-error-function transform and its threefry bits each cost ~10-15 ns a value on our
2-core machines. This module draws the same noise with numpy's default generator instead -- the PCG64 bit
generator (O'Neill 2014) and numpy's 256-layer ziggurat for normals (Marsaglia & Tsang 2000), float64 -- and
applies each output's error model in the same pass, block by block, on a thread pool (numpy's generators and
ufuncs release the GIL while they fill an array, so blocks run in parallel).

Reproducibility: the values depend only on the seed (an ``int`` or a JAX PRNG key, whose words become the
entropy of a ``numpy.random.SeedSequence``) and on the array's shape: block ``b`` of stream ``l`` (the
flattened index of the leading axes, e.g. the patient) uses the generator
``PCG64(SeedSequence(entropy, spawn_key=(l, b)))``, as ``SeedSequence.spawn`` builds independent children,
whatever the number of threads.

Examples
--------
>>> import numpy as np
>>> from bayestwin.spec import ErrorModel
>>> ipred = np.full((20_000, 2, 1), 10.0)                  # (sample, time, output)
>>> y = observe_numpy(ipred, [ErrorModel("additive")], [{"sigma_add": np.full(20_000, 0.5)}], seed=1)
>>> round(float(y.mean()), 1), round(float(y.std()), 1)
(10.0, 0.5)
>>> bool(np.array_equal(y, observe_numpy(ipred, [ErrorModel("additive")], [{"sigma_add": np.full(20_000, 0.5)}],
...                                      seed=1, threads=1)))
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import numpy as np

from bayestwin.exceptions import SpecError
from bayestwin.spec.observation import ErrorModel

__all__ = ["NOISE_GENERATORS", "noise_entropy", "observe_numpy", "use_numpy_noise"]

NOISE_GENERATORS = ("auto", "numpy", "jax")
"""Choices of ``noise=`` in the predictive functions: numpy on CPU and JAX elsewhere, or either one."""

_BLOCK_VALUES = 1 << 16  # values per block (512 kB of float64): fits the L2 cache, ~15 us of seeding per block


def use_numpy_noise(noise: str) -> bool:
    """Whether `noise` (one of ``NOISE_GENERATORS``) means numpy's generator on this JAX backend.

    ``"auto"`` is numpy on CPU, where it is several times faster than JAX's threefry, and JAX on a GPU, where
    JAX's generator costs milliseconds and numpy's would need the predictions copied to the host first.

    Examples
    --------
    >>> use_numpy_noise("numpy"), use_numpy_noise("jax")
    (True, False)
    """
    if noise not in NOISE_GENERATORS:
        raise ValueError(f"noise={noise!r} is not a noise generator; use one of {list(NOISE_GENERATORS)} "
                         "('auto': numpy on CPU, JAX's generator on a GPU)")
    if noise == "auto":
        return jax.default_backend() == "cpu"
    return noise == "numpy"


def noise_entropy(seed: int | jax.Array) -> tuple[int, ...]:
    """The entropy words of numpy's ``SeedSequence`` for an ``int`` seed or a JAX PRNG key.

    An ``int`` gives itself (modulo 2**64, so negative seeds work); a key gives its 32-bit words, so that two
    keys split from one another give unrelated streams.

    Examples
    --------
    >>> noise_entropy(3), noise_entropy(-1)
    ((3,), (18446744073709551615,))
    >>> noise_entropy(jax.random.PRNGKey(3))
    (0, 3)
    """
    if isinstance(seed, int | np.integer):
        return (int(seed) % (1 << 64),)
    data = jax.random.key_data(seed) if jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key) else seed
    return tuple(int(w) for w in np.asarray(data, dtype=np.uint32).ravel())


def observe_numpy(
    ipred: np.ndarray,
    errors: Sequence[ErrorModel],
    sigmas: Sequence[Mapping[str, Any]],
    *,
    seed: int | jax.Array,
    threads: int | None = None,
) -> np.ndarray:
    """New observations around `ipred` ``(..., sample, time, output)``: output ``j`` gets ``errors[j]``'s noise.

    The same error models as ``simulate_observations`` (additive, proportional, combined; log-normal as
    ``max(ipred, 1e-300) * exp(sigma * e)``; Student-t noise for an error model with ``nu``: ``e * sqrt(nu /
    chi2)``, the chi-square from numpy's gamma generator), uncensored, float64. ``sigmas[j]`` maps each SD name of
    error model ``j`` (``sigma_add``...) to values broadcastable to ``ipred.shape[:-2]`` (one per sample, and per
    patient for leading axes). A ``known_sd`` error model raises SpecError: a future measurement's SD is not part
    of the model. `threads` defaults to the CPUs this process may use; it does not change the values.
    """
    ipred = np.ascontiguousarray(ipred, dtype=np.float64)
    if ipred.ndim < 3 or ipred.shape[-1] != len(errors):
        raise ValueError(f"ipred has shape {ipred.shape}; expected (..., sample, time, output) with one output per "
                         f"error model ({len(errors)})")
    for err in errors:
        if err.known_sd:
            raise SpecError(f"output {err.output!r} has a known_sd error model: simulating new observations of it "
                            "needs each one's SD, which the model does not say for a future measurement. Use the "
                            "predictions without noise (IPRED)")
    *lead, n_sample, n_time, n_out = ipred.shape
    flat = ipred.reshape(-1, n_sample, n_time, n_out)
    sd = [{k: np.broadcast_to(np.asarray(v, dtype=np.float64), (*lead, n_sample)).reshape(-1, n_sample)
           for k, v in group.items()} for group in sigmas]
    out = np.empty_like(flat)
    entropy = noise_entropy(seed)
    per_block = max(1, _BLOCK_VALUES // max(1, n_time * n_out))
    tasks = [(stream, b) for stream in range(flat.shape[0]) for b in range(-(-n_sample // per_block))]

    def fill(task: tuple[int, int]) -> None:
        stream, b = task
        rows = slice(b * per_block, min((b + 1) * per_block, n_sample))
        gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=task)))
        block = out[stream, rows]
        gen.standard_normal(out=block)
        for j, err in enumerate(errors):
            _apply_error(gen, block[..., j], flat[stream, rows, :, j], err,
                         {k: v[stream, rows, None] for k, v in sd[j].items()})

    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads <= 1 or len(tasks) == 1:
        for task in tasks:
            fill(task)
    else:
        with ThreadPoolExecutor(max_workers=min(threads, len(tasks))) as pool:
            for _ in pool.map(fill, tasks):
                pass
    return out.reshape(ipred.shape)


def _apply_error(gen: np.random.Generator, e: np.ndarray, x: np.ndarray, err: ErrorModel,
                 sg: Mapping[str, np.ndarray]) -> None:
    """Turn standard normals `e` (a view, changed in place) into observations around `x` under `err`."""
    if err.nu is not None:
        e *= np.sqrt(err.nu / (2.0 * gen.standard_gamma(err.nu / 2.0, size=e.shape)))
    if err.kind == "additive":
        e *= sg["sigma_add"]
    elif err.kind == "proportional":
        e *= sg["sigma_prop"] * np.abs(x)
    elif err.kind == "combined":
        e *= np.sqrt(sg["sigma_add"] ** 2 + (sg["sigma_prop"] * x) ** 2)
    elif err.kind == "lognormal":
        e *= sg["sigma_log"]
        np.exp(e, out=e)
        e *= np.maximum(x, 1e-300)
        return
    else:
        raise ValueError(f"unknown error model {err.kind!r} for output {err.output!r}")
    e += x
