"""Particle filter of the monitoring state-space model with a robust, censored measurement model.

Same latent model as ``bayestwin.monitor.kalman`` (baseline + circadian term + Ornstein-Uhlenbeck
deviation ``x``, exact transitions ``x' = phi x + N(0, sd^2 (1 - phi^2))`` over irregular steps, the same
``OUParams``, padded arrays and masks), but the measurement is not Gaussian:

* **Student-t noise** ``e = noise[device] * T_nu``: a wearable artefact (a 60 /min spike) is a plausible
  tail event and barely moves the state; ``nu -> inf`` gives back the Kalman model.
* **Censoring above** (SpO2): a reading ``y >= upper`` means only ``y* >= upper - resolution`` (a pulse
  oximeter's 100 % covers every true reading from 99.5 % up); ``upper = inf`` switches it off.

Proposal. The Student-t is a scale mixture of normals, ``e | lam ~ N(0, noise^2 / lam)``,
``lam ~ Gamma(nu/2, rate nu/2)``. Each step draws ``lam`` per particle from a defensive mixture (half the
prior, half ``Gamma((nu + 1)/2, (nu + z^2)/2)``, ``z`` the particle's standardised residual: the scales an
artefact needs, which 256 prior draws would almost never reach) and then ``x`` from the locally optimal
proposal given ``lam`` (Gaussian conditioning on ``y``), with incremental weight
``N(y; mu + phi x, q + noise^2 / lam) prior(lam) / proposal(lam)``, ``q = sd^2 (1 - phi^2)``: unbiased for
the Student-t likelihood, and fully adapted (the Kalman update) in the Gaussian limit. A censored reading
uses the bootstrap proposal (``x`` from the transition, ``lam`` from the prior) with weight
``P(y* >= upper - resolution | x, lam)``. Systematic resampling when the effective sample size falls below
N/2. Particle count is static (one compilation per (N, padded shape)); keys are explicit and carried in
the state (online use continues the stream of random numbers; padded rows do not advance it, so padding
changes nothing).

Per observation the filter returns the log incremental likelihood (the log score, ``log p(y | past)``,
or ``log P(y* >= upper - resolution | past)`` for a censored reading), the predictive CDF of the reading
at ``y`` (at ``upper - resolution`` when censored), so the tail probability ``2 min(F, 1 - F)`` and the
mixture over posterior draws (``surprise``) are those of ``bayestwin.monitor.signals.surprise``, and the
filtered mean/variance of ``x``. Float64 throughout (importing ``kalman`` enables x64): the log
likelihood sums thousands of terms and weights span hundreds of nats after an artefact.

Examples
--------
>>> import jax, numpy as np
>>> from bayestwin.monitor.kalman import OUParams, log_likelihood
>>> p = OUParams(baseline=70.0, cos=5.0, sin=0.0, rate=0.5, sd=4.0, noise=np.array([2.0]))
>>> t = np.array([0.0, 1.0, 2.5]); y = np.array([76.0, 74.0, 71.0]); dev = np.zeros(3, int)
>>> _, out = particle_filter(p, Measurement(nu=1e6), t, y, dev, np.ones(3, bool), jax.random.key(0),
...                         n_particles=256)
>>> exact = float(log_likelihood(p, t, y, dev, np.ones(3, bool)))       # MC SD of the estimate ~0.04
>>> bool(abs(float(out.loglik.sum()) - exact) < 0.2)
True
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import log_ndtr, logsumexp, ndtr
from jax.scipy.stats.gamma import logpdf as gamma_logpdf

from bayestwin.exceptions import InputError
from bayestwin.monitor.kalman import OUParams, seasonal

__all__ = ["Measurement", "ParticleOutput", "ParticleState", "check_measurement", "initial_particles",
           "particle_filter", "particle_filter_cohort", "surprise"]

_LOG_2PI = float(np.log(2.0 * np.pi))


class Measurement(NamedTuple):
    """Measurement model shared by a signal's patients and draws.

    ``nu``: Student-t degrees of freedom (1e6 is Gaussian to ~1e-6); ``upper``: censoring bound (a reading
    ``>= upper`` is censored; ``inf`` for none; 100 for SpO2); ``resolution``: a censored reading means
    ``y* >= upper - resolution``.
    """

    nu: float | Array = 4.0
    upper: float | Array = float("inf")
    resolution: float | Array = 0.5


class ParticleState(NamedTuple):
    """Particles of the deviation x (..., N), their normalised log weights, the time of the last reading, the key."""

    x: Array
    logw: Array
    time: Array
    key: Array


class ParticleOutput(NamedTuple):
    """Per-observation outputs (0 on padded rows).

    Predictive mean/variance of y, predictive CDF at y (at the censoring point when censored), filtered
    mean/variance of x, log score (log incremental likelihood), effective sample size before resampling.
    """

    pred_mean: Array
    pred_var: Array
    pred_cdf: Array
    filt_mean: Array
    filt_var: Array
    loglik: Array
    ess: Array


def initial_particles(p: OUParams, key: Array, n_particles: int, time: float = 0.0) -> ParticleState:
    """N draws from the stationary N(0, sd^2) at `time`, equal weights (scalar parameters).

    >>> s = initial_particles(OUParams(70.0, 0.0, 0.0, 0.5, 4.0, np.array([2.0])), jax.random.key(1), 8)
    >>> s.x.shape, round(float(jnp.exp(s.logw).sum()), 12)
    ((8,), 1.0)
    """
    k_init, k_run = jax.random.split(key)
    sd = jnp.asarray(p.sd, float)
    x = sd * jax.random.normal(k_init, (n_particles,), float)
    return ParticleState(x, jnp.full(n_particles, -np.log(n_particles)), jnp.asarray(time, float), k_run)


def _systematic(key: Array, logw: Array) -> Array:
    n = logw.shape[-1]
    u = (jax.random.uniform(key, (), float) + jnp.arange(n)) / n
    return jnp.minimum(jnp.searchsorted(jnp.cumsum(jnp.exp(logw)), u), n - 1)


def _draw_scale(k_lam: Array, k_mix: Array, nu: Array, z2: Array, censored: Array) -> tuple[Array, Array]:
    """Precision scales ``lam`` per particle and their log importance weight prior / proposal.

    Proposal: the defensive mixture 1/2 prior Gamma(nu/2, nu/2) + 1/2 Gamma((nu + 1)/2, (nu + z2)/2) (the
    conditional of ``lam`` given the standardised residual when the state is known), so an artefact finds
    the small scales it needs while the weight stays bounded by 2 x likelihood. Censored rows: the prior.
    """
    n = z2.shape[-1]
    a0, b0 = nu / 2.0, nu / 2.0
    a1, b1 = (nu + 1.0) / 2.0, (nu + z2) / 2.0
    use_post = (jax.random.uniform(k_mix, (n,), float) < 0.5) & ~censored
    lam = jax.random.gamma(k_lam, jnp.where(use_post, a1, a0), (n,), float) / jnp.where(use_post, b1, b0)
    lp0 = gamma_logpdf(lam, a0, scale=1.0 / b0)
    lp1 = gamma_logpdf(lam, a1, scale=1.0 / b1)
    lq = jnp.logaddexp(lp0, lp1) - np.log(2.0)
    return lam, jnp.where(censored, 0.0, lp0 - lq)


def _step(p: OUParams, m: Measurement, state: ParticleState,
          obs: tuple[Array, Array, Array, Array]) -> tuple[ParticleState, ParticleOutput]:
    t, y, dev, mask = obs
    key, k_lam, k_mix, k_eps, k_res = jax.random.split(state.key, 5)
    n = state.x.shape[-1]
    nu = jnp.asarray(m.nu, float)
    phi = jnp.exp(-p.rate * jnp.maximum(t - state.time, 0.0))
    q = p.sd**2 * (1.0 - phi**2)
    mu = seasonal(p, t) + phi * state.x                       # predictive mean of y per particle
    censored = y >= m.upper
    lam, lg_lam = _draw_scale(k_lam, k_mix, nu, (y - mu) ** 2 / p.noise[dev] ** 2, censored)
    eps = jax.random.normal(k_eps, (n,), float)
    r = p.noise[dev] ** 2 / lam
    s = q + r
    c = m.upper - m.resolution
    # uncensored: locally optimal proposal given lam; weight N(y; mu, s)
    x_opt = phi * state.x + q / s * (y - mu) + jnp.sqrt(q * r / s) * eps
    lg_opt = -0.5 * (_LOG_2PI + jnp.log(s) + (y - mu) ** 2 / s)
    # censored: bootstrap proposal; weight P(y* >= c | x, lam)
    x_boot = phi * state.x + jnp.sqrt(q) * eps
    lg_cens = log_ndtr((seasonal(p, t) + x_boot - c) / jnp.sqrt(r))
    x_new = jnp.where(censored, x_boot, x_opt)
    logw = state.logw + jnp.where(censored, lg_cens, lg_opt) + lg_lam
    ll = logsumexp(logw)
    logw = logw - ll
    w_prev, w = jnp.exp(state.logw), jnp.exp(logw)
    a = w_prev * jnp.exp(lg_lam)                             # lam was drawn from the proposal: reweight to the prior
    cdf = jnp.sum(a * ndtr((jnp.where(censored, c, y) - mu) / jnp.sqrt(s))) / jnp.sum(a)
    pm = jnp.sum(w_prev * mu)
    t_var = jnp.where(nu > 2.0, nu / jnp.maximum(nu - 2.0, 1e-12), jnp.inf)
    pv = jnp.sum(w_prev * (mu - pm) ** 2) + q + p.noise[dev] ** 2 * t_var
    fm = jnp.sum(w * x_new)
    fv = jnp.sum(w * (x_new - fm) ** 2)
    ess = 1.0 / jnp.sum(w**2)
    idx = _systematic(k_res, logw)
    resample = ess < n / 2.0
    x_out = jnp.where(resample, x_new[idx], x_new)
    logw_out = jnp.where(resample, jnp.full(n, -np.log(n)), logw)
    new = ParticleState(jnp.where(mask, x_out, state.x), jnp.where(mask, logw_out, state.logw),
                        jnp.where(mask, t, state.time), jnp.where(mask, key, state.key))
    vals = (pm, pv, cdf, fm, fv, ll, ess)
    return new, ParticleOutput(*(jnp.where(mask, v, jnp.zeros_like(v)) for v in vals))


def check_measurement(m: Measurement) -> Measurement:
    """`m` itself, after checking its values (concrete values only: traced ones pass through).

    Raises
    ------
    InputError
        If ``nu <= 0``, ``resolution < 0`` or any value is NaN (each would turn the filter's outputs into NaN).

    Examples
    --------
    >>> check_measurement(Measurement(nu=5.0)).nu
    5.0
    >>> check_measurement(Measurement(nu=0.0))
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.InputError: Measurement: nu (Student-t degrees of freedom) must be > 0, got 0.0; ...
    """
    rules = (("nu", "Student-t degrees of freedom", lambda v: v > 0, "> 0; use 1e6 for Gaussian noise"),
             ("upper", "censoring bound", lambda v: ~np.isnan(v), "a number; inf for no censoring"),
             ("resolution", "censoring resolution", lambda v: v >= 0, ">= 0"))
    for name, what, ok, need in rules:
        value = getattr(m, name)
        if isinstance(value, jax.core.Tracer):
            continue
        arr = np.asarray(value, dtype=float)
        if not np.all(ok(arr)) or np.any(np.isnan(arr)):
            shown = arr.item() if arr.size == 1 else arr
            raise InputError(f"Measurement: {name} ({what}) must be {need.split(';')[0]}, got {shown}; "
                             f"set Measurement({name}=...) to {need}")
    return m


def particle_filter(p: OUParams, m: Measurement, t: Array, y: Array, dev: Array, mask: Array,
                    key: Array | None = None, *, n_particles: int = 512,
                    state: ParticleState | None = None) -> tuple[ParticleState, ParticleOutput]:
    """Filter one series (scalar parameters) with `n_particles` particles (jitted; one compilation per shape).

    Parameters
    ----------
    p : OUParams
        Scalars, ``noise`` of shape (device,).
    m : Measurement
        Student-t degrees of freedom and censoring.
    t, y, dev, mask : arrays of shape (obs,)
        Time (h, non-decreasing), value, device index, and whether the row is real (False: padding).
    key : jax random key
        Starts the filter (ignored when `state` is given: the state carries its key).
    n_particles : int
        Static particle count.
    state : ParticleState, optional
        Where to continue from (online use).

    Returns
    -------
    (ParticleState, ParticleOutput)
        The state after the last real row and per-row outputs; ``out.loglik.sum()`` estimates the log
        marginal likelihood (unbiased on the likelihood scale).

    Examples
    --------
    >>> p = OUParams(96.0, 0.0, 0.0, 0.3, 1.5, np.array([0.8]))
    >>> end, out = particle_filter(p, Measurement(nu=5.0, upper=100.0), np.array([0.0, 1.0, 2.0]),
    ...                            np.array([100.0, 97.0, 96.0]), np.zeros(3, int), np.ones(3, bool),
    ...                            jax.random.key(0), n_particles=256)
    >>> bool(out.filt_mean[0] > 2.0), out.ess.shape     # a censored 100 %: the level is >= 99.5 - noise
    (True, (3,))
    """
    if state is None and key is None:
        raise InputError("particle_filter needs a random key to start (key=jax.random.key(seed)) or a "
                         "ParticleState to continue from (state=...)")
    return _particle_filter(p, check_measurement(m), t, y, dev, mask, key, n_particles=n_particles, state=state)


@partial(jax.jit, static_argnames=("n_particles",))
def _particle_filter(p: OUParams, m: Measurement, t: Array, y: Array, dev: Array, mask: Array,
                     key: Array | None = None, *, n_particles: int = 512,
                     state: ParticleState | None = None) -> tuple[ParticleState, ParticleOutput]:
    p = OUParams(*(jnp.asarray(v, float) for v in p))
    m = Measurement(*(jnp.asarray(v, float) for v in m))
    if state is None and key is None:
        raise InputError("particle_filter needs a random key to start (key=jax.random.key(seed)) or a "
                         "ParticleState to continue from (state=...)")
    state = initial_particles(p, key, n_particles) if state is None else state
    return jax.lax.scan(lambda s, o: _step(p, m, s, o), state,
                        (jnp.asarray(t, float), jnp.asarray(y, float), jnp.asarray(dev), jnp.asarray(mask)))


def particle_filter_cohort(p: OUParams, m: Measurement, t: Array, y: Array, dev: Array, mask: Array,
                           key: Array, *, n_particles: int = 512,
                           state: ParticleState | None = None) -> tuple[ParticleState, ParticleOutput]:
    """``particle_filter`` for every (patient, draw): params (patient, draw), data (patient, obs), one `key`.

    Independent keys per (patient, draw) are split from `key`; with `state` (leading (patient, draw))
    the filters continue from it. Outputs have shape (patient, draw, obs). One compilation per padded shape
    and particle count.

    Examples
    --------
    >>> p = OUParams(*(np.full((2, 3), v) for v in (70.0, 0.0, 0.0, 0.5, 4.0)), noise=np.full((2, 3, 1), 2.0))
    >>> end, out = particle_filter_cohort(p, Measurement(), np.zeros((2, 4)), np.full((2, 4), 72.0),
    ...                                   np.zeros((2, 4), int), np.ones((2, 4), bool), jax.random.key(0),
    ...                                   n_particles=16)
    >>> out.loglik.shape, end.x.shape
    ((2, 3, 4), (2, 3, 16))
    """
    return _particle_filter_cohort(p, check_measurement(m), t, y, dev, mask, key, n_particles=n_particles,
                                   state=state)


@partial(jax.jit, static_argnames=("n_particles",))
def _particle_filter_cohort(p: OUParams, m: Measurement, t: Array, y: Array, dev: Array, mask: Array,
                            key: Array, *, n_particles: int = 512,
                            state: ParticleState | None = None) -> tuple[ParticleState, ParticleOutput]:
    n_pat, n_draw = jnp.shape(p.sd)
    keys = jax.random.split(key, n_pat * n_draw).reshape(n_pat, n_draw)

    def one(pi: OUParams, ti: Array, yi: Array, di: Array, mi: Array, ki: Array,
            si: ParticleState | None) -> tuple[ParticleState, ParticleOutput]:
        return _particle_filter(pi, m, ti, yi, di, mi, ki, n_particles=n_particles, state=si)

    per_draw = jax.vmap(one, in_axes=(0, None, None, None, None, 0, 0))
    return jax.vmap(per_draw)(p, t, y, dev, mask, keys, state)


def surprise(out: ParticleOutput) -> tuple[Array, Array]:
    """Two-sided tail probability and log score per (patient, obs) of the mixture over draws (axis -2).

    Same definitions as ``bayestwin.monitor.signals.surprise``: the tail of the draw-mixture predictive
    CDF, ``2 min(F, 1 - F)``, and ``log mean_d p_d(y)``.

    >>> out = ParticleOutput(*(jnp.zeros((1, 2, 1)) for _ in range(7)))._replace(
    ...     pred_cdf=jnp.array([[[0.01], [0.03]]]), loglik=jnp.log(jnp.array([[[0.1], [0.3]]])))
    >>> tail, score = surprise(out)
    >>> round(float(tail[0, 0]), 4), round(float(score[0, 0]), 4)
    (0.04, -1.6094)
    """
    f = jnp.mean(out.pred_cdf, axis=-2)
    tail = jnp.clip(2.0 * jnp.minimum(f, 1.0 - f), 0.0, 1.0)
    return tail, logsumexp(out.loglik, axis=-2) - jnp.log(out.loglik.shape[-2])
