"""Reduced but real SBC of the monitoring model (issue 8); the >= 200-replication study is validation/monitor_sbc.py.

One compiled NUTS program fits the good replications and the broken variant's (module-scoped fixture):
30 replications of a tiny design (4 patients x 8-14 readings, 2 devices, pooled OU with a cohort circadian
pair -- the cheapest structure that has every kind of parameter) and 30 of the broken variant whose
fit narrows the second device's noise prior (noise_ratio) by 3. Levels: Bonferroni at family-wise
alpha = 0.01 for the ranks (the ``SBCResult`` test), alpha = 0.01 for the true-parameter PITs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bayestwin.exceptions import InputError
from bayestwin.monitor.kalman import OUParams
from bayestwin.monitor.sbc import monitor_design, ranked_quantities, run_monitor_sbc, simulate_readings
from bayestwin.monitor.structure import Structure

POOLED = Structure(ou="population", circadian="population")


@pytest.fixture(scope="module")
def pooled_sbc():
    design = monitor_design(4, 8, 14, seed=3)
    return run_monitor_sbc(POOLED, 30, design=design, broken=("noise_prior",), warmup=100, draws=100, thin=2,
                           batch=16, seed=5)


def test_good_variant_passes_and_broken_fails(pooled_sbc) -> None:
    res = pooled_sbc
    good, bad = res.sbc, res.broken["noise_prior"]
    assert list(good.ranks.columns) == ranked_quantities(POOLED, 2)
    assert good.n_draws == 100 and len(good.ranks) == 30 and len(bad.ranks) == 30
    assert ((good.ranks >= 0) & (good.ranks <= 100)).all().all()
    assert good.ok, good.format() + "\n" + good.tests().to_string()
    assert not bad.ok, "the noise prior x 1/3 passed SBC: the check has no power\n" + bad.tests().to_string()
    assert res.ok


def test_filter_pits_with_true_parameters_are_uniform(pooled_sbc) -> None:
    """The Kalman one-step-ahead PITs under the true parameters are iid U(0, 1) (exact)."""
    f = pooled_sbc.filter
    test = f.truth_test()
    assert f.truth_pit.size == 30 * sum(pooled_sbc.settings["readings"])
    assert test["p_value"] >= 0.01, test
    assert stats.kstest(f.truth_pit, "uniform").pvalue >= 0.01
    cov = f.coverage()
    # iid binomial: each coverage within 3.3 SE (two-sided 0.001 per level) of its level
    assert (np.abs(cov["truth"] - cov.index) <= 3.3 * cov["se_truth"]).all(), cov
    # first held-out reading: the exact posterior predictive -- coverage within 3.3 clustered SE
    assert (np.abs(cov["first"] - cov.index) <= 3.3 * cov["se_first"] + 1e-12).all(), cov
    assert np.isfinite(f.later_pit).sum() > 0


def test_simulator_has_the_ou_covariance() -> None:
    """Simulated readings have the model's covariance: sd^2 exp(-rate |dt|) + noise^2 on the diagonal."""
    t = jnp.array([0.0, 0.5, 2.0, 6.0])
    p = OUParams(1.0, 0.0, 0.0, 0.4, 1.5, jnp.array([0.3]))
    keys = jax.random.split(jax.random.PRNGKey(0), 20000)
    y = np.asarray(jax.vmap(lambda k: simulate_readings(p, t, jnp.zeros(4, int), jnp.ones(4, bool), k))(keys))
    exact = 1.5**2 * np.exp(-0.4 * np.abs(np.subtract.outer(np.asarray(t), np.asarray(t)))) + 0.09 * np.eye(4)
    # SE of a sample covariance ~ sqrt((s_ii s_jj + s_ij^2) / n) <= sqrt(2 * 2.34^2 / 20000) ~ 0.023: 5 SE = 0.12
    assert np.abs(np.cov(y.T) - exact).max() < 0.12
    assert np.abs(y.mean(axis=0) - 1.0).max() < 5 * np.sqrt(2.34 / 20000)
    broken = np.asarray(jax.vmap(lambda k: simulate_readings(p, t, jnp.zeros(4, int), jnp.ones(4, bool), k,
                                                             broken_transition=True))(keys))
    # the broken transition inflates the variance: 2.25 e^-0.4 + 2.25 + 0.09 = 3.85 vs 2.34 at t = 0.5 h
    assert np.var(broken[:, 1]) > 1.4 * exact[1, 1]


def test_invalid_arguments_are_named() -> None:
    with pytest.raises(InputError, match="noise_prior"):
        run_monitor_sbc(POOLED, 2, broken=("noise_prior",), design=monitor_design(2, 3, 4, n_devices=1))
    with pytest.raises(InputError, match="n_min"):
        monitor_design(2, 5, 3)
