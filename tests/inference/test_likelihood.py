"""Observation log-likelihood: every error model and censoring type against scipy.stats, padding and stability.

The reference is scipy's independent implementation (``norm``/``lognorm`` ``logpdf``, ``logcdf``, ``logsf``),
evaluated in float64. JAX runs in float64 because ``bayestwin.dynamics`` switches on x64 when imported.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import bayestwin.dynamics  # noqa: F401  - enables jax_enable_x64 before any array is made
from bayestwin.inference.likelihood import observation_loglik, residual_sd
from bayestwin.spec.observation import ERROR_KINDS

KINDS = ("additive", "proportional", "combined", "lognormal")
SIGMAS = {"sigma_add": 0.7, "sigma_prop": 0.2, "sigma_log": 0.3}

# Predictions and observations spanning small to large values. With additive error the pair (40, 35) puts the
# observation 7.1 SDs below the prediction, so log P(y > value) is -6e-13: a log-probability next to 0; the
# pair (150, 90) puts it 86 SDs below, deep in the tail of log P(y < value).
PRED = np.array([0.5, 1.0, 2.5, 7.0, 12.0, 40.0, 0.05, 150.0])
VALUE = np.array([0.3, 1.4, 2.0, 9.0, 11.0, 35.0, 0.09, 90.0])
LOWER = VALUE * 0.4  # the other end of an M4 interval (0 < LOWER < VALUE)

# rtol 1e-12: both sides are float64 implementations of the same closed forms, agreeing to ~1e-14 relative.
# atol 1e-15: where a log-probability is within 1e-12 of 0 (P ~ 1), jax's log_ndtr evaluates log(ndtr(z)) and
# is accurate only to an absolute ~1 ulp of 1 (1.1e-16); an absolute 1e-15 on a log-likelihood term is
# immaterial and far below what any fit can resolve.
RTOL, ATOL = 1e-12, 1e-15

# One compiled kernel per kind keeps the file fast (eager op-by-op dispatch compiles every primitive and costs
# seconds); the un-jitted path is exercised by the module's doctest.
_loglik = jax.jit(observation_loglik, static_argnames=("kind",))


@functools.partial(jax.jit, static_argnames=("kind",))
def _grad(value: jax.Array, pred: jax.Array, sigmas: dict[str, jax.Array], cens: jax.Array, limit: jax.Array,
          mask: jax.Array, *, kind: str) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Gradient of the summed log-likelihood with respect to the predictions and the error SDs."""

    def total(p: jax.Array, sig: dict[str, jax.Array]) -> jax.Array:
        return jnp.sum(observation_loglik(value, p, kind=kind, sigmas=sig, cens=cens, limit=limit, mask=mask))

    return jax.grad(total, argnums=(0, 1))(pred, sigmas)


N = 8  # every call is padded to this length, so each kind compiles once


def _args(value: np.ndarray, pred: np.ndarray, cens: np.ndarray | int, limit: np.ndarray | None,
          mask: np.ndarray | None) -> tuple[int, tuple[jax.Array, ...]]:
    """Arrays of length N: the given entries first, then padding (mask false, harmless values)."""
    n = len(value)
    pad = N - n
    cens = np.broadcast_to(np.asarray(cens), (n,))
    limit = np.full(n, np.nan) if limit is None else np.asarray(limit, dtype=float)
    mask = np.ones(n, dtype=bool) if mask is None else np.asarray(mask)
    arrays = (np.concatenate([np.asarray(value, dtype=float), np.ones(pad)]),
              np.concatenate([np.asarray(pred, dtype=float), np.ones(pad)]),
              np.concatenate([cens, np.zeros(pad)]).astype(np.int32), np.concatenate([limit, np.full(pad, np.nan)]),
              np.concatenate([mask, np.zeros(pad, dtype=bool)]))
    return n, tuple(jnp.asarray(a) for a in arrays)


