"""Observation likelihood of the residual error models, with M3 censoring and padding.

Pure JAX. Padded entries (``mask`` false) contribute exactly 0 and are fed safe
values first, so neither the value nor the gradient can become NaN.

Examples
--------
>>> import jax.numpy as jnp
>>> ll = observation_loglik(jnp.array([1.0]), jnp.array([1.2]), kind="additive", sigmas={"sigma_add": 0.5},
...                         cens=jnp.array([0]), limit=jnp.array([jnp.nan]), mask=jnp.array([True]))
>>> round(float(ll[0]), 6)  # Normal(1.0 | 1.2, 0.5)
-0.305791
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import betainc, log_ndtr
from jax.scipy.stats import norm
from jax.scipy.stats import t as student_t

from bayestwin.exceptions import SpecError

__all__ = ["log_cdf", "observation_loglik", "residual_sd"]

_LOG_TINY = -745.0  # log of the smallest positive double: a floor for log(prediction) when it is 0


def residual_sd(pred: Array, kind: str, sigmas: Mapping[str, Array], sd: Array | None = None) -> Array:
    """SD of the observation around `pred` (on the log scale for ``lognormal``).

    ``known_sd`` returns `sd`, each observation's own SD (``Observations.sd``); SpecError without it.
    """
    if kind == "known_sd":
        if sd is None:
            raise SpecError("a known_sd error model needs each observation's SD: pass sd= (the DVSD column of the "
                            "data, carried in Observations.sd by cohort_arrays)")
        return jnp.broadcast_to(sd, pred.shape)
    if kind == "additive":
        return jnp.broadcast_to(sigmas["sigma_add"], pred.shape)
    if kind == "proportional":
        return sigmas["sigma_prop"] * jnp.abs(pred)
    if kind == "combined":
        return jnp.sqrt(sigmas["sigma_add"] ** 2 + (sigmas["sigma_prop"] * pred) ** 2)
    if kind == "lognormal":
        return jnp.broadcast_to(sigmas["sigma_log"], pred.shape)
    raise ValueError(f"unknown error model {kind!r}")


def log_cdf(z: Array, nu: float | None = None) -> Array:
    """Log P(Z <= z) of the standardised residual: Normal (``nu`` None) or Student-t with ``nu`` (fixed) df.

    The Student-t CDF is the regularised incomplete beta function, ``1 - I_x(nu/2, 1/2) / 2`` with
    ``x = nu / (nu + z**2)`` for z >= 0 (mirrored below 0), evaluated on the lower tail for accuracy there.

    Examples
    --------
    >>> round(float(log_cdf(jnp.array(-3.0), 4.0)), 6)  # scipy.stats.t.logcdf(-3, 4)
    -3.913475
    """
    if nu is None:
        return log_ndtr(z)
    return _log_cdf_t(z, float(nu))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _log_cdf_t(z: Array, nu: float) -> Array:
    # The derivative is given in closed form (pdf / cdf) below: through betainc it would be inf * 0 at z = 0.
    tail = 0.5 * betainc(nu / 2.0, 0.5, nu / (nu + z * z))  # P(Z <= -|z|)
    return jnp.where(z < 0, jnp.log(tail), jnp.log1p(-tail))


@_log_cdf_t.defjvp
def _log_cdf_t_jvp(nu: float, primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (z,), (dz,) = primals, tangents
    value = _log_cdf_t(z, nu)
    return value, jnp.exp(student_t.logpdf(z, nu) - value) * dz


def _log_diff_cdf(upper: Array, lower: Array, nu: float | None) -> Array:
    """log(F(upper) - F(lower)) for upper > lower, stable in both tails."""
    return log_cdf(upper, nu) + jnp.log(-jnp.expm1(log_cdf(lower, nu) - log_cdf(upper, nu)))


def _logpdf(y: Array, loc: Array, scale: Array, nu: float | None) -> Array:
    return norm.logpdf(y, loc, scale) if nu is None else student_t.logpdf(y, nu, loc, scale)


def observation_loglik(
    value: Array,
    pred: Array,
    *,
    kind: str,
    sigmas: Mapping[str, Array],
    cens: Array,
    limit: Array,
    mask: Array,
    censored: bool = True,
    sd: Array | None = None,
    nu: float | None = None,
) -> Array:
    """Pointwise log-likelihood of observations `value` given predictions `pred`.

    ``cens == 0``: the density of `value`; ``cens == 1``: ``log P(y < value)``
    (value = LLOQ; with a finite `limit`, ``log P(limit < y < value)``, M4);
    ``cens == -1``: ``log P(y > value)`` (value = ULOQ). For ``lognormal`` the
    density is that of y (log-normal, Jacobian included), so it is comparable
    across error models.

    `censored` (static) is a promise that some entry may have ``cens != 0``; with False the censored
    branches are not compiled (the likelihood of uncensored data costs about half as much), and the
    values of `cens` and `limit` are ignored.

    `sd` holds each observation's known SD (``known_sd`` only; entries that are masked, or not finite and
    positive, are replaced by 1 before use so that padding cannot make a gradient NaN).

    `nu` (static) makes the residual Student-t with `nu` degrees of freedom and scale `sd` (density and the
    censored probabilities alike); None keeps it Normal.
    """
    safe_value = jnp.where(mask, value, 1.0)
    safe_pred = jnp.where(mask, pred, 1.0)
    if sd is not None:
        sd = jnp.where(mask & jnp.isfinite(sd) & (sd > 0), sd, 1.0)
    sd = residual_sd(safe_pred, kind, sigmas, sd)
    if kind == "lognormal":
        loc = jnp.log(jnp.maximum(safe_pred, 0.0) + jnp.exp(_LOG_TINY))
        y = jnp.log(jnp.where(safe_value > 0, safe_value, 1.0))
        dens = _logpdf(y, loc, sd, nu) - y
        lim = jnp.log(jnp.where(jnp.isfinite(limit) & (limit > 0), limit, 1.0))
        has_lower = jnp.isfinite(limit) & (limit > 0)
    else:
        loc, y = safe_pred, safe_value
        dens = _logpdf(y, loc, sd, nu)
        lim = jnp.where(jnp.isfinite(limit), limit, 0.0)
        has_lower = jnp.isfinite(limit)
    if not censored:
        return jnp.where(mask, dens, 0.0)
    z = (y - loc) / sd
    z_lim = (lim - loc) / sd
    # The M4 branch is evaluated even where unused: feed it harmless values there, or its gradient
    # (log of a vanishing difference) would turn into NaN through jnp.where.
    z_up = jnp.where(has_lower, z, 0.0)
    z_low = jnp.where(has_lower, jnp.minimum(z_lim, z - 1e-12), -1.0)
    below = jnp.where(has_lower, _log_diff_cdf(z_up, z_low, nu), log_cdf(z, nu))
    above = log_cdf(-z, nu)
    ll = jnp.where(cens == 1, below, jnp.where(cens == -1, above, dens))
    return jnp.where(mask, ll, 0.0)
