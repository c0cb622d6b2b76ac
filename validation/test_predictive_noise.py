"""The CPU residual-noise generator (``inference.noise``, numpy's PCG64 + ziggurat) on 100 M values (``make validate``).

tests/inference/test_noise.py checks 1 M values; this study checks 100 M in the cohort layout (patients x draws x
times, 100 chunks of 1 M, each chunk its own seed as ``jax.random.split`` gives them, 100 patients per chunk):

* the probability integral transform Phi(z) in 1,000 equiprobable bins: chi-square test, p > 1e-4;
* mean and SD within 4 standard errors (4e-4 and 2.8e-4);
* tail shares beyond 3, 4 and 5 SD within 4 binomial SE of the normal's (2.7e-3, 6.3e-5, 5.7e-7: about 5,700
  values beyond 4 SD and 57 beyond 5 -- the tails the ziggurat draws by its own algorithm);
* correlations of neighbours along times, draws and patients, and between consecutive blocks of one stream,
  within 4 / sqrt(pairs).

Deterministic (fixed seeds); ~30-60 s of CPU.
"""

from __future__ import annotations

import jax
import numpy as np
from scipy import special, stats

from bayestwin.inference.noise import observe_numpy
from bayestwin.spec import ErrorModel

CHUNKS, SHAPE = 100, (100, 100, 100, 1)  # 100 chunks x 1 M values: (patient, draw, time, output)


def test_one_hundred_million_noise_values_are_independent_standard_normals() -> None:
    bins = np.zeros(1000, dtype=np.int64)
    total = total_sq = 0.0
    tails = np.zeros(3, dtype=np.int64)
    pair_sums = {"time": [0.0, 0], "draw": [0.0, 0], "patient": [0.0, 0]}
    keys = jax.random.split(jax.random.PRNGKey(2026), CHUNKS)
    sd = [{"sigma_add": np.ones(SHAPE[:2])}]
    for key in keys:
        z = observe_numpy(np.zeros(SHAPE), [ErrorModel("additive")], sd, seed=key)[..., 0]
        flat = z.ravel()
        bins += np.bincount(np.minimum((special.ndtr(flat) * 1000).astype(np.int64), 999), minlength=1000)
        total += flat.sum()
        total_sq += np.dot(flat, flat)
        tails += [np.count_nonzero(np.abs(flat) > c) for c in (3.0, 4.0, 5.0)]
        for axis, (a, b) in {"time": (z[..., 1:], z[..., :-1]), "draw": (z[:, 1:], z[:, :-1]),
                             "patient": (z[1:], z[:-1])}.items():
            pair_sums[axis][0] += float(np.vdot(a, b))
            pair_sums[axis][1] += a.size
    n = CHUNKS * int(np.prod(SHAPE))
    assert stats.chisquare(bins).pvalue > 1e-4
    mean = total / n
    var = total_sq / n - mean**2
    assert abs(mean) < 4 / np.sqrt(n)
    assert abs(np.sqrt(var) - 1.0) < 4 * np.sqrt(1 / (2 * n))
    for count, c in zip(tails, (3.0, 4.0, 5.0), strict=True):
        p = 2 * stats.norm.sf(c)
        assert abs(count / n - p) < 4 * np.sqrt(p * (1 - p) / n), (c, count, p * n)
    for axis, (s, m) in pair_sums.items():
        assert abs(s / m) < 4 / np.sqrt(m), axis  # mean 0, SD 1: the sum of products / pairs is the correlation


def test_consecutive_blocks_of_one_long_stream_are_uncorrelated() -> None:
    per, blocks = 65_536, 200  # one patient, 200 blocks of 65,536 draws at one time
    z = observe_numpy(np.zeros((per * blocks, 1, 1)), [ErrorModel("additive")], [{"sigma_add": np.ones(per * blocks)}],
                      seed=7).reshape(blocks, per)
    r = np.einsum("bi,bi->b", z[1:], z[:-1]) / per  # each ~ N(0, 1 / per)
    assert abs(r.mean()) < 4 / np.sqrt(per * (blocks - 1))
    assert stats.kstest(r * np.sqrt(per), "norm").pvalue > 1e-3
