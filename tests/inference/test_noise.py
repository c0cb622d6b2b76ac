"""``inference.noise``: numpy's PCG64 + ziggurat residual noise for predictive draws.

Distribution: 1,000,000 standardised residuals (200 patients x 50 draws x 100 times, the layout of the cohort
predictive) have mean within 4 SE (4 / sqrt(n) = 0.004) of 0, SD within 4 SE (4 sqrt(1 / 2n) = 0.0028) of 1,
and pass Kolmogorov-Smirnov and Anderson-Darling tests against N(0, 1) at the 0.1 % level (fixed seed, so the
outcome is deterministic; the SD check alone rejects a scale 0.3 % off), and the share beyond 3 SD is within
4 SE of 0.27 %.
Independence: the correlation of neighbours along times, draws, patients and across block boundaries is within
4 / sqrt(pairs) of 0. Each error model's standardised residuals are N(0, 1) (or Student-t) within 4 SE.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

from bayestwin.exceptions import SpecError
from bayestwin.inference import noise as nz
from bayestwin.inference.noise import noise_entropy, observe_numpy, use_numpy_noise
from bayestwin.spec import ErrorModel

ADD = [ErrorModel("additive")]
SHAPE = (200, 50, 100, 1)  # (patient, sample, time, output)


@pytest.fixture(scope="module")
def z() -> np.ndarray:
    return observe_numpy(np.zeros(SHAPE), ADD, [{"sigma_add": np.ones(SHAPE[:2])}], seed=2026)[..., 0]


def test_standard_normal_moments_ks_and_anderson_darling(z: np.ndarray) -> None:
    flat = z.ravel()
    n = flat.size
    assert abs(flat.mean()) < 4 / np.sqrt(n)
    assert abs(flat.std() - 1.0) < 4 * np.sqrt(1 / (2 * n))
    assert stats.kstest(flat, "norm").pvalue > 1e-3
    # Anderson-Darling (mean and SD estimated: tests the shape, weighting the tails); its table's p floor is 1 %
    assert stats.anderson(flat, "norm", method="interpolate").pvalue > 0.01
    # the tails: P(|Z| > 3) = 0.0027 within 4 SE
    p = 2 * stats.norm.sf(3.0)
    assert abs(np.mean(np.abs(flat) > 3.0) - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_neighbours_are_uncorrelated_along_every_axis(z: np.ndarray) -> None:
    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    pairs = {"time": (z[..., 1:], z[..., :-1]), "draw": (z[:, 1:], z[:, :-1]), "patient": (z[1:], z[:-1])}
    for axis, (a, b) in pairs.items():
        assert abs(corr(a, b)) < 4 / np.sqrt(a.size), axis
    # the first values of every block of one stream against the first of the next: blocks are independent
    per = nz._BLOCK_VALUES  # draws per block when time x output = 1
    long = observe_numpy(np.zeros((1, 4 * per, 1, 1)), ADD, [{"sigma_add": np.ones((1, 4 * per))}], seed=5)
    blocks = long.reshape(4, per)
    for b in range(3):
        assert abs(corr(blocks[b], blocks[b + 1])) < 4 / np.sqrt(per), b


def test_same_seed_same_values_whatever_the_threads_and_other_seeds_differ() -> None:
    x = np.full((3, 700, 100, 1), 5.0)
    sg = [{"sigma_add": np.full((3, 700), 0.5)}]
    a = observe_numpy(x, ADD, sg, seed=7)
    assert np.array_equal(a, observe_numpy(x, ADD, sg, seed=7, threads=1))
    assert np.array_equal(a, observe_numpy(x, ADD, sg, seed=7, threads=3))
    assert not np.any(a == observe_numpy(x, ADD, sg, seed=8))
    assert not np.any(a[0] == a[1])  # two patients (streams) of one seed
    key = jax.random.PRNGKey(7)
    k1, k2 = jax.random.split(key)
    b1 = observe_numpy(x, ADD, sg, seed=k1)
    assert np.array_equal(b1, observe_numpy(x, ADD, sg, seed=k1))
    assert not np.any(b1 == observe_numpy(x, ADD, sg, seed=k2))
    assert noise_entropy(jax.random.key(7)) == noise_entropy(key) == (0, 7)


@pytest.mark.parametrize("err, sigmas", [
    (ErrorModel("proportional"), {"sigma_prop": 0.2}),
    (ErrorModel("combined"), {"sigma_add": 0.3, "sigma_prop": 0.2}),
    (ErrorModel("lognormal"), {"sigma_log": 0.4}),
])
def test_each_error_model_gives_standard_normal_residuals(err: ErrorModel, sigmas: dict[str, float]) -> None:
    x = np.broadcast_to(np.linspace(0.5, 20.0, 40)[None, :, None], (5000, 40, 1))
    y = observe_numpy(x, [err], [{k: np.full(5000, v) for k, v in sigmas.items()}], seed=11)
    if err.kind == "lognormal":
        r = np.log(y / x) / sigmas["sigma_log"]
    elif err.kind == "proportional":
        r = (y - x) / (sigmas["sigma_prop"] * x)
    else:
        r = (y - x) / np.sqrt(sigmas["sigma_add"] ** 2 + (sigmas["sigma_prop"] * x) ** 2)
    n = r.size
    assert abs(r.mean()) < 4 / np.sqrt(n) and abs(r.std() - 1.0) < 4 * np.sqrt(1 / (2 * n))
    assert stats.kstest(r.ravel(), "norm").pvalue > 1e-3


def test_student_t_noise_and_several_outputs_each_with_its_own_model() -> None:
    errors = [ErrorModel("additive", output="a", nu=5.0), ErrorModel("lognormal", output="b")]
    x = np.stack([np.full((20000, 10), 2.0), np.full((20000, 10), 3.0)], axis=-1)
    y = observe_numpy(x, errors, [{"sigma_add": np.full(20000, 0.5)}, {"sigma_log": np.full(20000, 0.1)}], seed=3)
    t = ((y[..., 0] - 2.0) / 0.5).ravel()
    assert stats.kstest(t, "t", args=(5.0,)).pvalue > 1e-3
    assert stats.kstest(t, "norm").pvalue < 1e-6  # and not a normal: the test can tell them apart at this n
    r = (np.log(y[..., 1] / 3.0) / 0.1).ravel()
    assert stats.kstest(r, "norm").pvalue > 1e-3


def test_known_sd_and_bad_arguments_are_refused_with_the_fix() -> None:
    with pytest.raises(SpecError, match=r"known_sd.*IPRED"):
        observe_numpy(np.ones((2, 3, 1)), [ErrorModel("known_sd")], [{}], seed=0)
    with pytest.raises(ValueError, match="one output per error model"):
        observe_numpy(np.ones((2, 3, 2)), ADD, [{"sigma_add": 1.0}], seed=0)
    with pytest.raises(ValueError, match="'auto'"):
        use_numpy_noise("threefry")
    assert use_numpy_noise("auto") == (jax.default_backend() == "cpu")
