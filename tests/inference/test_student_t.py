"""Student-t residuals (``ErrorModel(nu=...)``): likelihood and censoring against scipy.stats.t, simulation,
gradients, the spec round trip, and the places that refuse them (plan comparison).

scipy's ``t`` is an independent float64 implementation of the same closed forms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import bayestwin.dynamics  # noqa: F401  - enables jax_enable_x64
from bayestwin.exceptions import SpecError
from bayestwin.inference.likelihood import log_cdf, observation_loglik
from bayestwin.inference.outputs import simulate_observations, student_t_noise
from bayestwin.spec import ErrorModel, example_spec
from bayestwin.spec.transforms import set_error_model

NU = 4.0
SIGMAS = {"sigma_add": 0.7, "sigma_prop": 0.2, "sigma_log": 0.3}
PRED = np.array([0.5, 1.0, 2.5, 7.0, 12.0, 40.0, 0.05, 150.0])
VALUE = np.array([0.3, 1.4, 2.0, 9.0, 11.0, 35.0, 0.09, 90.0])
LOWER = VALUE * 0.4
# The incomplete beta function behind the t CDF is accurate to ~1e-14 relative in float64 (jax and scipy use
# different algorithms: continued fraction vs cephes); 1e-10 leaves room for the log and the far tail
# (z = -86 for the (150, 90) additive pair) while still catching any wrong scale, df or branch (errors >= 1e-3).
RTOL, ATOL = 1e-10, 1e-13


def _ll(kind: str, cens: int, limit: np.ndarray | None = None) -> np.ndarray:
    sig = {k: jnp.asarray(v) for k, v in SIGMAS.items()}
    lim = np.full_like(VALUE, np.nan) if limit is None else limit
    out = jax.jit(observation_loglik, static_argnames=("kind", "nu"))(
        jnp.asarray(VALUE), jnp.asarray(PRED), kind=kind, sigmas=sig, cens=jnp.full(VALUE.shape, cens),
        limit=jnp.asarray(lim), mask=jnp.ones(VALUE.shape, bool), nu=NU)
    return np.asarray(out)


def _dist(kind: str) -> tuple[stats.rv_continuous, np.ndarray, np.ndarray]:
    """scipy's t for `kind` and the (transformed) value and lower limit it applies to."""
    if kind == "lognormal":
        return stats.t(NU, np.log(PRED), SIGMAS["sigma_log"]), np.log(VALUE), np.log(LOWER)
    sd = {"additive": np.full_like(PRED, SIGMAS["sigma_add"]), "proportional": SIGMAS["sigma_prop"] * PRED,
          "combined": np.sqrt(SIGMAS["sigma_add"] ** 2 + (SIGMAS["sigma_prop"] * PRED) ** 2)}[kind]
    return stats.t(NU, PRED, sd), VALUE, LOWER


KINDS = ("additive", "proportional", "combined", "lognormal")


