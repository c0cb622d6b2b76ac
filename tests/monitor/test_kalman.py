"""Kalman filter of the monitoring model against exact Gaussian computations (float64)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayestwin.monitor.kalman import (
    FilterState,
    OUParams,
    filter_cohort,
    filter_series,
    initial_state,
    log_likelihood,
    predict_latent,
    seasonal,
)

P = OUParams(baseline=72.0, cos=4.0, sin=-2.5, rate=0.3, sd=5.0, noise=np.array([1.5, 4.0]))


def _dense(p: OUParams, t: np.ndarray, dev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of y at times t: OU covariance sd^2 exp(-rate |t_i - t_j|) + diagonal device noise."""
    mean = np.asarray(seasonal(p, jnp.asarray(t)))
    cov = p.sd**2 * np.exp(-p.rate * np.abs(t[:, None] - t[None, :])) + np.diag(p.noise[dev] ** 2)
    return mean, cov


@pytest.mark.parametrize("seed", range(5))
def test_loglik_equals_dense_gaussian(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 25))
    t = np.cumsum(rng.exponential(2.0, n))
    t[rng.integers(1, n)] = t[rng.integers(0, n)]  # ties and an unsorted pair are sorted below
    t = np.sort(t)
    dev = rng.integers(0, 2, n)
    mean, cov = _dense(P, t, dev)
    y = rng.multivariate_normal(mean, cov)
    exact = multivariate_normal(mean, cov).logpdf(y)
    got = float(log_likelihood(P, t, y, dev, np.ones(n, bool)))
    assert abs(got - exact) <= 1e-8 * max(1.0, abs(exact))
    # the filtered deviation after the last value is the brute-force Gaussian conditional of x(t_n) given all y
    state, _ = filter_series(P, t, y, dev, np.ones(n, bool))
    c = P.sd**2 * np.exp(-P.rate * np.abs(t[-1] - t))
    m_exact = c @ np.linalg.solve(cov, y - mean)
    v_exact = P.sd**2 - c @ np.linalg.solve(cov, c)
    assert abs(float(state.mean) - m_exact) <= 1e-8 * max(1.0, abs(m_exact))
    assert abs(float(state.var) - v_exact) <= 1e-8 * max(1.0, v_exact)


