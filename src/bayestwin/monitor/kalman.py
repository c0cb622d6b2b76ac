"""Kalman filter of the monitoring state-space model: exact likelihood, O(1) online updates, vmapped.

One vital sign of one patient is modelled as

    y(t) = baseline + c cos(2 pi t / 24) + s sin(2 pi t / 24) + x(t) + e,    e ~ N(0, noise[device]^2)

where ``x`` is an Ornstein-Uhlenbeck deviation, ``dx = -rate x dt + sqrt(2 rate) sd dW``: stationary
N(0, sd^2), mean reversion `rate` (1/h). ``c cos + s sin`` is the circadian term of amplitude
``hypot(c, s)`` and acrophase ``atan2(s, c) * 24 / (2 pi)`` h (peak time). Between two observations
``dt`` hours apart the deviation moves exactly as ``x' = phi x + N(0, sd^2 (1 - phi^2))``,
``phi = exp(-rate dt)``, so irregular sampling needs no discretisation.

The filter's state is the Gaussian N(mean, var) of ``x`` after the last observation and that observation's
time. Each observation costs O(1); padded rows (``mask`` False) leave the state unchanged, so series of
different lengths share one padded shape and one compilation. All arithmetic is float64 (importing this
module enables ``jax_enable_x64``): the likelihood sums thousands of terms, and the filter's variance
recursion ``var (1 - gain)`` loses digits in float32 when the measurement noise is small.

Kernels here take and return arrays only (layer 1 of the house style); ``filter_cohort`` is the jitted
version over (patient, draw).

Examples
--------
>>> import numpy as np
>>> p = OUParams(baseline=70.0, cos=5.0, sin=0.0, rate=0.5, sd=4.0, noise=np.array([2.0]))
>>> t = np.array([0.0, 1.0, 2.5]); y = np.array([76.0, 74.0, 71.0])
>>> round(float(log_likelihood(p, t, y, np.zeros(3, int), np.ones(3, bool))), 4)
-7.3383
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import ndtr

jax.config.update("jax_enable_x64", True)

__all__ = ["FilterOutput", "FilterState", "OUParams", "filter_cohort", "filter_series", "initial_state",
           "log_likelihood", "mixture_cdf", "predict_latent", "seasonal"]

_LOG_2PI = float(np.log(2.0 * np.pi))
_OMEGA = 2.0 * np.pi / 24.0


class OUParams(NamedTuple):
    """Static parameters of one signal (any common leading batch shape, e.g. (patient, draw)).

    ``baseline``, ``cos``, ``sin``, ``sd`` and ``noise`` are in the signal's unit; ``rate`` is per hour;
    ``noise`` has a trailing device axis.
    """

    baseline: Array
    cos: Array
    sin: Array
    rate: Array
    sd: Array
    noise: Array


class FilterState(NamedTuple):
    """N(mean, var) of the deviation x after the observation at ``time`` (hours)."""

    mean: Array
    var: Array
    time: Array


class FilterOutput(NamedTuple):
    """Per observation: one-step predictive of y (mean, var) and filtered x (mean, var); 0 on padded rows."""

    pred_mean: Array
    pred_var: Array
    filt_mean: Array
    filt_var: Array
    loglik: Array


def seasonal(p: OUParams, t: Array) -> Array:
    """Baseline plus circadian term at time `t` (hours), the mean of y without the deviation.

    >>> p = OUParams(70.0, 5.0, 0.0, 0.5, 4.0, np.array([2.0]))
    >>> float(seasonal(p, 0.0)), round(float(seasonal(p, 12.0)), 6)
    (75.0, 65.0)
    """
    return p.baseline + p.cos * jnp.cos(_OMEGA * t) + p.sin * jnp.sin(_OMEGA * t)


def initial_state(p: OUParams, time: float | Array = 0.0) -> FilterState:
    """The stationary state N(0, sd^2) at `time` (a patient's state before any observation).

    >>> initial_state(OUParams(70.0, 0.0, 0.0, 0.5, 4.0, np.array([2.0]))).var
    Array(16., dtype=float64, weak_type=True)
    """
    sd = jnp.asarray(p.sd)
    return FilterState(mean=jnp.zeros_like(sd), var=sd**2, time=jnp.broadcast_to(jnp.asarray(time, sd.dtype),
                                                                                  sd.shape))


def predict_latent(p: OUParams, state: FilterState, t: Array) -> tuple[Array, Array]:
    """Mean and variance of the deviation x at time `t` >= ``state.time`` given the filter state.

    A time before ``state.time`` (an out-of-order value) is treated as ``state.time`` (dt clipped at 0);
    ``bayestwin.monitor.twin.MonitorTwin`` refilters a patient from its history instead.

    >>> p = OUParams(70.0, 0.0, 0.0, 0.5, 4.0, np.array([2.0]))
    >>> m, v = predict_latent(p, FilterState(jnp.array(3.0), jnp.array(0.0), jnp.array(0.0)), 2.0)
    >>> round(float(m), 4), round(float(v), 4)
    (1.1036, 13.8346)
    """
    phi = jnp.exp(-p.rate * jnp.maximum(t - state.time, 0.0))
    return phi * state.mean, phi**2 * state.var + p.sd**2 * (1.0 - phi**2)


def _step(p: OUParams, state: FilterState, obs: tuple[Array, Array, Array, Array]) -> tuple[FilterState,
                                                                                            FilterOutput]:
    t, y, dev, mask = obs
    m_pred, v_pred = predict_latent(p, state, t)
    mu = seasonal(p, t) + m_pred
    s = v_pred + p.noise[dev] ** 2
    gain = v_pred / s
    resid = y - mu
    m_new, v_new = m_pred + gain * resid, v_pred * (1.0 - gain)
    ll = -0.5 * (_LOG_2PI + jnp.log(s) + resid**2 / s)
    new = FilterState(jnp.where(mask, m_new, state.mean), jnp.where(mask, v_new, state.var),
                      jnp.where(mask, t, state.time))
    zero = jnp.zeros_like(mu)
    out = FilterOutput(jnp.where(mask, mu, zero), jnp.where(mask, s, zero), jnp.where(mask, m_new, zero),
                       jnp.where(mask, v_new, zero), jnp.where(mask, ll, zero))
    return new, out


def filter_series(p: OUParams, t: Array, y: Array, dev: Array, mask: Array,
                  state: FilterState | None = None) -> tuple[FilterState, FilterOutput]:
    """Filter one series (one parameter set): observations at times `t` (h, non-decreasing), values `y`.

    Parameters
    ----------
    p : OUParams
        Scalars, ``noise`` of shape (device,).
    t, y, dev, mask : arrays of shape (obs,)
        Time (h), value, device index into ``p.noise``, and whether the row is real (False: padding).
    state : FilterState, optional
        Where to continue from (online use); default the stationary state at time 0.

    Returns
    -------
    (FilterState, FilterOutput)
        The state after the last real row, and per-row outputs.

    Examples
    --------
    >>> p = OUParams(70.0, 0.0, 0.0, 0.5, 4.0, np.array([2.0]))
    >>> end, out = filter_series(p, np.array([0.0, 1.0]), np.array([74.0, 0.0]), np.zeros(2, int),
    ...                          np.array([True, False]))
    >>> float(end.mean), float(out.pred_var[0]), float(out.loglik[1])
    (3.2, 20.0, 0.0)
    """
    p = OUParams(*(jnp.asarray(v, float) for v in p))
    state = initial_state(p) if state is None else state
    return jax.lax.scan(lambda s, o: _step(p, s, o), state, (jnp.asarray(t, float), jnp.asarray(y, float),
                                                            jnp.asarray(dev), jnp.asarray(mask)))


def log_likelihood(p: OUParams, t: Array, y: Array, dev: Array, mask: Array) -> Array:
    """Exact marginal log likelihood of one series (the latent deviation integrated out), float64.

    See the module example.
    """
    return filter_series(p, t, y, dev, mask)[1].loglik.sum()


@jax.jit
def filter_cohort(p: OUParams, t: Array, y: Array, dev: Array, mask: Array,
                  state: FilterState) -> tuple[FilterState, FilterOutput]:
    """``filter_series`` for every (patient, draw): params and state (patient, draw), data (patient, obs).

    Outputs have shape (patient, draw, obs). One compilation per padded shape.

    Examples
    --------
    >>> p = OUParams(*(np.full((2, 3), v) for v in (70.0, 0.0, 0.0, 0.5, 4.0)), noise=np.full((2, 3, 1), 2.0))
    >>> end, out = filter_cohort(p, np.zeros((2, 4)), np.full((2, 4), 72.0), np.zeros((2, 4), int),
    ...                          np.ones((2, 4), bool), initial_state(p))
    >>> out.pred_mean.shape, end.mean.shape
    ((2, 3, 4), (2, 3))
    """
    per_draw = jax.vmap(filter_series, in_axes=(0, None, None, None, None, 0))
    return jax.vmap(per_draw)(p, t, y, dev, mask, state)


def mixture_cdf(y: Array, mean: Array, var: Array) -> Array:
    """CDF at `y` of the equal-weight mixture of N(mean_d, var_d) over the last axis (posterior draws).

    >>> float(mixture_cdf(0.0, jnp.array([-1.0, 1.0]), jnp.array([1.0, 1.0])))
    0.5
    """
    return jnp.mean(ndtr((jnp.asarray(y)[..., None] - mean) / jnp.sqrt(var)), axis=-1)
