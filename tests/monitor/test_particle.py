"""Particle filter of the monitoring model: Kalman agreement in the Gaussian limit, robustness, censoring."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.scipy.special import ndtr
from ou_synth import simulate_patient

from bayestwin.exceptions import InputError
from bayestwin.monitor.kalman import OUParams, filter_cohort, filter_series, initial_state
from bayestwin.monitor.particle import (
    Measurement,
    ParticleState,
    initial_particles,
    particle_filter,
    particle_filter_cohort,
    surprise,
)

P = OUParams(baseline=72.0, cos=4.0, sin=-2.5, rate=0.3, sd=5.0, noise=np.array([1.5, 4.0]))
N_SEEDS = 32


@jax.jit
def _over_seeds(p: OUParams, m: Measurement, t: np.ndarray, y: np.ndarray, dev: np.ndarray, mask: np.ndarray,
                states: ParticleState) -> tuple:
    """One series, many independent filters (leading axis of `states`); one compilation for the whole file."""
    return jax.vmap(lambda s: particle_filter(p, m, t, y, dev, mask, state=s))(states)


def _starts(p: OUParams, seed: int) -> ParticleState:
    return jax.vmap(lambda k: initial_particles(p, k, 256))(jax.random.split(jax.random.key(seed), N_SEEDS))


def _series(seed: int, n: int = 40) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0, n))
    dev = rng.integers(0, 2, n)
    return t, simulate_patient(P, t, dev, rng), dev, np.ones(n, bool)


def test_gaussian_limit_agrees_with_kalman() -> None:
    """nu = 1e6, no censoring: the log likelihood over independent seeds agrees with the exact one within 4 MC
    SEs of their mean, and the filtered means and variances within 4.5 MC SEs at every row (40 rows: Bonferroni
    ~3e-4 each)."""
    t, y, dev, mask = _series(0)
    _, kal = filter_series(P, t, y, dev, mask)
    exact = float(kal.loglik.sum())
    _, out = _over_seeds(P, Measurement(nu=1e6), t, y, dev, mask, _starts(P, 0))
    ll = np.asarray(out.loglik.sum(axis=1))
    se = ll.std(ddof=1) / np.sqrt(N_SEEDS)
    fm, fv = np.asarray(out.filt_mean), np.asarray(out.filt_var)
    fm_se = fm.std(axis=0, ddof=1) / np.sqrt(N_SEEDS)
    fv_se = fv.std(axis=0, ddof=1) / np.sqrt(N_SEEDS)
    print(f"log likelihood: exact {exact:.3f}, particle mean {ll.mean():.3f} (SD over seeds {ll.std(ddof=1):.3f}); "
          f"filtered mean max |z| {np.max(np.abs(fm.mean(axis=0) - kal.filt_mean) / fm_se):.2f}, "
          f"filtered var max |z| {np.max(np.abs(fv.mean(axis=0) - kal.filt_var) / fv_se):.2f}, "
          f"max rel. error {np.max(np.abs(fv.mean(axis=0) / kal.filt_var - 1)):.3f}")
    assert se > 0.0 and abs(ll.mean() - exact) <= 4.0 * se, (ll.mean(), exact, se)
    # the predictive CDF at each reading (the tail probability's input) is the Kalman one within MC error
    cdf, cdf_se = np.asarray(out.pred_cdf).mean(axis=0), np.asarray(out.pred_cdf).std(axis=0, ddof=1) / np.sqrt(N_SEEDS)
    cdf_kal = np.asarray(ndtr((y - kal.pred_mean) / np.sqrt(kal.pred_var)))
    assert np.all(np.abs(cdf - cdf_kal) <= 4.5 * cdf_se + 1e-12)
    assert np.all(np.abs(fm.mean(axis=0) - np.asarray(kal.filt_mean)) <= 4.5 * fm_se + 1e-9)
    # the weighted particle variance, the same way (its O(1/N) bias is below the MC error at N = 256)
    assert np.all(np.abs(fv.mean(axis=0) - np.asarray(kal.filt_var)) <= 4.5 * fv_se)


def test_heavy_tails_resist_an_artefact() -> None:
    """A single +60 /min spike: the Kalman update it causes (filtered state at the spike minus the state
    predicted from the rows before) is ~gain x 55; the Student-t (nu = 3) filter's is a small fraction of it.
    Kalman noise is matched to the Student-t's variance (scale 2 sqrt(3))."""
    rng = np.random.default_rng(5)
    p = OUParams(72.0, 0.0, 0.0, 0.2, 5.0, np.array([2.0, 2.0]))  # two devices: the shapes of P, one compile
    t = np.arange(40.0)
    dev, mask = np.zeros(40, int), np.ones(40, bool)
    clean = simulate_patient(p, t, dev, rng)
    spiked = clean.copy()
    spiked[20] += 60.0
    phi = np.exp(-p.rate)

    def update(fm: np.ndarray) -> np.ndarray:
        return fm[..., 20] - phi * fm[..., 19]

    p_kal = p._replace(noise=p.noise * np.sqrt(3.0))
    kal_spiked = np.asarray(filter_series(p_kal, t, spiked, dev, mask)[1].filt_mean)
    kal_clean = np.asarray(filter_series(p_kal, t, clean, dev, mask)[1].filt_mean)
    starts = _starts(p, 1)
    m = Measurement(nu=3.0)
    spiked_out = _over_seeds(p, m, t, spiked, dev, mask, starts)[1]
    pf_spiked, spiked_cdf = np.asarray(spiked_out.filt_mean), np.asarray(spiked_out.pred_cdf[:, 20])
    pf_clean = np.asarray(_over_seeds(p, m, t, clean, dev, mask, starts)[1].filt_mean)
    up_kal, up_pf = float(update(kal_spiked)), update(pf_spiked)
    print(f"update caused by the spike: Kalman {up_kal:.2f}, particle (nu=3) {up_pf.mean():.2f} "
          f"(SD over seeds {up_pf.std(ddof=1):.2f}) /min; filtered state spiked - clean at the spike: Kalman "
          f"{kal_spiked[20] - kal_clean[20]:.2f}, particle {np.mean(pf_spiked[:, 20] - pf_clean[:, 20]):.2f}")
    assert up_kal > 20.0
    tail = 2.0 * np.minimum(spiked_cdf, 1.0 - spiked_cdf)
    print(f"tail probability of the spike: particle {tail.mean():.1e}")
    assert np.all(tail < 1e-2)
    assert abs(up_pf.mean()) < 0.05 * up_kal
    # one row later the heavy-tailed filter is back on the clean track; the Kalman filter is not
    assert np.mean(np.abs(pf_spiked[:, 22] - pf_clean[:, 22])) < 0.1 * abs(kal_spiked[22] - kal_clean[22])