def _g(value: np.ndarray, pred: np.ndarray, *, kind: str, cens: np.ndarray | int, limit: np.ndarray | None = None,
       mask: np.ndarray | None = None, sigmas: dict[str, jax.Array] | None = None) -> tuple[np.ndarray, dict]:
    """Gradients (w.r.t. the given predictions, and each SD) of the summed log-likelihood."""
    n, (v, p, c, lim, m) = _args(value, pred, cens, limit, mask)
    g_pred, g_sig = _grad(v, p, _sigmas() if sigmas is None else sigmas, c, lim, m, kind=kind)
    return np.asarray(g_pred)[:n], {k: float(x) for k, x in g_sig.items()}


def _sigmas(**overrides: float) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v) for k, v in (SIGMAS | overrides).items()}


def _scipy_dist(kind: str, pred: np.ndarray) -> stats.rv_continuous:
    if kind == "lognormal":
        return stats.lognorm(SIGMAS["sigma_log"], scale=pred)
    sd = {"additive": np.full_like(pred, SIGMAS["sigma_add"]), "proportional": SIGMAS["sigma_prop"] * pred,
          "combined": np.sqrt(SIGMAS["sigma_add"] ** 2 + (SIGMAS["sigma_prop"] * pred) ** 2)}[kind]
    return stats.norm(pred, sd)


def _ll(value: np.ndarray, pred: np.ndarray, *, kind: str, cens: np.ndarray | int, limit: np.ndarray | None = None,
        mask: np.ndarray | None = None, sigmas: dict[str, jax.Array] | None = None) -> np.ndarray:
    """Pointwise log-likelihood of the given entries."""
    n, (v, p, c, lim, m) = _args(value, pred, cens, limit, mask)
    out = _loglik(v, p, kind=kind, sigmas=_sigmas() if sigmas is None else sigmas, cens=c, limit=lim, mask=m)
    assert out.dtype == jnp.float64 and out.shape == (N,)
    assert np.all(np.asarray(out)[n:] == 0.0)  # the padding
    return np.asarray(out)[:n]


