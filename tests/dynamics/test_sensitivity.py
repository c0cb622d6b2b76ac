"""Forward sensitivities behind a custom VJP: the same values and gradients as reverse mode through diffrax.

The reference is reverse mode through diffrax's checkpointed solver (itself checked against finite differences
in ``test_ode.py``); both are "discretise then differentiate" of the same solver steps, so they agree to
round-off, far below the solver tolerance. Cases cover what the likelihood of an ODE model meets: several
patients under ``vmap``, repeated oral doses, an infusion, a steady-state train (Newton solve plus implicit
derivative), piecewise-constant parameters, and a dictionary of parameters.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.ode import solve_amounts
from bayestwin.dynamics.ode_models import one_cmt_oral_mm_rhs
from bayestwin.dynamics.sensitivity import forward_jacobian_vjp
from bayestwin.exceptions import SpecError

THETA = np.array([1.2, 2.0, 10.0, 20.0])  # ka 1/h, Km mg/L, Vm mg/h, V L
TIMES = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.5, 24.0, 30.0, np.inf])  # the last one is padding


def doses_of(records: list[tuple[float, float, int, float, float, int]], n: int = 4) -> Doses:
    """(time, amt, cmt, rate, ii, ss) records padded to `n`."""
    rec = records + [(np.inf, 0.0, 0, 0.0, 0.0, 0)] * (n - len(records))
    col = lambda k, dt: jnp.asarray(np.array([r[k] for r in rec], dtype=dt))  # noqa: E731
    return Doses(time=col(0, float), amt=col(1, float), cmt=col(2, np.int32), rate=col(3, float), ii=col(4, float),
                 ss=col(5, np.int32), reset=jnp.zeros(n, bool), mask=jnp.arange(n) < len(records))


CASES = {
    "repeated oral": doses_of([(0.0, 100.0, 0, 0.0, 0.0, 0), (12.0, 100.0, 0, 0.0, 0.0, 0)]),
    "infusion": doses_of([(0.0, 80.0, 1, 40.0, 0.0, 0), (12.0, 50.0, 0, 0.0, 0.0, 0)]),
    "steady state": doses_of([(0.0, 60.0, 0, 0.0, 12.0, 1)]),
}


def loss(sensitivity: str, theta: jax.Array, amt: jax.Array, doses: Doses, times: jax.Array) -> jax.Array:
    """A likelihood-like scalar over several patients (vmap), reading the central compartment."""
    def one(th: jax.Array, amt: jax.Array, d: Doses, t: jax.Array) -> jax.Array:
        a, _ = solve_amounts(one_cmt_oral_mm_rhs, th, d._replace(amt=amt), t, n_cmt=2, ss_iterations=8,
                             max_steps=512, sensitivity=sensitivity)
        return jnp.sum(jnp.log1p(a[:, 1] / th[3]) ** 2)
    return jnp.sum(jax.vmap(one)(theta, amt, doses, times))


def test_forward_matches_reverse_over_patients() -> None:
    """One patient per dosing case, all under one vmap (one compilation per mode)."""
    scale = jnp.exp(0.2 * jax.random.normal(jax.random.PRNGKey(1), (len(CASES), 4)))
    theta = jnp.asarray(THETA) * scale
    doses = jax.tree.map(lambda *x: jnp.stack(x), *CASES.values())
    times = jnp.broadcast_to(jnp.asarray(TIMES), (len(CASES), TIMES.size))
    grads = {}
    for mode in ("reverse", "forward"):
        fn = jax.jit(jax.value_and_grad(functools.partial(loss, mode), argnums=(0, 1)))
        grads[mode] = fn(theta, doses.amt, doses, times)
    (v_rev, (g_rev, amt_rev)), (v_fwd, (g_fwd, amt_fwd)) = grads["reverse"], grads["forward"]
    assert float(v_fwd) == pytest.approx(float(v_rev), rel=1e-14)
    assert np.all(np.abs(np.asarray(g_rev)) > 0)
    np.testing.assert_allclose(np.asarray(g_fwd), np.asarray(g_rev), rtol=1e-9, atol=1e-12)
    # Documented scope: only theta is differentiated in forward mode; the dose amounts get zero cotangents.
    live = np.asarray(doses.mask)
    assert np.all(np.asarray(amt_rev)[live] != 0)
    assert np.all(np.asarray(amt_fwd) == 0)


def test_piecewise_parameters_forward_matches_reverse() -> None:
    starts = jnp.array([-jnp.inf, 6.0, jnp.inf])
    theta = jnp.stack([jnp.asarray(THETA), jnp.asarray(THETA) * 1.3, jnp.asarray(THETA)])  # (segment, parameter)
    doses = CASES["repeated oral"]

    def f(sensitivity: str, th: jax.Array) -> jax.Array:
        a, _ = solve_amounts(one_cmt_oral_mm_rhs, th, doses, jnp.asarray(TIMES), n_cmt=2, ss_iterations=0,
                             theta_times=starts, max_steps=512, sensitivity=sensitivity)
        return jnp.sum(a[:, 1] ** 2)

    g_rev = jax.grad(functools.partial(f, "reverse"))(theta)
    g_fwd = jax.grad(functools.partial(f, "forward"))(theta)
    assert np.all(np.abs(np.asarray(g_rev[:2])) > 0)
    np.testing.assert_allclose(np.asarray(g_fwd), np.asarray(g_rev), rtol=1e-9, atol=1e-10)


def test_dictionary_parameters_and_passthrough_of_aux() -> None:
    def fn(theta: dict, x: jax.Array, flag: jax.Array) -> tuple[jax.Array, jax.Array]:
        return jnp.stack([theta["a"] * jnp.sin(x), theta["b"] ** 2 * x]), jnp.sum(flag).astype(jnp.int32)

    wrapped = forward_jacobian_vjp(fn)
    theta = {"a": jnp.array(1.5), "b": jnp.array([0.5, -2.0, 1.0])}
    x, flag = jnp.array([0.3, 0.7, 1.1]), jnp.array([True, False, True])
    values, aux = wrapped(theta, x, flag)
    assert int(aux) == 2
    np.testing.assert_array_equal(np.asarray(values), np.asarray(fn(theta, x, flag)[0]))
    target = lambda f: lambda th: jnp.sum(jnp.cos(f(th, x, flag)[0]))  # noqa: E731
    got, want = jax.grad(target(wrapped))(theta), jax.grad(target(fn))(theta)
    for k in theta:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=1e-13)


def test_unknown_sensitivity_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="unknown sensitivity 'adjoint'"):
        solve_amounts(one_cmt_oral_mm_rhs, jnp.asarray(THETA), CASES["repeated oral"], jnp.asarray(TIMES),
                      n_cmt=2, sensitivity="adjoint")