def test_padding_and_masks_do_not_change_the_likelihood() -> None:
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.exponential(1.0, 10))
    y = rng.normal(72.0, 5.0, 10)
    dev = rng.integers(0, 2, 10)
    base = float(log_likelihood(P, t, y, dev, np.ones(10, bool)))
    # padding interleaved with the real rows (masked rows anywhere) and at the end
    tp = np.concatenate([t, [t[-1]] * 6])
    yp, devp = np.concatenate([y, np.full(6, 1e6)]), np.concatenate([dev, np.zeros(6, int)])
    mask = np.concatenate([np.ones(10, bool), np.zeros(6, bool)])
    order = np.argsort(np.concatenate([np.arange(10) * 2.0, np.arange(6) * 3.0 + 0.5]), kind="stable")
    tp_i = np.concatenate([t, t[np.minimum(np.arange(6) * 3 // 2, 9)]])[order]
    got_end = float(log_likelihood(P, tp, yp, devp, mask))
    got_mixed = float(log_likelihood(P, tp_i, yp[order], devp[order], mask[order]))
    assert got_end == pytest.approx(base, rel=1e-12)
    assert got_mixed == pytest.approx(base, rel=1e-12)


def test_online_updates_equal_one_batch() -> None:
    """Filtering in three chunks (carrying the state) gives the batch filter's outputs: O(1) online updates."""
    rng = np.random.default_rng(2)
    t = np.cumsum(rng.exponential(1.0, 12))
    y = rng.normal(72.0, 5.0, 12)
    dev, mask = rng.integers(0, 2, 12), np.ones(12, bool)
    _, full = filter_series(P, t, y, dev, mask)
    state, outs = None, []
    for chunk in (slice(0, 5), slice(5, 6), slice(6, 12)):
        state, out = filter_series(P, t[chunk], y[chunk], dev[chunk], mask[chunk], state)
        outs.append(out)
    for name in ("pred_mean", "pred_var", "filt_mean", "filt_var", "loglik"):
        joined = np.concatenate([np.asarray(getattr(o, name)) for o in outs])
        np.testing.assert_allclose(joined, np.asarray(getattr(full, name)), rtol=1e-13, atol=1e-13)


def test_predictive_of_a_stationary_ou_is_the_analytic_one() -> None:
    """With no data the one-step predictive is the stationary one, N(seasonal, sd^2 + noise^2); after one
    observation at t0 the latent prediction at t0 + h is N(phi m, phi^2 v + sd^2 (1 - phi^2)) with Gaussian
    conditioning m = sd^2 / (sd^2 + noise^2) (y - seasonal), v = sd^2 noise^2 / (sd^2 + noise^2)."""
    t0, y0, h = 5.0, 80.0, 3.0
    _, out = filter_series(P, np.array([t0]), np.array([y0]), np.array([1]), np.array([True]))
    s2, n2 = P.sd**2, P.noise[1] ** 2
    mu0 = float(seasonal(P, t0))
    assert float(out.pred_mean[0]) == pytest.approx(mu0, rel=1e-14)
    assert float(out.pred_var[0]) == pytest.approx(s2 + n2, rel=1e-14)
    m, v = s2 / (s2 + n2) * (y0 - mu0), s2 * n2 / (s2 + n2)
    assert float(out.filt_mean[0]) == pytest.approx(m, rel=1e-13)
    assert float(out.filt_var[0]) == pytest.approx(v, rel=1e-13)
    phi = np.exp(-P.rate * h)
    pm, pv = predict_latent(P, FilterState(out.filt_mean[0], out.filt_var[0], jnp.asarray(t0)), t0 + h)
    assert float(pm) == pytest.approx(phi * m, rel=1e-13)
    assert float(pv) == pytest.approx(phi**2 * v + s2 * (1 - phi**2), rel=1e-13)
    # far in the future the prediction returns to the stationary distribution
    pm, pv = predict_latent(P, FilterState(out.filt_mean[0], out.filt_var[0], jnp.asarray(t0)), t0 + 500.0)
    assert abs(float(pm)) < 1e-12 and float(pv) == pytest.approx(s2, rel=1e-12)


def test_filter_cohort_matches_per_series_and_compiles_once_per_shape(count_compiles) -> None:
    rng = np.random.default_rng(3)
    n_pat, n_draw, n_obs = 3, 4, 8

    def params(scale: float) -> OUParams:
        return OUParams(*(np.full((n_pat, n_draw), v) * rng.uniform(0.8, 1.2, (n_pat, n_draw))
                          for v in (72.0 * scale, 3.0, 1.0, 0.4, 5.0)), noise=np.full((n_pat, n_draw, 2), 2.0))

    def data() -> tuple[np.ndarray, ...]:
        t = np.sort(rng.uniform(0, 20, (n_pat, n_obs)), axis=1)
        shape = (n_pat, n_obs)
        return t, rng.normal(72, 5, shape), rng.integers(0, 2, shape), rng.random(shape) < 0.8

    with count_compiles() as compiles:
        p1, d1 = params(1.0), data()
        _, out1 = filter_cohort(p1, *d1, initial_state(p1))
        first = compiles.n
        p2, d2 = params(1.1), data()  # a second patient set of the same padded size
        _, out2 = filter_cohort(p2, *d2, initial_state(p2))
        assert compiles.n == first  # no recompilation
    assert first > 0  # the counter does see compilations
    for i in range(n_pat):
        for d in range(n_draw):
            pid = OUParams(*(np.asarray(v)[i, d] for v in p2))
            _, ref = filter_series(pid, d2[0][i], d2[1][i], d2[2][i], d2[3][i])
            np.testing.assert_allclose(np.asarray(out2.loglik[i, d]), np.asarray(ref.loglik), rtol=1e-12)
    assert out1.pred_mean.shape == (n_pat, n_draw, n_obs)
