"""Chain starts: the uphill climb, and the restart of a chain that stalls far below the others."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayestwin.dynamics  # noqa: F401  - float64
from bayestwin.inference.sampler import SamplerConfig, optimized_starts, run_nuts


def _plateau_model(height: float):
    """Potential (x + 1)^2 left of 0 and a flat plateau of `height` right of it (zero gradient: a climb stalls)."""

    def model() -> None:
        x = numpyro.sample("x", dist.ImproperUniform(dist.constraints.real, (), ()))
        numpyro.factor("f", -jnp.where(x > 0, height, (x + 1.0) ** 2))

    return model


@pytest.mark.parametrize("height", [1000.0, 30.0])
def test_stalled_chains_restart_only_beyond_the_margin(height: float) -> None:
    key = jax.random.PRNGKey(0)
    starts = optimized_starts(_plateau_model(height), (), key, chains=8, max_steps=200)
    x = np.asarray(starts.params["x"])
    on_plateau = starts.potential_before == height  # started right of 0 (U(-0.5, 0.5) jitter)
    assert 0 < on_plateau.sum() < 8  # the key gives both kinds of start
    if height > 50:  # beyond max(50, d) nats: restarted from the best start
        np.testing.assert_array_equal(starts.restarted, on_plateau)
        np.testing.assert_allclose(x, -1.0, atol=1e-3)
        assert "restarted" in starts.describe()
    else:  # a stall within the margin is left for R-hat to judge
        assert not starts.restarted.any()
        np.testing.assert_allclose(x[~on_plateau], -1.0, atol=1e-3)
        assert np.all(x[on_plateau] > 0)


def test_climb_reaches_the_mode_and_never_goes_downhill() -> None:
    def model() -> None:
        numpyro.sample("a", dist.Normal(3.0, 1.0))
        numpyro.sample("s", dist.LogNormal(1.0, 0.5))

    starts = optimized_starts(model, (), jax.random.PRNGKey(1), chains=4, max_steps=400)
    assert np.all(starts.potential_after <= starts.potential_before)
    np.testing.assert_allclose(np.asarray(starts.params["a"]), 3.0, atol=1e-3)
    # unconstrained mode of a log-normal's log: its mean, 1.0 (the Jacobian makes it a plain normal)
    np.testing.assert_allclose(np.asarray(starts.params["s"]), 1.0, atol=1e-3)


def test_run_nuts_keeps_the_starts_and_the_seed_fixes_the_draws() -> None:
    def model() -> None:
        numpyro.sample("a", dist.Normal(3.0, 1.0))

    config = SamplerConfig(chains=2, warmup=50, draws=50, seed=7, chain_method="sequential")
    first, second = run_nuts(model, (), config), run_nuts(model, (), config)
    assert first.bayestwin_starts is not None and first.bayestwin_starts.params["a"].shape == (2,)
    np.testing.assert_array_equal(first.get_samples()["a"], second.get_samples()["a"])
    plain = run_nuts(model, (), SamplerConfig(chains=2, warmup=50, draws=50, seed=7, chain_method="sequential",
                                              init="prior"))
    assert plain.bayestwin_starts is None
