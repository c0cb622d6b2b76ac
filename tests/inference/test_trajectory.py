"""bayestwin's own NUTS transition (Stan's whole-momentum-sum U-turn criterion): known targets, the criterion by
hand, divergences, vmap, and the opt-in through ``SamplerConfig(trajectory="stan")``."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer.hmc_util import _is_turning

import bayestwin.dynamics  # noqa: F401  - float64
from bayestwin.exceptions import InputError
from bayestwin.inference.fit import _fit_id
from bayestwin.inference.sampler import SamplerConfig, run_nuts
from bayestwin.inference.trajectory import (
    _empty_rows,
    _subtree_turning,
    _write_leaf,
    is_turning,
    nuts_transition,
)

K = 4.0  # k x MCSE: a two-sided normal tail of 6e-5 per check; at most 26 checks per test: family-wise < 2e-3
DIM = 10
SCALES = 10.0 ** np.linspace(-2.0, 2.0, DIM)  # 0.01 .. 100
CORR = 0.5 ** np.abs(np.subtract.outer(np.arange(DIM), np.arange(DIM)))  # AR(1), correlation 0.5
PRECISION = np.linalg.inv(CORR * np.outer(SCALES, SCALES))


def mcse(draws: np.ndarray, method: str) -> np.ndarray:
    """``az.mcse`` of (chain, draw, k) `draws`, per k, on arviz's numpy path (numba fails under numpy 2.4)."""
    numba = az.Numba.numba_flag
    az.Numba.disable_numba()
    try:
        return np.array([float(np.ravel(az.mcse(np.asarray(draws[..., j], float), method=method))[0])
                         for j in range(draws.shape[-1])])
    finally:
        if numba:
            az.Numba.enable_numba()


def chains(potential, x0: np.ndarray, step: float, inverse_mass: np.ndarray, n: int, seed: int, *,
           n_chains: int = 4, max_depth: int = 10):
    """`n_chains` vmapped chains of `n` transitions: draws (chain, draw, d) and the per-transition statistics."""
    value_and_grad = jax.value_and_grad(potential)
    inverse = jnp.asarray(inverse_mass)

    def one(key: jax.Array):
        x = jnp.asarray(x0, float)

        def body(c, k):
            out = nuts_transition(value_and_grad, *c, k, step, inverse, max_depth=max_depth)
            return (out.x, out.potential_energy, out.grad), (out.x, out.info)

        return jax.lax.scan(body, (x, *value_and_grad(x)), jax.random.split(key, n))[1]

    return jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(seed), n_chains))


@pytest.fixture(scope="module")
def gaussian():
    precision = jnp.asarray(PRECISION)
    return chains(lambda x: 0.5 * x @ precision @ x, np.zeros(DIM), 0.5, SCALES**2, 1000, 0)


def test_correlated_ill_scaled_gaussian_means_and_sds_within_4_mcse(gaussian) -> None:
    x, info = gaussian
    x = np.asarray(x)
    mean_err = np.abs(x.mean(axis=(0, 1)))
    assert np.all(mean_err <= K * mcse(x, "mean")), mean_err / mcse(x, "mean")
    sd_err = np.abs(x.std(axis=(0, 1), ddof=1) - SCALES)
    assert np.all(sd_err <= K * mcse(x, "sd")), sd_err / mcse(x, "sd")
    assert not np.asarray(info.diverging).any()
    steps = np.asarray(info.num_steps)
    assert steps.min() >= 1 and steps.max() <= 2**10 - 1
    assert np.all(np.asarray(info.depth) >= np.ceil(np.log2(steps + 1)))
    assert 0.5 < float(np.asarray(info.accept_prob).mean()) <= 1.0


def test_logistic_target_matches_its_known_moments() -> None:
    # standard logistic per coordinate: mean 0, variance pi^2 / 3, E|x| = 2 log 2; all moments finite
    x, info = chains(lambda x: jnp.sum(x + 2.0 * jax.nn.softplus(-x)), np.zeros(3), 0.9,
                     np.full(3, np.pi**2 / 3), 1000, 1)
    x = np.asarray(x)
    assert np.all(np.abs(x.mean(axis=(0, 1))) <= K * mcse(x, "mean"))
    sd = np.pi / np.sqrt(3.0)
    assert np.all(np.abs(x.std(axis=(0, 1), ddof=1) - sd) <= K * mcse(x, "sd"))
    absx = np.abs(x)
    assert np.all(np.abs(absx.mean(axis=(0, 1)) - 2 * np.log(2)) <= K * mcse(absx, "mean"))
    assert not np.asarray(info.diverging).any()


def test_whole_sum_criterion_differs_from_numpyros_half_end_subtraction() -> None:
    # three states with momenta 1, -0.8, 0.5 (identity mass): the whole sum 0.7 points along both ends (no U-turn);
    # NumPyro subtracts half of each end, 0.7 - 0.75 = -0.05 < 0, and calls it a U-turn
    p_left, p_right, rho = jnp.array([1.0]), jnp.array([0.5]), jnp.array([1.0 - 0.8 + 0.5])
    assert not bool(is_turning(p_left, p_right, rho))
    assert bool(_is_turning(jnp.ones(1), p_left, p_right, rho))
    # a right end running back against the sum turns under both
    assert bool(is_turning(p_left, jnp.array([-0.5]), jnp.array([0.5])))