def _spo2_set(rng: np.random.Generator, p: OUParams, n_pat: int, n_obs: int) -> tuple[np.ndarray, ...]:
    """True levels and readings (Student-t nu = 5, scale 0.8; reported as 100 when y* >= 99.5), hourly."""
    true = np.empty((n_pat, n_obs))
    ys = np.empty((n_pat, n_obs))
    for i in range(n_pat):
        x = rng.normal(0.0, p.sd)
        for k in range(n_obs):
            phi = np.exp(-p.rate * (1.0 if k else 0.0))
            x = phi * x + rng.normal(0.0, p.sd * np.sqrt(1 - phi**2))
            true[i, k] = p.baseline + x
            ys[i, k] = p.baseline + x + 0.8 * rng.standard_t(5.0)
    return true, np.where(ys >= 99.5, 100.0, ys)


def test_spo2_censoring_is_unbiased_at_100_and_compiles_once(count_compiles) -> None:
    """On the rows that read 100, the censored filter's level error (filtered - true) sums to 0 within 4 SEs
    over patients (the filtered mean is unbiased given any event known at that row); treating 100 as exact
    (Kalman, variance-matched noise) is biased low. Two patient sets of the same padded size (the second with
    padded rows): one compilation."""
    rng = np.random.default_rng(7)
    p = OUParams(98.5, 0.0, 0.0, 0.2, 1.5, np.array([0.8]))
    n_pat, n_obs = 48, 40
    t = np.arange(n_obs, dtype=float)
    params = OUParams(*(np.full((n_pat, 1), v) for v in p[:5]), noise=np.full((n_pat, 1, 1), 0.8))
    tt, dev = np.tile(t, (n_pat, 1)), np.zeros((n_pat, n_obs), int)
    masks = [np.ones((n_pat, n_obs), bool), np.arange(n_obs)[None, :] < rng.integers(20, n_obs + 1, (n_pat, 1))]
    m = Measurement(nu=5.0, upper=100.0)
    runs, first = [], 0
    with count_compiles() as compiles:
        for j, mask in enumerate(masks):
            true, y = _spo2_set(rng, p, n_pat, n_obs)
            _, out = particle_filter_cohort(params, m, tt, y, dev, mask, jax.random.key(3 + j), n_particles=256)
            first = first or compiles.n
            runs.append((true, y, mask, out))
        assert compiles.n == first > 0
    pk = params._replace(noise=params.noise * np.sqrt(5 / 3))
    err, err_kal, lev, tru = [], [], [], []     # per patient: sums over its rows that read 100
    for true, y, mask, out in runs:
        assert np.all(np.asarray(out.loglik[:, 0])[~mask] == 0.0)
        kal = np.asarray(filter_cohort(pk, tt, y, dev, mask, initial_state(pk))[1].filt_mean[:, 0])
        level = p.baseline + np.asarray(out.filt_mean[:, 0])
        cens = (y == 100.0) & mask
        err.extend(np.where(cens, level - true, 0.0).sum(axis=1))
        err_kal.extend(np.where(cens, p.baseline + kal - true, 0.0).sum(axis=1))
        lev.append(level[cens])
        tru.append(true[cens])
    err, err_kal = np.array(err), np.array(err_kal)
    lev, tru = np.concatenate(lev), np.concatenate(tru)
    n_cens = len(lev)
    tail, score = surprise(runs[0][3])       # one draw: the mixture is the draw itself
    assert tail.shape == (n_pat, n_obs) and np.all((np.asarray(tail) >= 0.0) & (np.asarray(tail) <= 1.0))
    np.testing.assert_allclose(np.asarray(score), np.asarray(runs[0][3].loglik[:, 0]), rtol=1e-12)
    # the sum of errors over rows that read 100 has expectation 0 (each row's indicator is known when it is
    # filtered); its SE over patients; per-row figures for the report
    se, se_kal = err.std(ddof=1) / np.sqrt(len(err)), err_kal.std(ddof=1) / np.sqrt(len(err))
    print(f"{n_cens} readings of 100 in {2 * n_pat} patients; mean level error per such row: particle "
          f"{err.sum() / n_cens:+.3f}, Kalman treating 100 as exact {err_kal.sum() / n_cens:+.3f}; per patient "
          f"{err.mean():+.2f} (SE {se:.2f}) vs {err_kal.mean():+.2f} (SE {se_kal:.2f}); "
          f"mean filtered level there {lev.mean():.2f} (true {tru.mean():.2f})")
    assert n_cens > 200
    assert abs(err.mean()) <= 4.0 * se
    assert err_kal.mean() < -4.0 * se_kal


