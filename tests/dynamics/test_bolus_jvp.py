"""The bolus element's written-out derivatives (``bayestwin.dynamics.bolus``, issue 9, brief PMAP).

Two references:

* ``steady_state.exp_dd`` differentiated by JAX (``t exp(-lo t) phi(x)`` with a series for small ``|x|``: exact
  derivatives for every ``x``), for the element itself at random rates and times, flip-flop, rates within 1e-3
  of each other, equal rates and ``tau == 0``, in all three directions (``lam``, ``ka``, ``tau``);
* the verbatim pre-fast-path kernels (``peerlib.old_kernels``), for what the element's ``tau`` derivative feeds in
  the models: gradients with respect to the lag time, bioavailability, sampling times and dose amounts, which
  the population density of ``test_fast_path`` does not exercise (its lag and bioavailability are constants).

Tolerance: the written-out rate derivatives cancel to ``~2 eps / |x|`` relative (module docstring of
``bolus``), < 1e-11 for the ``|x| >= 1e-4`` drawn here; 1e-10 as in ``test_fast_path``; exact points (``x == 0``)
to 1e-14. Deterministic float64: no Monte Carlo error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from peerlib.old_kernels import old_kernels  # noqa: E402

from bayestwin.dynamics import closed_form as cf  # noqa: E402
from bayestwin.dynamics.bolus import bolus_unit  # noqa: E402
from bayestwin.dynamics.events import Doses  # noqa: E402
from bayestwin.dynamics.steady_state import exp_dd  # noqa: E402

jax.config.update("jax_enable_x64", True)

RTOL = 1e-10


def _reference(lam, ka, tau, into_depot):
    return jnp.where(into_depot, ka * exp_dd(lam, ka, tau), jnp.exp(-lam * tau))


def _points(n: int = 400):
    rng = np.random.default_rng(11)
    lam = np.exp(rng.uniform(-4.0, 2.0, n))
    ka = lam * np.exp(rng.uniform(-3.0, 3.0, n))  # half of them flip-flop (ka < lam)
    ka[:40] = lam[:40] * (1.0 + rng.choice([-1.0, 1.0], 40) * np.exp(rng.uniform(-6.9, -3.0, 40)))  # near-equal
    tau = np.exp(rng.uniform(-3.0, 4.0, n))
    x = np.abs(ka - lam) * tau
    keep = x >= 1e-4
    depot = rng.uniform(size=n) < 0.7
    return tuple(jnp.asarray(v[keep]) for v in (lam, ka, tau, depot))


def _jvps(fn, lam, ka, tau, depot):
    """Value and the three directional derivatives of `fn` at every point (one tangent per argument)."""
    ones = jnp.ones_like(lam)
    zero = jnp.zeros_like(lam)
    out = [jax.jvp(lambda a, b, t: fn(a, b, t, depot), (lam, ka, tau), tangent)
           for tangent in ((ones, zero, zero), (zero, ones, zero), (zero, zero, ones))]
    return [out[0][0]] + [o[1] for o in out]


@pytest.mark.parametrize("exact", [True, False])
def test_element_derivatives_equal_series_reference(exact: bool) -> None:
    """``exact=False`` (every dose into the depot) is checked on the depot elements, the only ones it serves."""
    pts = _points()
    new = jax.jit(lambda *p: _jvps(lambda *q: bolus_unit(*q, exact), *p))(*pts)
    ref = jax.jit(lambda *p: _jvps(_reference, *p))(*pts)
    keep = np.ones(pts[0].shape, dtype=bool) if exact else np.asarray(pts[3])
    for what, a, b in zip(("value", "d/d lam", "d/d ka", "d/d tau"), new, ref, strict=True):
        a, b = np.asarray(a)[keep], np.asarray(b)[keep]
        assert np.all(np.isfinite(a)), what
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-300, err_msg=what)


@pytest.mark.parametrize("depot", [True, False])
def test_element_exact_where_x_is_zero(depot: bool) -> None:
    """``ka == lam`` exactly, and ``tau == 0``: value and derivatives of ``t exp(-a t)`` (or of ``exp(-a t)``)."""
    lam = jnp.array([0.3, 0.3, 2.0])
    ka = jnp.array([0.3, 1.5, 2.0])
    tau = jnp.array([4.0, 0.0, 0.5])
    value, d_lam, d_ka, d_tau = _jvps(bolus_unit, lam, ka, tau, jnp.asarray(depot))
    e = np.exp(-np.asarray(lam) * np.asarray(tau))
    t, a, b = np.asarray(tau), np.asarray(lam), np.asarray(ka)
    equal = a == b
    if depot:  # ka t e_a at a == b; at t == 0 the value is 0 and only d/d tau = ka is not
        want = (b * t * e, -0.5 * b * t * t * e, np.where(equal, t * e - 0.5 * b * t * t * e, 0.0),
                np.where(equal, b * (e - a * t * e), b))
    else:
        want = (e, -t * e, np.zeros(3), -a * e)
    for what, got, exp in zip(("value", "d/d lam", "d/d ka", "d/d tau"), (value, d_lam, d_ka, d_tau), want,
                              strict=True):
        np.testing.assert_allclose(np.asarray(got), exp, rtol=1e-14, atol=1e-300, err_msg=what)


def _history(central: bool) -> Doses:
    """Three boluses, padded to 5: depot at 0 h and 12 h, central (or depot) at 6 h."""
    rows = [(0.0, 100.0, 0), (6.0, 50.0, int(central)), (12.0, 80.0, 0)]
    n = 5
    pad = n - len(rows)
    return Doses(time=jnp.asarray([r[0] for r in rows] + [jnp.inf] * pad),
                 amt=jnp.asarray([r[1] for r in rows] + [0.0] * pad),
                 cmt=jnp.asarray([r[2] for r in rows] + [0] * pad, dtype=jnp.int32),
                 rate=jnp.zeros(n), ii=jnp.zeros(n), ss=jnp.zeros(n, dtype=jnp.int32),
                 reset=jnp.zeros(n, dtype=bool), mask=jnp.arange(n) < len(rows))


@pytest.mark.parametrize(("model", "central"), [("one_cmt_oral", True), ("one_cmt_oral", False),
                                                ("two_cmt_oral", True)])
def test_lag_bioavailability_time_and_amount_gradients_equal_old_kernels(model: str, central: bool) -> None:
    """With a dose into the central compartment (``direct``: the exact element) and without (depot only)."""
    times = jnp.array([0.25, 1.0, 2.5, 6.0, 6.5, 9.0, 12.75, 24.0, 48.0])
    doses = _history(central)
    features = cf.dose_features(doses)
    assert features == (frozenset({"direct"}) if central else frozenset())  # the bolus kernel
    params = {"ka": 0.9, "cl": 2.0, "v": 20.0} if model == "one_cmt_oral" else {
        "ka": 1.3, "cl": 2.0, "v1": 20.0, "q": 3.0, "v2": 40.0}
    fn = getattr(cf, model)
    weights = jnp.asarray(np.random.default_rng(2).uniform(0.5, 1.5, times.shape))

    def total(tlag, f, t, amt):
        d = doses._replace(amt=amt)
        return jnp.sum(weights * fn(t, d, **params, f=f, tlag=tlag, features=features))

    grad = jax.grad(total, argnums=(0, 1, 2, 3))
    args = (jnp.asarray(0.4), jnp.asarray(0.7), times, doses.amt)

    def both(*a):
        new = grad(*a)
        with old_kernels():
            return new, grad(*a)
    new, old = jax.jit(both)(*args)
    for what, a, b in zip(("tlag", "f", "sampling times", "dose amounts"), new, old, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert np.all(np.isfinite(a)), what
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-13 * np.max(np.abs(b)), err_msg=what)