@pytest.mark.parametrize("kind", KINDS)
def test_density_matches_scipy(kind: str) -> None:
    np.testing.assert_allclose(_ll(VALUE, PRED, kind=kind, cens=0), _scipy_dist(kind, PRED).logpdf(VALUE),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_below_lloq_m3_matches_scipy(kind: str) -> None:
    # cens 1: value is the LLOQ; without a finite limit the likelihood is log P(y < LLOQ).
    np.testing.assert_allclose(_ll(VALUE, PRED, kind=kind, cens=1), _scipy_dist(kind, PRED).logcdf(VALUE),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_below_lloq_with_lower_limit_m4_matches_scipy(kind: str) -> None:
    # cens 1 with a finite limit: log P(limit < y < LLOQ), by log-sum-exp of the two log-CDFs with signs (+1, -1).
    d = _scipy_dist(kind, PRED)
    exact = logsumexp(np.stack([d.logcdf(VALUE), d.logcdf(LOWER)]), b=np.array([[1.0], [-1.0]]), axis=0)
    np.testing.assert_allclose(_ll(VALUE, PRED, kind=kind, cens=1, limit=LOWER), exact, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_above_uloq_matches_scipy(kind: str) -> None:
    # cens -1: value is the ULOQ; log P(y > ULOQ).
    np.testing.assert_allclose(_ll(VALUE, PRED, kind=kind, cens=-1), _scipy_dist(kind, PRED).logsf(VALUE),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_censoring_in_one_call(kind: str) -> None:
    cens = np.array([0, 1, -1, 1, 0, -1, 1, 0])
    limit = np.where(np.arange(8) == 3, LOWER, np.nan)  # the 4th entry is an M4 interval
    d = _scipy_dist(kind, PRED)
    m4 = logsumexp(np.stack([d.logcdf(VALUE), d.logcdf(LOWER)]), b=np.array([[1.0], [-1.0]]), axis=0)
    exact = np.select([cens == 0, (cens == 1) & np.isfinite(limit), cens == 1, cens == -1],
                      [d.logpdf(VALUE), m4, d.logcdf(VALUE), d.logsf(VALUE)])
    np.testing.assert_allclose(_ll(VALUE, PRED, kind=kind, cens=cens, limit=limit), exact, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_limit_is_ignored_unless_censored_below(kind: str) -> None:
    base0, base_up = _ll(VALUE, PRED, kind=kind, cens=0), _ll(VALUE, PRED, kind=kind, cens=-1)
    np.testing.assert_array_equal(_ll(VALUE, PRED, kind=kind, cens=0, limit=LOWER), base0)
    np.testing.assert_array_equal(_ll(VALUE, PRED, kind=kind, cens=-1, limit=LOWER), base_up)


def test_lognormal_lower_limit_zero_is_plain_m3() -> None:
    # On the log scale a lower limit of 0 is -inf: P(0 < y < LLOQ) = P(y < LLOQ).
    np.testing.assert_array_equal(_ll(VALUE, PRED, kind="lognormal", cens=1, limit=np.zeros_like(VALUE)),
                                  _ll(VALUE, PRED, kind="lognormal", cens=1))


def test_docstring_value() -> None:
    # Normal(1.0 | 1.2, 0.5)
    ll = _ll(np.array([1.0]), np.array([1.2]), kind="additive", cens=0, sigmas=_sigmas(sigma_add=0.5))
    np.testing.assert_allclose(ll, stats.norm.logpdf(1.0, 1.2, 0.5), rtol=RTOL)


# --- padding ----------------------------------------------------------------------------------
MASK = np.array([True, False, True, False, True, False, True, False])
BAD = np.array([np.nan, np.inf, -np.inf, 0.0])  # values a padded slot may hold


def _poisoned(a: np.ndarray, fill: np.ndarray) -> np.ndarray:
    out = a.astype(float).copy()
    out[~MASK] = fill
    return out


def _padding(cens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """value, pred, limit, cens with non-finite garbage in the padded slots."""
    limit = _poisoned(np.where(cens == 1, LOWER, np.nan), np.array([np.inf, np.nan, -np.inf, 1e308]))
    cens_arr = np.where(MASK, cens, np.array([1, -1, 0, 7] * 2))  # padded cens may hold anything
    return _poisoned(VALUE, BAD), _poisoned(PRED, BAD[::-1]), limit, cens_arr


def _benign(cens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same real entries, padded with harmless values."""
    limit = _poisoned(np.where(cens == 1, LOWER, np.nan), np.array([np.nan] * 4))
    return _poisoned(VALUE, np.ones(4)), _poisoned(PRED, np.ones(4)), limit, np.where(MASK, cens, 0)


@pytest.mark.parametrize("cens", [0, 1, -1])
@pytest.mark.parametrize("kind", KINDS)
def test_masked_entries_contribute_exactly_zero(kind: str, cens: int) -> None:
    value, pred, limit, cens_arr = _padding(cens)
    ll = _ll(value, pred, kind=kind, cens=cens_arr, limit=limit, mask=MASK)
    assert np.all(ll[~MASK] == 0.0)
    unpadded = _ll(VALUE, PRED, kind=kind, cens=cens, limit=None if cens != 1 else LOWER)
    np.testing.assert_array_equal(ll[MASK], unpadded[MASK])


@pytest.mark.parametrize("cens", [0, 1, -1])
@pytest.mark.parametrize("kind", KINDS)
def test_masked_entries_give_finite_gradients(kind: str, cens: int) -> None:
    value, pred, limit, cens_arr = _padding(cens)
    g_pred, g_sig = _g(value, pred, kind=kind, cens=cens_arr, limit=limit, mask=MASK)
    assert np.all(np.isfinite(g_pred))
    assert np.all(g_pred[~MASK] == 0.0)
    assert all(np.isfinite(g) for g in g_sig.values()), g_sig
    # garbage in the padded slots changes nothing: same gradient as with harmless padding
    value, pred, limit, cens_arr = _benign(cens)
    b_pred, b_sig = _g(value, pred, kind=kind, cens=cens_arr, limit=limit, mask=MASK)
    np.testing.assert_array_equal(g_pred, b_pred)
    assert g_sig == b_sig
    if kind != "combined":  # one SD only: it gets no gradient from the others
        unused = set(SIGMAS) - set(ERROR_KINDS[kind])
        assert all(g_sig[name] == 0.0 for name in unused)


def test_everything_masked_is_zero_with_zero_gradient() -> None:
    value, pred = np.full(8, np.nan), np.array([np.nan, np.inf, -np.inf, 0.0] * 2)
    mask = np.zeros(8, dtype=bool)
    assert np.all(_ll(value, pred, kind="combined", cens=0, mask=mask) == 0.0)
    g_pred, g_sig = _g(value, pred, kind="combined", cens=0, mask=mask)
    assert np.all(g_pred == 0.0)
    assert all(g == 0.0 for g in g_sig.values())


# --- stability --------------------------------------------------------------------------------
@pytest.mark.parametrize("z", [-40.0, -25.0, -8.0])
def test_m3_far_below_prediction_is_finite_and_exact(z: float) -> None:
    # LLOQ 1, prediction 1 - z, additive SD 1: log Phi(z); Phi(-40) = 3.7e-350 underflows, its log does not.
    pred = np.array([1.0 - z])
    ll = _ll(np.array([1.0]), pred, kind="additive", cens=1, sigmas=_sigmas(sigma_add=1.0))
    assert np.isfinite(ll).all()
    # For -30 < z <= -20 jax's log_ndtr uses a 3-term asymptotic series whose first omitted term, 105 / z**8,
    # is 2.7e-9 absolute (1.2e-11 relative) at z = -25; elsewhere it agrees with scipy to 1e-12 relative.
    rtol = 3e-11 if -30.0 < z <= -20.0 else RTOL
    np.testing.assert_allclose(ll, stats.norm.logcdf(z), rtol=rtol)

    g = float(_g(np.array([1.0]), pred, kind="additive", cens=1, sigmas=_sigmas(sigma_add=1.0))[0][0])
    # d/dpred log Phi(LLOQ - pred) = -phi(z)/Phi(z), minus the inverse Mills ratio: finite, ~ z for z << 0.
    # rtol 1e-9: the derivative of the asymptotic series carries the same truncation, relatively ~10x larger.
    exact_g = -np.exp(stats.norm.logpdf(z) - stats.norm.logcdf(z))
    np.testing.assert_allclose(g, exact_g, rtol=1e-9)


def test_uloq_far_above_prediction_is_finite_and_exact() -> None:
    # ULOQ 41, prediction 1, SD 1: log P(y > 41) = log Phi(-40)
    ll = _ll(np.array([41.0]), np.array([1.0]), kind="additive", cens=-1, sigmas=_sigmas(sigma_add=1.0))
    np.testing.assert_allclose(ll, stats.norm.logsf(40.0), rtol=RTOL)


def test_m4_interval_in_far_tail_is_finite() -> None:
    # P(-45 < z < -40): both CDFs underflow in double precision; the stable difference stays finite.
    ll = _ll(np.array([1.0]), np.array([41.0]), kind="additive", cens=1, limit=np.array([-4.0]),
             sigmas=_sigmas(sigma_add=1.0))
    exact = stats.norm.logcdf(-40.0) + np.log(-np.expm1(stats.norm.logcdf(-45.0) - stats.norm.logcdf(-40.0)))
    np.testing.assert_allclose(ll, exact, rtol=RTOL)


# --- gradients of real observations -----------------------------------------------------------
# The M4 branch is evaluated for every entry (and discarded by jnp.where when there is no lower limit). Its
# placeholder lower bound must not produce an infinite gradient: 0 * inf = NaN would leak through jnp.where.
REAL_GRAD_CASES = {
    # (kind, value, pred, cens, sigma): lognormal observations below 1 (model units) several SDs above pred;
    # the additive case (placeholder bound above z, but Phi(z) well resolved) is a control that passes today
    "lognormal density, value < 1": ("lognormal", 0.2, 0.05, 0, 0.3),
    "lognormal M3, LLOQ < 1, pred far below": ("lognormal", 0.1, 0.01, 1, 0.3),
    "lognormal above ULOQ, ULOQ < 1": ("lognormal", 0.2, 0.05, -1, 0.3),
    "additive density, negative value": ("additive", -0.5, 0.0, 0, 0.1),
}


def _analytic_grads(kind: str, value: float, pred: float, cens: int, s: float) -> tuple[float, float]:
    """d ll / d pred and d ll / d sigma, from the closed forms."""
    if kind == "lognormal":
        z, dz_dp = (np.log(value) - np.log(pred)) / s, -1.0 / (s * pred)
    else:
        z, dz_dp = (value - pred) / s, -1.0 / s
    dz_ds = -z / s
    if cens == 0:
        dll_dz, extra_ds = -z, -1.0 / s  # log phi(z) - log s (- log y)
    elif cens == 1:
        dll_dz, extra_ds = np.exp(stats.norm.logpdf(z) - stats.norm.logcdf(z)), 0.0
    else:
        dll_dz, extra_ds = -np.exp(stats.norm.logpdf(z) - stats.norm.logsf(z)), 0.0
    return dll_dz * dz_dp, dll_dz * dz_ds + extra_ds


@pytest.mark.parametrize("case", list(REAL_GRAD_CASES))
def test_real_observation_gradients_are_finite_and_exact(case: str) -> None:
    kind, value, pred, cens, s = REAL_GRAD_CASES[case]
    name = {"lognormal": "sigma_log", "additive": "sigma_add"}[kind]
    g_pred, g_sig = _g(np.array([value]), np.array([pred]), kind=kind, cens=cens, sigmas=_sigmas(**{name: s}))
    g_p, g_s = float(g_pred[0]), g_sig[name]
    exact_p, exact_s = _analytic_grads(kind, value, pred, cens, s)
    # rtol 1e-9: float64 closed forms; the tail ratios phi/Phi lose a few digits to cancellation
    np.testing.assert_allclose(g_p, exact_p, rtol=1e-9)
    np.testing.assert_allclose(g_s, exact_s, rtol=1e-9)


# --- residual_sd ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_residual_sd(kind: str) -> None:
    pred = jnp.asarray(PRED)
    expected = {"additive": np.full_like(PRED, SIGMAS["sigma_add"]), "proportional": SIGMAS["sigma_prop"] * PRED,
                "combined": np.sqrt(SIGMAS["sigma_add"] ** 2 + (SIGMAS["sigma_prop"] * PRED) ** 2),
                "lognormal": np.full_like(PRED, SIGMAS["sigma_log"])}[kind]
    np.testing.assert_array_equal(np.asarray(residual_sd(pred, kind, _sigmas())), expected)


def test_residual_sd_proportional_uses_abs() -> None:
    np.testing.assert_array_equal(np.asarray(residual_sd(jnp.array([-2.0, 2.0]), "proportional", _sigmas())),
                                  [0.4, 0.4])


def test_unknown_error_model_raises() -> None:
    with pytest.raises(ValueError, match=r"unknown error model 'poisson'"):
        residual_sd(jnp.ones(2), "poisson", _sigmas())
    with pytest.raises(ValueError, match=r"unknown error model 'poisson'"):
        _ll(VALUE, PRED, kind="poisson", cens=0)
