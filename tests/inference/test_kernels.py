"""Cached NUTS programs: successive updates with growing data compile only when the padded size changes.

The model is conjugate (normal mean, known SD, normal prior), so each update's posterior is known exactly.
"""

from __future__ import annotations

import itertools

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from bayestwin.dynamics.events import bucket_size
from bayestwin.inference.kernels import nuts_program, trace_count

PRIOR_SD = 10.0


def _model(y: jax.Array, mask: jax.Array) -> None:
    mu = numpyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with numpyro.handlers.mask(mask=mask):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def _padded(y: np.ndarray) -> tuple[jax.Array, jax.Array]:
    size = bucket_size(len(y))
    return (jnp.asarray(np.concatenate([y, np.zeros(size - len(y))])), jnp.arange(size) < len(y))


@pytest.fixture(scope="module")
def updates(count_compiles):
    """20 successive fits, the first cold, each later one warm-started from the one before."""
    y_all = np.random.default_rng(0).normal(3.0, 1.0, size=20)
    key = ("test_kernels", "normal_mean")
    cold = nuts_program(_model, key=key, chains=2, warmup=200, draws=300)
    warm_run = nuts_program(_model, key=key, chains=2, warmup=50, draws=300)
    with count_compiles() as compiles:
        steps = []
        out = None
        for n in range(1, 21):
            before = compiles.n
            args = _padded(y_all[:n])
            if out is None:
                out = cold(args, {"mu": jnp.zeros(2)}, seed=n)
            else:
                out = warm_run(args, out.warm.positions, seed=n, warm=out.warm)
            steps.append({"n": n, "bucket": bucket_size(n), "compiles": compiles.n - before,
                          "mu": out.samples["mu"], "divergences": int(out.diverging.sum())})
    return key, steps


def test_only_bucket_changes_compile(updates) -> None:
    key, steps = updates
    buckets = [s["bucket"] for s in steps]
    assert sorted(set(buckets)) == [8, 12, 16, 24]
    # one trace of the cold program, one of the warm program per bucket it saw
    assert trace_count(key) == 1 + len(set(buckets[1:]))
    for prev, cur in itertools.pairwise(steps[1:]):  # the first warm call compiles the warm program
        if cur["bucket"] == prev["bucket"]:
            assert cur["compiles"] == 0, cur["n"]
    assert steps[8]["compiles"] > 0  # n = 9: the first of bucket 12 compiles (the counter sees compilations)


def test_every_update_is_the_exact_posterior(updates) -> None:
    _, steps = updates
    y_all = np.random.default_rng(0).normal(3.0, 1.0, size=20)
    for s in steps:
        n, draws = s["n"], s["mu"]
        precision = 1 / PRIOR_SD**2 + n
        mean, sd = y_all[:n].sum() / precision, precision**-0.5
        assert s["divergences"] == 0
        mcse = np.ravel(az.mcse(draws)).item()  # (.item(): arviz returns shape (1,) when numba is installed)
        # 4 MCSE: with 20 comparisons, a false alarm has probability ~1e-3
        assert abs(draws.mean() - mean) <= 4 * mcse, (n, draws.mean(), mean, mcse)
        assert 0.8 <= draws.std() / sd <= 1.2, (n, draws.std(), sd)  # 600 draws: SE of the SD ratio ~3-4 %
