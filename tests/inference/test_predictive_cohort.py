"""``cohort_predictive_draws``: every patient's IPRED as ``predictive_draws`` gives it, and N(0, 1) residual noise.

Tolerances: IPRED equal to 1e-12 relative (the same kernel, batched); the standardised residuals of 30,000 draws
have mean within 4 / sqrt(30000) = 0.023 of 0 and SD within 4 sqrt(1 / 60000) = 0.016 of 1 (4 standard errors);
patients get different noise (their own streams of the seed). numpy's and JAX's noise generators give the same
IPRED and N(0, 1) residuals (18,000 values, 4 SE), different draws; with numpy's, patient 0 of a cohort gets the
noise of ``predictive_draws`` with the same seed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestwin.dynamics.events import Doses
from bayestwin.inference.predictive import cohort_predictive_draws, predictive_draws
from bayestwin.models import get_model
from bayestwin.spec import example_spec


def test_cohort_predictive_draws_match_the_one_patient_path() -> None:
    spec, model = example_spec(), get_model("pk.one_cmt_oral")
    rng = np.random.default_rng(0)
    n, s = 3, 2000
    theta = {"ka": np.exp(rng.normal(0.0, 0.2, (n, s))), "cl": 2.0 * np.exp(rng.normal(0.0, 0.2, (n, s))),
             "v": 20.0 * np.exp(rng.normal(0.0, 0.1, (n, s)))}
    sigma = np.full((n, s), 0.3)
    one = Doses.single(time=0.0, amt=1.0)
    amounts = [100.0, 150.0, 80.0]
    doses = jax.tree_util.tree_map(lambda a: jnp.stack([a] * n), one)._replace(
        amt=jnp.asarray(np.stack([np.asarray(one.amt) * a for a in amounts])))
    times = np.array([0.5, 1.0, 2.0, 6.0, 12.0])
    ipred, pred = cohort_predictive_draws(spec, model, theta, {"sigma_add": sigma}, doses, times, seed=3)
    assert ipred.shape == pred.shape == (n, s, 5, 1)
    for i in range(n):
        single = jax.tree_util.tree_map(lambda a, i=i: a[i], doses)
        ref, _ = predictive_draws(spec, model, {k: v[i] for k, v in theta.items()}, {"sigma_add": sigma[i]}, single,
                                  times)
        np.testing.assert_allclose(ipred[i], ref, rtol=1e-12)
    z = ((pred - ipred)[..., 0] / sigma[..., None]).ravel()
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.std() - 1.0) < 4 * np.sqrt(1 / (2 * z.size))
    assert not np.allclose(pred[0] - ipred[0], pred[1] - ipred[1])


def test_numpy_and_jax_noise_give_the_same_ipred_and_n01_residuals_and_patient_0_matches_one_patient() -> None:
    spec, model = example_spec(), get_model("pk.one_cmt_oral")
    rng = np.random.default_rng(1)
    n, s = 2, 3000
    theta = {"ka": np.exp(rng.normal(0.0, 0.2, (n, s))), "cl": np.full((n, s), 2.0), "v": np.full((n, s), 20.0)}
    sigma = np.full((n, s), 0.2)
    doses = jax.tree_util.tree_map(lambda a: jnp.stack([a] * n), Doses.single(time=0.0, amt=100.0))
    times = np.array([1.0, 4.0, 8.0])
    out = {noise: cohort_predictive_draws(spec, model, theta, {"sigma_add": sigma}, doses, times, seed=5, noise=noise)
           for noise in ("numpy", "jax")}
    np.testing.assert_allclose(out["numpy"][0], out["jax"][0], rtol=1e-12)
    for ipred, pred in out.values():
        z = ((pred - ipred)[..., 0] / sigma[..., None]).ravel()  # 18,000 values: 4 SE as above
        assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.std() - 1.0) < 4 * np.sqrt(1 / (2 * z.size))
    assert not np.allclose(out["numpy"][1], out["jax"][1])  # two generators, two sets of draws
    one = jax.tree_util.tree_map(lambda a: a[0], doses)
    ipred0, pred0 = predictive_draws(spec, model, {k: v[0] for k, v in theta.items()}, {"sigma_add": sigma[0]}, one,
                                     times, seed=5, noise="numpy")
    np.testing.assert_allclose(pred0 - ipred0, out["numpy"][1][0] - out["numpy"][0][0], rtol=1e-9, atol=1e-12)
    again = predictive_draws(spec, model, {k: v[0] for k, v in theta.items()}, {"sigma_add": sigma[0]}, one, times,
                             seed=5, noise="numpy")[1]
    assert np.array_equal(again, pred0)


def test_unknown_noise_generator_is_refused() -> None:
    spec, model = example_spec(), get_model("pk.one_cmt_oral")
    theta = {"ka": np.ones(2), "cl": np.full(2, 2.0), "v": np.full(2, 20.0)}
    with pytest.raises(ValueError, match=r"noise='gpu'.*'numpy'"):
        predictive_draws(spec, model, theta, {"sigma_add": np.full(2, 0.1)}, Doses.single(time=0.0, amt=100.0),
                         np.array([1.0]), noise="gpu")