def _reference(p: np.ndarray, p_sharp: np.ndarray, n: int) -> bool:
    """Brute force: does a subtree ending at leaf n turn, as a whole or across its two halves (Stan >= 2.21)?"""
    k = 1
    while (n + 1) % 2**k == 0:
        start, mid = n + 1 - 2**k, n + 1 - 2 ** (k - 1)
        whole = p[start:n + 1].sum(0)
        left = p[start:mid].sum(0) + p[mid]
        right = p[mid - 1] + p[mid:n + 1].sum(0)
        if (p_sharp[start] @ whole <= 0 or p_sharp[n] @ whole <= 0 or p_sharp[start] @ left <= 0
                or p_sharp[mid] @ left <= 0 or p_sharp[mid - 1] @ right <= 0 or p_sharp[n] @ right <= 0):
            return True
        k += 1
    return False


def test_checkpoint_rows_give_every_subtree_check_of_a_brute_force_tree() -> None:
    rng = np.random.default_rng(7)
    depth, d = 6, 3
    inverse_mass = rng.uniform(0.5, 2.0, d)
    drift = rng.normal(size=d)
    expected, got = [], []
    write, check = jax.jit(_write_leaf, static_argnums=7), jax.jit(_subtree_turning, static_argnums=4)
    for trial in range(6):  # momenta that drift, so that spans turn at several depths
        p = drift * (trial / 3.0) + rng.normal(size=(2**depth, d))
        p_sharp = p * inverse_mass
        rows = _empty_rows(depth + 1, jnp.zeros(d))  # leaves below 2^depth have at most `depth` one bits
        rho, prev = jnp.zeros(d), jnp.asarray(rng.normal(size=d))
        for n in range(2**depth):
            pn = jnp.asarray(p[n])
            rows = write(rows, jnp.int32(n), pn, pn * inverse_mass, rho, prev, jnp.asarray(inverse_mass), True)
            rho = rho + pn
            got.append(bool(check(rows, jnp.int32(n), rho, pn * inverse_mass, True)))
            expected.append(_reference(p, p_sharp, n))
            prev = pn
    assert got == expected
    assert 0 < sum(expected) < len(expected) // 2  # the case mixes turning and non-turning leaves


def test_divergence_is_reported_at_a_wall() -> None:
    # a steep wall at x = 1 (potential 1e6 (x - 1)^2 beyond it): a step of 0.5 through it breaks energy by >> 1,000
    def wall(x):
        return 0.5 * jnp.sum(x**2) + 1e6 * jnp.sum(jnp.where(x > 1.0, (x - 1.0) ** 2, 0.0))

    x, info = chains(wall, np.zeros(1), 0.5, np.ones(1), 200, 2, n_chains=1)
    assert np.asarray(info.diverging).sum() > 0
    assert np.all(np.asarray(x) < 1.0 + 1e-3)  # a state beyond the wall has negligible weight
    _, smooth = chains(lambda x: 0.5 * jnp.sum(x**2), np.zeros(1), 0.5, np.ones(1), 200, 2, n_chains=1)
    assert not np.asarray(smooth.diverging).any()


def test_vmapped_chains_equal_separate_runs_bitwise() -> None:
    # precisions 4^-5 .. 4^4: the gradient x * precision is exact, so that only the transition can differ (a dense
    # matrix-vector product in a target is batched by vmap with another summation order)
    precision = 4.0 ** np.arange(-5, 5)
    value_and_grad = jax.value_and_grad(lambda x: 0.5 * jnp.sum(x * x * precision))
    x0 = jnp.asarray(np.random.default_rng(1).normal(size=(2, DIM)) / np.sqrt(precision))
    keys = jax.random.split(jax.random.PRNGKey(5), 2)

    def run(x, key):
        return nuts_transition(value_and_grad, x, *value_and_grad(x), key, 0.5, jnp.asarray(1.0 / precision))

    together = jax.jit(jax.vmap(run))(x0, keys)
    apart = [jax.jit(run)(x0[i], keys[i]) for i in range(2)]
    for i in range(2):
        for a, b in zip(jax.tree_util.tree_leaves(together), jax.tree_util.tree_leaves(apart[i]), strict=True):
            assert np.array_equal(np.asarray(a)[i], np.asarray(b))


def normal_model() -> None:
    numpyro.sample("x", dist.Normal(jnp.array([1.0, -2.0, 30.0]), jnp.array([0.1, 1.0, 10.0])))


def test_sampler_config_runs_the_stan_tree_with_the_gradient_warm_up() -> None:
    config = SamplerConfig(chains=2, warmup=300, draws=500, seed=2, adaptation="gradient", trajectory="stan",
                           init="prior", chain_method="sequential")
    mcmc = run_nuts(normal_model, (), config)
    x = np.asarray(mcmc.get_samples(group_by_chain=True)["x"])
    assert np.all(np.abs(x.mean(axis=(0, 1)) - [1.0, -2.0, 30.0]) <= K * mcse(x, "mean"))
    assert mcmc.last_state.adapt_state.inverse_mass_matrix is not None
    assert int(np.asarray(mcmc.get_extra_fields()["num_steps"]).min()) >= 1


def test_stan_tree_needs_the_gradient_warm_up_and_leaves_default_ids_alone() -> None:
    with pytest.raises(InputError, match="adaptation='gradient'"):
        SamplerConfig(trajectory="stan")
    with pytest.raises(InputError, match="not known"):
        SamplerConfig(trajectory="nuts-rs")  # type: ignore[arg-type]

    class Spec:
        def digest(self) -> str:
            return "spec"

    default = SamplerConfig()
    settings = dataclasses.asdict(default)
    del settings["adaptation"], settings["trajectory"]
    payload = json.dumps({"spec": "spec", "data": "d", "sampler": settings}, sort_keys=True)
    assert _fit_id(Spec(), "d", default) == "fit-" + hashlib.sha256(payload.encode()).hexdigest()[:16]
    stan = SamplerConfig(adaptation="gradient", trajectory="stan")
    assert _fit_id(Spec(), "d", stan) != _fit_id(Spec(), "d", dataclasses.replace(stan, trajectory="numpyro"))