@pytest.mark.parametrize("kind", KINDS)
def test_density_matches_scipy(kind: str) -> None:
    d, y, _ = _dist(kind)
    jac = -np.log(VALUE) if kind == "lognormal" else 0.0  # density of y, not of log y
    np.testing.assert_allclose(_ll(kind, 0), d.logpdf(y) + jac, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_censored_probabilities_match_scipy(kind: str) -> None:
    d, y, low = _dist(kind)
    np.testing.assert_allclose(_ll(kind, 1), d.logcdf(y), rtol=RTOL, atol=ATOL)  # M3 below the LLOQ
    np.testing.assert_allclose(_ll(kind, -1), d.logsf(y), rtol=RTOL, atol=ATOL)  # above the ULOQ
    m4 = logsumexp(np.stack([d.logcdf(y), d.logcdf(low)]), b=np.array([[1.0], [-1.0]]), axis=0)
    np.testing.assert_allclose(_ll(kind, 1, LOWER), m4, rtol=RTOL, atol=ATOL)  # M4 interval


def test_heavier_tails_than_normal() -> None:
    # the (150, 90) additive residual is 86 scales out: Normal gives ~ -3700, Student-t(4) ~ -16
    t_ll = _ll("additive", 0)[-1]
    n_ll = stats.norm(150.0, 0.7).logpdf(90.0)
    assert n_ll < -3000 and -30 < t_ll < -10


def test_log_cdf_both_tails_and_gradient() -> None:
    z = jnp.array([-40.0, -3.0, -0.1, 0.0, 0.1, 3.0, 40.0])
    np.testing.assert_allclose(np.asarray(log_cdf(z, NU)), stats.t(NU).logcdf(np.asarray(z)), rtol=RTOL, atol=ATOL)
    g = np.asarray(jax.vmap(jax.grad(lambda x: log_cdf(x, NU)))(z))
    pdf_over_cdf = np.exp(stats.t(NU).logpdf(np.asarray(z)) - stats.t(NU).logcdf(np.asarray(z)))
    np.testing.assert_allclose(g, pdf_over_cdf, rtol=1e-8)


def test_gradients_finite_with_padding_and_censoring() -> None:
    mask = jnp.array([True] * 6 + [False] * 2)
    cens = jnp.array([0, 1, -1, 1, 0, -1, 1, 0])
    limit = jnp.where(jnp.arange(8) == 3, jnp.asarray(LOWER), jnp.nan)

    def total(p: jax.Array, s: jax.Array) -> jax.Array:
        return jnp.sum(observation_loglik(jnp.asarray(VALUE), p, kind="combined",
                                          sigmas={"sigma_add": s, "sigma_prop": jnp.asarray(0.2)},
                                          cens=cens, limit=limit, mask=mask, nu=NU))

    gp, gs = jax.grad(total, argnums=(0, 1))(jnp.asarray(PRED), jnp.asarray(0.7))
    assert np.all(np.isfinite(np.asarray(gp))) and np.isfinite(float(gs))
    assert np.all(np.asarray(gp)[6:] == 0.0)
    eps = 1e-6  # central difference in the SD; error O(eps^2)
    p = jnp.asarray(PRED)
    fd = (total(p, jnp.asarray(0.7 + eps)) - total(p, jnp.asarray(0.7 - eps))) / (2 * eps)
    np.testing.assert_allclose(float(gs), float(fd), rtol=1e-6)


def test_simulated_noise_is_student_t() -> None:
    # 200,000 draws: the KS statistic's 1e-3 quantile under the null is ~1.95/sqrt(n) = 0.0044
    n = 200_000
    e = np.asarray(student_t_noise(jax.random.PRNGKey(3), jax.random.normal(jax.random.PRNGKey(2), (n,)), NU))
    assert stats.kstest(e, stats.t(NU).cdf).statistic < 1.95 / np.sqrt(n)
    assert stats.kstest(e, stats.norm(0, np.sqrt(NU / (NU - 2))).cdf).statistic > 5 / np.sqrt(n)  # not Normal
    y = np.asarray(simulate_observations(jax.random.PRNGKey(0), jnp.full(n, 10.0), jnp.zeros(n, dtype=int),
                                         errors=[ErrorModel("proportional", nu=NU)], sigmas=[{"sigma_prop": 0.1}]))
    assert stats.kstest((y - 10.0) / 1.0, stats.t(NU).cdf).statistic < 1.95 / np.sqrt(n)


def test_spec_round_trip_and_digest() -> None:
    spec = example_spec()
    t_spec = set_error_model(spec, ErrorModel(spec.error[0].kind, output=spec.error[0].output, nu=NU))
    assert type(t_spec).from_dict(t_spec.to_dict()) == t_spec
    assert t_spec.digest() != spec.digest()
    assert "nu" not in spec.error[0].to_dict()  # Normal specs keep their dicts (and digests) unchanged
    assert ErrorModel.from_dict(ErrorModel("additive", nu=3).to_dict()).nu == 3.0


@pytest.mark.parametrize("nu", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_nu_is_refused(nu: float) -> None:
    with pytest.raises(SpecError, match="nu"):
        ErrorModel("additive", nu=nu)


def test_known_sd_with_nu_is_refused() -> None:
    with pytest.raises(SpecError, match="known_sd"):
        ErrorModel("known_sd", nu=4.0)


def test_plan_comparison_refuses_student_t() -> None:
    from bayestwin.decision.kernel import require_normal_residuals

    spec = example_spec()
    t_spec = set_error_model(spec, ErrorModel(spec.error[0].kind, output=spec.error[0].output, nu=NU))
    require_normal_residuals(spec)
    with pytest.raises(SpecError, match="Student-t"):
        require_normal_residuals(t_spec)
