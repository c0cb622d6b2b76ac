"""The lean Dormand–Prince solver (``bayestwin.dynamics.rk``) and its use in ``solve_amounts``.

Checked against closed forms (exponential decay, one-compartment oral), against diffrax's tsit5 on the
Michaelis–Menten model with every dosing feature (multiple doses, infusions, steady state), for forward
derivatives against finite differences, and for its failure codes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.ode import SolveStatus, solve_amounts
from bayestwin.dynamics.ode_models import one_cmt_oral_mm_rhs, one_cmt_oral_rhs
from bayestwin.dynamics.rk import dopri5
from bayestwin.exceptions import SpecError

TIMES = np.array([0.25, 1.0, 2.0, 4.0, 7.5, 12.0, 24.0, 30.0, 47.0])
THETA = np.array([1.2, 2.0, 9.0, 18.0])  # ka 1/h, Km mg/L, Vm mg/h, V L


def _decay(t: jax.Array, y: jax.Array, k: jax.Array) -> jax.Array:
    return -k * y


@pytest.mark.parametrize("rtol", [1e-6, 1e-8, 1e-10])
def test_exponential_decay_within_tolerance(rtol: float) -> None:
    y1, code, h = dopri5(_decay, jnp.array([2.0, -1.0]), 0.5, 3.0, jnp.array(0.8), rtol=rtol, atol=1e-14,
                         max_steps=10_000)
    exact = np.array([2.0, -1.0]) * np.exp(-0.8 * 2.5)
    assert int(code) == SolveStatus.OK
    # global error of a tolerance-controlled 5th-order method: a small multiple of rtol over this span
    np.testing.assert_allclose(np.asarray(y1), exact, rtol=20 * rtol)
    assert float(h) > 0


def test_zero_span_returns_the_start() -> None:
    y1, code, _ = dopri5(_decay, jnp.array([3.0]), 1.0, 1.0, jnp.array(5.0), rtol=1e-8, atol=1e-10, max_steps=10)
    assert float(y1[0]) == 3.0 and int(code) == SolveStatus.OK


def test_max_steps_and_blow_up_are_reported() -> None:
    _, code, _ = dopri5(_decay, jnp.array([1.0]), 0.0, 100.0, jnp.array(1.0), rtol=1e-12, atol=1e-14, max_steps=5)
    assert int(code) == SolveStatus.MAX_STEPS_REACHED
    # y' = y^2 from y(0) = 1 blows up at t = 1: the step size collapses or the state becomes non-finite
    _, code, _ = dopri5(lambda t, y, a: y**2, jnp.array([1.0]), 0.0, 2.0, None, rtol=1e-8, atol=1e-10,
                        max_steps=100_000)
    assert int(code) in (SolveStatus.SOLVER_FAILED, SolveStatus.MAX_STEPS_REACHED)


def test_one_cmt_oral_matches_its_closed_form() -> None:
    ka, cl, v = 1.3, 4.0, 30.0
    doses = Doses.single(time=0.0, amt=100.0, cmt=0, n=2)
    a, code = solve_amounts(one_cmt_oral_rhs, jnp.array([ka, cl, v]), doses, jnp.asarray(TIMES), n_cmt=2,
                            solver="dopri5", sensitivity="forward", ss_iterations=0)
    k = cl / v
    exact = 100.0 * ka / (ka - k) * (np.exp(-k * TIMES) - np.exp(-ka * TIMES))
    assert int(code) == SolveStatus.OK
    np.testing.assert_allclose(np.asarray(a[:, 1]), exact, rtol=1e-7)


def _mm_cases() -> dict[str, Doses]:
    def doses(time, amt, rate=None, cmt=None, ss=None, ii=None) -> Doses:
        n = len(time)
        return Doses(time=jnp.asarray(time, float), amt=jnp.asarray(amt, float),
                     rate=jnp.asarray(rate or [0.0] * n, float), cmt=jnp.asarray(cmt or [0] * n, jnp.int32),
                     ii=jnp.asarray(ii or [0.0] * n, float), ss=jnp.asarray(ss or [0] * n, jnp.int32),
                     reset=jnp.zeros(n, bool), mask=jnp.ones(n, bool))

    return {
        "repeated oral": doses([0.0, 12.0, 24.0], [100.0, 100.0, 200.0]),
        "infusion into central": doses([0.0, 6.0], [120.0, 50.0], rate=[60.0, 0.0], cmt=[1, 0]),
        "steady state": doses([0.0], [80.0], ss=[1], ii=[12.0]),
    }


@pytest.mark.parametrize("case", list(_mm_cases()))
def test_michaelis_menten_agrees_with_diffrax(case: str) -> None:
    doses = _mm_cases()[case]
    ss = 8 if case == "steady state" else 0

    def run(solver: str) -> tuple[jax.Array, jax.Array]:
        return jax.jit(functools.partial(solve_amounts, one_cmt_oral_mm_rhs, n_cmt=2, ss_iterations=ss,
                                         sensitivity="forward", solver=solver))(
            jnp.asarray(THETA), doses, jnp.asarray(TIMES))

    lean, code_lean = run("dopri5")
    ref, code_ref = run("tsit5")
    assert int(code_lean) == int(code_ref) == SolveStatus.OK
    # both are tolerance-controlled at rtol 1e-8: they agree to a small multiple of it
    np.testing.assert_allclose(np.asarray(lean), np.asarray(ref), rtol=1e-6, atol=1e-9)


def test_forward_gradients_match_finite_differences() -> None:
    doses = _mm_cases()["repeated oral"]

    @jax.jit
    def loss(theta: jax.Array) -> jax.Array:
        a, _ = solve_amounts(one_cmt_oral_mm_rhs, theta, doses, jnp.asarray(TIMES), n_cmt=2, ss_iterations=0,
                             solver="dopri5", sensitivity="forward", rtol=1e-10, atol=1e-12)
        return jnp.sum(jnp.log(a[:, 1] / theta[3]))

    g = np.asarray(jax.grad(loss)(jnp.asarray(THETA)))
    fd = []
    for i in range(4):
        e = np.zeros(4)
        e[i] = 1e-5 * THETA[i]
        fd.append((float(loss(jnp.asarray(THETA + e))) - float(loss(jnp.asarray(THETA - e)))) / (2 * e[i]))
    # central differences with step 1e-5 relative: truncation ~1e-10, solver noise ~1e-10 / 1e-5
    np.testing.assert_allclose(g, fd, rtol=1e-4)


def test_reverse_mode_is_refused_with_advice() -> None:
    with pytest.raises(SpecError, match="forward mode only"):
        solve_amounts(one_cmt_oral_rhs, jnp.array([1.0, 4.0, 30.0]), Doses.single(time=0.0, amt=1.0, n=1),
                      jnp.array([1.0]), n_cmt=2, solver="dopri5")
