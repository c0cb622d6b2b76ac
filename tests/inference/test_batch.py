"""run_batched_nuts: each data set's draws follow its own posterior, with either batch method.

Model: y_i ~ Normal(mu, 1), mu ~ Normal(0, 10), 4 observations: the posterior of mu is Normal with mean
sum(y) / (4 + 0.01) and SD 1 / sqrt(4.01). Two data sets, 2 chains x 1000 draws each; the tolerance is
5 Monte Carlo standard errors of the mean (ESS taken conservatively as 500 of the 2000 draws).
Dense mass matrix: the configuration that deadlocked under vmap + pmap on CPU for a 57-dimensional model
(see the module docstring); here it must simply run and be right.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from bayestwin.inference.batch import batched_trace_count, run_batched_nuts


def _model(y: jnp.ndarray) -> None:
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    scale = numpyro.sample("scale", dist.Normal(0.0, 1.0))  # a second dimension, so the mass matrix is 2 x 2
    numpyro.sample("y", dist.Normal(mu + 0.0 * scale, 1.0), obs=y)


@pytest.mark.parametrize("method", ["map", "vmap"])
def test_batched_posteriors(method: str) -> None:
    ys = jnp.array([[0.0, 0.4, -0.4, 0.2], [5.0, 5.6, 4.4, 5.2]])
    out = run_batched_nuts(_model, (ys,), warmup=300, draws=1000, chains=2, dense_mass=True,
                           keep=lambda s: s["mu"], batch_method=method, seed=1)
    assert out.draws.shape == (2, 2, 1000)
    post_sd = 1 / np.sqrt(4.01)
    mcse = post_sd / np.sqrt(500)
    for b in range(2):
        expected = float(ys[b].sum()) / 4.01
        assert abs(out.draws[b].mean() - expected) < 5 * mcse
        assert abs(out.draws[b].std() / post_sd - 1) < 0.1
    assert out.divergences.sum() == 0


def test_unknown_batch_method() -> None:
    with pytest.raises(ValueError, match="batch_method"):
        run_batched_nuts(_model, (jnp.zeros((1, 4)),), warmup=2, draws=2, batch_method="pmap")


def test_a_cache_key_compiles_once() -> None:
    """Same key, settings and shapes: the second call traces nothing and still fits its own data."""
    key = ("test_batch", "cached")
    ys = jnp.array([[0.0, 0.4, -0.4, 0.2]])
    run = lambda y, seed: run_batched_nuts(_model, (y,), warmup=100, draws=200, chains=2,  # noqa: E731
                                           keep=lambda s: s["mu"], seed=seed, cache_key=key)
    first = run(ys, 0)
    assert batched_trace_count(key) == 1
    second = run(ys + 5.0, 1)
    assert batched_trace_count(key) == 1
    # posterior SD 1 / sqrt(4.01) ~ 0.5; 400 draws: 5 MCSE (ESS taken as 100) ~ 0.25
    assert abs(first.draws.mean() - 0.2 / 4.01) < 0.25 and abs(second.draws.mean() - 20.2 / 4.01) < 0.25
    again = run(ys, 0)  # cached program, same seed and data: the same draws
    np.testing.assert_array_equal(again.draws, first.draws)
    assert batched_trace_count(key) == 1
