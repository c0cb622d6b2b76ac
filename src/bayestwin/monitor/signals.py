"""Early-warning signals from the filter's posterior-draw mixture: surprise, drift, threshold crossing.

Every signal is computed per posterior draw of the static parameters (axis ``draw``, last) and then
averaged over draws, so parameter uncertainty enters the probability; the spread over draws gives its
interval (``summarize``).

* **Surprise** of a new value: two-sided tail probability ``2 min(F(y), 1 - F(y))`` under the mixture
  one-step predictive ``F`` (a small value: the value is unexpected) and the log score ``log p(y)``.
* **Drift** of the level (baseline + deviation; the circadian term excluded): the change between the
  filtered latent state now and the one ``window`` hours earlier, per draw
  N(m_now - m_then, v_now + v_then). The two filtered states are treated as independent given the draw
  (their covariance is ignored: for windows longer than the OU time scale 1/rate it is small), and
  ``P(change >= delta)`` is exact under that approximation (a weight gain of >= 2 kg in 3 days, a
  resting heart-rate rise of >= 10 /min).
* **Threshold crossing** within a horizon: the posterior predictive probability that the *latent*
  physiological value ``seasonal(t) + x(t)`` (without device noise) passes a threshold at any point
  of a grid of step ``step`` h over ``(t0, t0 + horizon]``: first passage by discretisation of the
  horizon, Monte Carlo over OU paths (exact OU transitions) within each draw. The discretisation
  misses excursions between grid points (a lower bound on the continuous-time probability, converging as
  ``step`` -> 0).

Examples
--------
>>> import numpy as np
>>> tail, score = surprise(np.array(80.0), np.array([70.0, 72.0]), np.array([16.0, 16.0]))
>>> round(float(tail), 4), round(float(score), 3)
(0.029, -4.717)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import logsumexp, ndtr

from bayestwin.monitor.kalman import FilterState, OUParams, mixture_cdf, predict_latent, seasonal

__all__ = ["ProbabilitySummary", "crossing_probability", "crossing_probability_draws", "level_change_probability",
           "mixture_quantile", "summarize", "surprise"]


def surprise(y: Array, pred_mean: Array, pred_var: Array) -> tuple[Array, Array]:
    """Two-sided tail probability and log score of `y` under the mixture N(pred_mean_d, pred_var_d) over draws.

    `pred_mean` and `pred_var` have a trailing draw axis; `y` the leading axes (see the module example).
    """
    tail = 2.0 * jnp.minimum(mixture_cdf(y, pred_mean, pred_var), 1.0 - mixture_cdf(y, pred_mean, pred_var))
    y = jnp.asarray(y)[..., None]
    log_pdf = -0.5 * (jnp.log(2.0 * jnp.pi * pred_var) + (y - pred_mean) ** 2 / pred_var)
    return jnp.clip(tail, 0.0, 1.0), logsumexp(log_pdf, axis=-1) - jnp.log(pred_mean.shape[-1])


def mixture_quantile(q: float, pred_mean: Array, pred_var: Array, *, iterations: int = 48) -> Array:
    """The `q` quantile of the equal-weight mixture N(pred_mean_d, pred_var_d) over the trailing draw axis.

    Bisection on the mixture CDF between the smallest and largest component quantile (the mixture's
    quantile lies between them): `iterations` halvings of that bracket (48: below float64 resolution of
    any bracket narrower than ~1e9 times the value). Used for the predictive band of a reading.

    >>> lo = mixture_quantile(0.05, np.array([70.0, 72.0]), np.array([16.0, 16.0]))
    >>> hi = mixture_quantile(0.95, np.array([70.0, 72.0]), np.array([16.0, 16.0]))
    >>> round(float(lo), 3), round(float(hi), 3)
    (64.218, 77.782)
    """
    pred_mean, pred_var = jnp.asarray(pred_mean), jnp.asarray(pred_var)
    z = jax.scipy.special.ndtri(jnp.asarray(q, pred_mean.dtype))
    comp = pred_mean + z * jnp.sqrt(pred_var)
    lo, hi = comp.min(axis=-1), comp.max(axis=-1)

    def halve(_: int, bracket: tuple[Array, Array]) -> tuple[Array, Array]:
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        below = mixture_cdf(mid, pred_mean, pred_var) < q
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, halve, (lo, hi))
    return 0.5 * (lo + hi)


def level_change_probability(mean_now: Array, var_now: Array, mean_then: Array, var_then: Array,
                             delta: float) -> Array:
    """Per draw, P(level change >= `delta`) (a fall when `delta` < 0: P(change <= delta)).

    >>> p = level_change_probability(np.array([2.5]), np.array([0.1]), np.array([0.0]), np.array([0.1]), 2.0)
    >>> round(float(p[0]), 4)
    0.8682
    """
    diff, sd = jnp.asarray(mean_now) - mean_then, jnp.sqrt(jnp.asarray(var_now) + var_then)
    z = (diff - delta) / sd
    return ndtr(z) if delta >= 0 else ndtr(-z)


def crossing_probability_draws(p: OUParams, state: FilterState, key: Array, *, t0: Array, threshold: float,
                               above: bool, horizon: float, step: float = 0.5, n_paths: int = 64) -> Array:
    """Per posterior draw, the probability that the latent value passes `threshold` within `horizon` h of `t0`.

    Parameters
    ----------
    p, state : OUParams, FilterState
        One parameter set and filter state per draw: leading axis ``draw`` (``noise`` (draw, device)).
    key : jax random key
        Monte Carlo paths; `n_paths` per draw.
    t0 : float
        Time (h, model clock) the horizon starts from (>= ``state.time``; the state is predicted to it).
    threshold, above :
        Crossing means value > threshold (`above`) or value < threshold.
    horizon, step : float
        Horizon and grid step (h); the grid is ``t0 + step, t0 + 2 step, ..., t0 + horizon``.

    Returns
    -------
    Array (draw,)
        Fraction of each draw's paths that cross (Monte Carlo SE <= 0.5 / sqrt(n_paths) per draw).

    Examples
    --------
    >>> p = OUParams(*(np.full(4, v) for v in (120.0, 0.0, 0.0, 0.5, 10.0)), noise=np.full((4, 1), 2.0))
    >>> s = FilterState(np.full(4, 5.0), np.full(4, 1.0), np.zeros(4))
    >>> q = crossing_probability_draws(p, s, jax.random.PRNGKey(0), t0=0.0, threshold=130.0, above=True,
    ...                                horizon=6.0, n_paths=2000)
    >>> bool(0.4 < float(q.mean()) < 0.8)
    True
    """
    n_steps = max(1, int(np.ceil(horizon / step - 1e-9)))
    grid = jnp.asarray(t0, float) + step * jnp.arange(1, n_steps + 1)
    sign = jnp.where(jnp.asarray(above), 1.0, -1.0)  # may be traced: one compilation for every threshold

    def one(pd: OUParams, sd: FilterState, k: Array) -> Array:
        m0, v0 = predict_latent(pd, sd, jnp.asarray(t0, float))
        z = jax.random.normal(k, (n_steps + 1, n_paths))
        phi = jnp.exp(-pd.rate * step)
        innov = pd.sd * jnp.sqrt(1.0 - phi**2)

        def move(x: Array, zk: Array) -> tuple[Array, Array]:
            x = phi * x + innov * zk
            return x, x

        _, xs = jax.lax.scan(move, m0 + jnp.sqrt(v0) * z[0], z[1:])
        values = seasonal(pd, grid)[:, None] + xs
        return jnp.mean(jnp.any(sign * (values - threshold) > 0.0, axis=0))

    keys = jax.random.split(key, p.rate.shape[0])
    return jax.vmap(one)(p, state, keys)


class ProbabilitySummary(NamedTuple):
    """Posterior-draw-averaged probability, its 90 % interval over draws, and its Monte Carlo SE."""

    probability: float
    lower: float
    upper: float
    mcse: float


def summarize(per_draw: Array, ci: float = 0.9) -> ProbabilitySummary:
    """Mean of per-draw probabilities, the central `ci` interval over draws, and the MCSE of the mean.

    The MCSE treats the (thinned) draws as independent: sd / sqrt(draws).

    >>> summarize(np.array([0.1, 0.2, 0.3, 0.4])).probability
    0.25
    """
    x = np.asarray(per_draw, float)
    lo, hi = np.quantile(x, [(1 - ci) / 2, (1 + ci) / 2])
    mcse = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")
    return ProbabilitySummary(float(x.mean()), float(lo), float(hi), mcse)


def crossing_probability(p: OUParams, state: FilterState, key: Array, *, t0: float, threshold: float,
                         above: bool, horizon: float, step: float = 0.5, n_paths: int = 64) -> ProbabilitySummary:
    """``crossing_probability_draws`` averaged over draws, with its interval and MCSE (see ``summarize``).

    >>> p = OUParams(*(np.full(8, v) for v in (96.0, 0.0, 0.0, 0.2, 2.0)), noise=np.full((8, 1), 1.0))
    >>> s = FilterState(np.full(8, -7.0), np.full(8, 0.5), np.zeros(8))
    >>> crossing_probability(p, s, jax.random.PRNGKey(1), t0=0.0, threshold=90.0, above=False,
    ...                      horizon=4.0).probability > 0.5
    True
    """
    return summarize(crossing_probability_draws(p, state, key, t0=t0, threshold=threshold, above=above,
                                                horizon=horizon, step=step, n_paths=n_paths))