def test_online_chunks_continue_the_state() -> None:
    """Filtering rows 0-19 (rows 20-39 padded), then rows 20-39 from the returned state (rows 0-19 padded),
    equals one batch run bit for bit: keys are carried, padded rows change nothing."""
    t, y, dev, mask = _series(2)
    m = Measurement(nu=3.0)
    starts = _starts(P, 4)
    _, full = _over_seeds(P, m, t, y, dev, mask, starts)
    early = np.arange(40) < 20
    mid, first = _over_seeds(P, m, t, y, dev, mask & early, starts)
    _, second = _over_seeds(P, m, t, y, dev, mask & ~early, mid)
    np.testing.assert_array_equal(np.where(early, first.loglik, second.loglik), np.asarray(full.loglik))
    np.testing.assert_array_equal(np.where(early, first.filt_mean, second.filt_mean), np.asarray(full.filt_mean))


def test_a_filter_without_key_or_state_says_how_to_start() -> None:
    t, y, dev, mask = _series(2, 3)
    with pytest.raises(InputError, match="random key"):
        particle_filter(P, Measurement(), t, y, dev, mask)


@pytest.mark.parametrize(("bad", "field"), [(Measurement(nu=0.0), "nu"), (Measurement(nu=float("nan")), "nu"),
                                            (Measurement(resolution=-1.0), "resolution"),
                                            (Measurement(upper=float("nan")), "upper")])
def test_a_measurement_that_would_give_nan_is_refused(bad: Measurement, field: str) -> None:
    t, y, dev, mask = _series(2, 3)
    with pytest.raises(InputError, match=f"Measurement: {field}"):
        particle_filter(P, bad, t, y, dev, mask, jax.random.key(0))
    with pytest.raises(InputError, match=f"Measurement: {field}"):
        particle_filter_cohort(OUParams(*(np.full((1, 1), v) for v in (70.0, 0.0, 0.0, 0.5, 4.0)),
                                        noise=np.full((1, 1, 1), 2.0)), bad, t[None], y[None], dev[None],
                               mask[None], jax.random.key(0), n_particles=8)
