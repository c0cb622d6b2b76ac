"""Gradient-based (nutpie-style) mass-matrix adaptation: a known posterior is recovered, the mass matches it."""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayestwin.dynamics  # noqa: F401  - float64
from bayestwin.exceptions import InputError
from bayestwin.inference.adaptation import warmup_schedule
from bayestwin.inference.batch import run_batched_nuts
from bayestwin.inference.sampler import SamplerConfig, run_nuts

# a badly scaled 20-d diagonal Gaussian: sds from 0.001 to 1000 (condition number 1e12 in the variances)
SD = 10.0 ** np.linspace(-3.0, 3.0, 20)
MEAN = np.linspace(-5.0, 5.0, 20) * SD
K = 4.0  # k x MCSE: a two-sided normal tail of 6e-5 per check, 40 checks: family-wise ~2.5e-3


def mcse(draws: np.ndarray, method: str) -> float:
    """``az.mcse`` of (chain, draw) `draws` on arviz's numpy path (its numba path fails under numpy 2.4)."""
    numba = az.Numba.numba_flag
    az.Numba.disable_numba()
    try:
        return float(np.ravel(az.mcse(np.asarray(draws, dtype=float), method=method))[0])
    finally:
        if numba:
            az.Numba.enable_numba()


def gaussian() -> None:
    numpyro.sample("x", dist.Normal(jnp.asarray(MEAN), jnp.asarray(SD)))


@pytest.fixture(scope="module")
def fit():
    config = SamplerConfig(chains=4, warmup=400, draws=500, seed=3, adaptation="gradient", init="prior")
    return run_nuts(gaussian, (), config)


def test_gradient_adaptation_recovers_a_badly_scaled_gaussian(fit) -> None:
    x = np.asarray(fit.get_samples(group_by_chain=True)["x"])  # (chain, draw, 20)
    mean_err = np.abs(x.mean(axis=(0, 1)) - MEAN)
    mean_mcse = np.array([mcse(x[..., j], "mean") for j in range(SD.size)])
    assert np.all(mean_err <= K * mean_mcse), (mean_err / mean_mcse).max()
    sd_err = np.abs(x.std(axis=(0, 1), ddof=1) - SD)
    sd_mcse = np.array([mcse(x[..., j], "sd") for j in range(SD.size)])
    assert np.all(sd_err <= K * sd_mcse), (sd_err / sd_mcse).max()
    extra = fit.get_extra_fields(group_by_chain=True)
    assert int(np.asarray(extra["diverging"]).sum()) == 0
    # a well-adapted Gaussian needs few leapfrog steps (identity mass here: ~2^10 steps per draw)
    assert np.asarray(extra["num_steps"]).mean() < 16


def test_adapted_inverse_mass_is_the_true_variances(fit) -> None:
    inv = fit.last_state.adapt_state.inverse_mass_matrix
    inv = np.asarray(next(iter(inv.values())))  # (chain, 20)
    # for a Gaussian with diagonal covariance the gradient is -(x - mean) / sd^2, so var(grads) = var(draws) / sd^4
    # and sqrt(var(draws) / var(grads)) = sd^2 whatever the draws: the estimator is exact up to rounding (the
    # Stan-style estimate, var(draws) alone, would carry a relative error of ~sqrt(2 / 80) = 16 %). The variances
    # span 1e-6 .. 1e6 from a start at 1 / |gradient|; an error in the block order or a switch would show here.
    np.testing.assert_allclose(inv, np.broadcast_to(SD**2, inv.shape), rtol=1e-6)


def test_batched_gradient_adaptation_recovers_the_mean() -> None:
    def m(y):  # posterior sd 0.005 under a prior sd 10: 2,000x narrower than the start's scale
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        numpyro.sample("y", dist.Normal(mu, 0.01), obs=y)

    ys = jnp.array([[0.0, 0.002, -0.002, 0.001], [5.0, 5.002, 4.998, 5.001]])
    out = run_batched_nuts(m, (ys,), warmup=150, draws=300, chains=2, keep=lambda s: s["mu"][None],
                           adaptation="gradient", parallel_ok=False)
    assert out.divergences.sum() == 0
    assert out.mean_steps.max() < 8  # adapted: ~3 steps per draw (unadapted: ~2^10)
    precision = 4 / 0.01**2 + 1 / 10.0**2
    for i, y in enumerate(np.asarray(ys)):
        exact = (y.sum() / 0.01**2) / precision  # conjugate normal: the posterior mean
        draws = out.draws[i, :, :, 0]
        assert abs(draws.mean() - exact) <= K * mcse(draws, "mean")


def test_schedule_and_refusals() -> None:
    plan = warmup_schedule(1000)
    assert (plan.early_end, plan.final_start, plan.early_switch, plan.switch) == (300, 850, 10, 80)
    with pytest.raises(InputError, match="not known; use 'stan'"):
        SamplerConfig(adaptation="nutpie")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="diagonal mass matrix; set dense_mass=False"):
        SamplerConfig(adaptation="gradient", dense_mass=True)
    with pytest.raises(InputError, match="diagonal mass matrix; set dense_mass=False"):
        run_batched_nuts(gaussian, (jnp.zeros((1, 1)),), warmup=10, draws=10, dense_mass=True, adaptation="gradient")
    with pytest.raises(InputError, match="not known"):
        run_batched_nuts(gaussian, (jnp.zeros((1, 1)),), warmup=10, draws=10, adaptation="x")
    assert jax.numpy.float64 == jnp.asarray(1.0).dtype  # float64 is on (the estimators' sums)
