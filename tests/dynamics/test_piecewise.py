"""Piecewise-constant parameters (time-varying covariates) through ``predict_segments``.

Checks: with equal values in every segment each built-in PK model reproduces its own ``predict`` (closed
form or ODE) to 1e-6 relative, over a dosing history with several boluses, an infusion, and F and a lag
for the oral models; a hand-computed solution when CL and V change; the ODE engine's change times
split intervals exactly (a change between two samples is not smeared); gradients match central finite
differences; a model without ``predict_segments`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.ode_models import LINEAR_MATRICES, two_cmt_iv_rhs
from bayestwin.exceptions import SpecError
from bayestwin.models import get_model
from bayestwin.spec.structural import AbstractStructuralModel

jax.config.update("jax_enable_x64", True)

THETA = {
    "pk.one_cmt_iv": {"cl": 2.0, "v": 20.0},
    "pk.one_cmt_oral": {"ka": 1.2, "cl": 2.0, "v": 20.0, "f": 0.8, "tlag": 0.4},
    "pk.two_cmt_iv": {"cl": 2.0, "v1": 10.0, "q": 3.0, "v2": 25.0},
    "pk.two_cmt_oral": {"ka": 1.2, "cl": 2.0, "v1": 10.0, "q": 3.0, "v2": 25.0, "f": 0.7, "tlag": 0.25},
    "pk.one_cmt_oral_mm": {"ka": 1.2, "km": 2.0, "vm": 8.0, "v": 20.0},
}
STARTS = jnp.array([-jnp.inf, 3.0, 7.5, jnp.inf])  # three segments and one padded
TIMES = jnp.array([0.5, 1.0, 2.9, 3.0, 3.1, 6.0, 7.5, 9.0, 12.0, 16.0, 24.0, 30.0])


def _doses(model_name: str) -> Doses:
    oral = "oral" in model_name
    infusion_rate = 0.0 if oral else 50.0  # 100 mg over 2 h for IV models
    return Doses(time=jnp.array([0.0, 6.0, 12.0, jnp.inf]), amt=jnp.array([100.0, 100.0, 100.0, 0.0]),
                 rate=jnp.array([0.0, infusion_rate, 0.0, 0.0]), cmt=jnp.zeros(4, dtype=jnp.int32),
                 ii=jnp.zeros(4), ss=jnp.zeros(4, dtype=jnp.int32), reset=jnp.zeros(4, dtype=bool),
                 mask=jnp.array([True, True, True, False]))


@pytest.mark.parametrize("name", sorted(THETA))
def test_equal_segments_reproduce_predict(name: str) -> None:
    model = get_model(name)
    theta = {k: jnp.asarray(v) for k, v in THETA[name].items()}
    seg = {k: jnp.full(STARTS.shape, v) for k, v in theta.items()}
    doses = _doses(name)
    features = frozenset({"infusion"})  # no steady-state records: the Newton solve is not compiled
    expected = np.asarray(model.predict(theta, doses, TIMES, features=features))
    got = np.asarray(model.predict_segments(seg, STARTS, doses, TIMES, features=features))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_cl_and_v_changes_against_hand_solution() -> None:
    # 100 mg bolus; CL 2 -> 4 L/h at 5 h; V 20 -> 25 L at 8 h (amount continuous, concentration jumps)
    model = get_model("pk.one_cmt_iv")
    theta = {"cl": jnp.array([2.0, 4.0, 4.0]), "v": jnp.array([20.0, 20.0, 25.0])}
    starts = jnp.array([-jnp.inf, 5.0, 8.0])
    times = jnp.array([4.0, 5.0, 7.0, 8.0, 12.0])
    a5 = 100.0 * np.exp(-0.1 * 5.0)
    a8 = a5 * np.exp(-0.2 * 3.0)
    expected = [100.0 * np.exp(-0.4) / 20, a5 / 20, a5 * np.exp(-0.4) / 20, a8 / 25, a8 * np.exp(-0.16 * 4) / 25]
    got = model.predict_segments(theta, starts, Doses.single(time=0.0, amt=100.0, n=2), times,
                                 features=frozenset())[:, 0]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-7)


def test_oral_ka_change_splits_the_interval_exactly() -> None:
    # ka 1 -> 0.2 /h at 2 h, no sample near 2 h: the depot holds 100 exp(-2) mg at the change
    model = get_model("pk.one_cmt_oral")
    theta = {"ka": jnp.array([1.0, 0.2]), "cl": jnp.array([2.0, 2.0]), "v": jnp.array([20.0, 20.0])}
    got = float(model.predict_segments(theta, jnp.array([-jnp.inf, 2.0]), Doses.single(time=0.0, amt=100.0, n=2),
                                       jnp.array([6.0]), features=frozenset())[0, 0])
    # superposition from the state at 2 h: depot D2 with ka 0.2, central A2 decaying with k 0.1
    k = 0.1
    d2 = 100.0 * np.exp(-2.0)
    a2 = 100.0 * 1.0 / (1.0 - k) * (np.exp(-k * 2.0) - np.exp(-2.0))
    dt = 4.0
    a6 = a2 * np.exp(-k * dt) + d2 * 0.2 / (0.2 - k) * (np.exp(-k * dt) - np.exp(-0.2 * dt))
    assert got == pytest.approx(a6 / 20.0, rel=1e-7)


def test_gradients_match_finite_differences() -> None:
    model = get_model("pk.one_cmt_iv")
    doses = _doses("pk.one_cmt_iv")

    def total(cl: jax.Array) -> jax.Array:
        theta = {"cl": cl, "v": jnp.full(4, 20.0)}
        conc = model.predict_segments(theta, STARTS, doses, TIMES, features=frozenset({"infusion"}))
        return jnp.sum(jnp.log(conc[:, 0]))

    cl = jnp.array([2.0, 3.0, 1.5, 1.5])
    grad = np.asarray(jax.grad(total)(cl))
    h = 1e-5
    fd = [(float(total(cl.at[i].add(h))) - float(total(cl.at[i].add(-h)))) / (2 * h) for i in range(3)]
    np.testing.assert_allclose(grad[:3], fd, rtol=1e-5)
    assert grad[3] == 0.0  # the padded segment never holds


def test_a_model_without_segments_says_so() -> None:
    class NoSegments(AbstractStructuralModel):
        name = "test.no_segments"
        compartments: ClassVar[tuple[str, ...]] = ("central",)
        default_dose_compartment: ClassVar[str] = "central"
        parameters: ClassVar[Mapping[str, str]] = {"cl": "L/h"}
        units: ClassVar[Mapping[str, str]] = {"time": "h", "amt": "mg", "conc": "mg/L"}

        def predict(self, theta, doses, times, *, features=None):
            return jnp.zeros((times.shape[0], 1))

    with pytest.raises(SpecError, match="cannot take parameters that change over time"):
        NoSegments().predict_segments({"cl": jnp.ones(2)}, STARTS[:2], Doses.single(0.0, 1.0), TIMES)


@pytest.mark.parametrize("rhs", list(LINEAR_MATRICES), ids=lambda f: f.__name__)
def test_linear_matrices_match_their_rhs(rhs) -> None:
    rng = np.random.default_rng(0)
    n_theta = {"one_cmt_iv_rhs": 2, "one_cmt_oral_rhs": 3, "two_cmt_iv_rhs": 4, "two_cmt_oral_rhs": 5}[rhs.__name__]
    n_cmt = {"one_cmt_iv_rhs": 1, "one_cmt_oral_rhs": 2, "two_cmt_iv_rhs": 2, "two_cmt_oral_rhs": 3}[rhs.__name__]
    theta = jnp.asarray(rng.uniform(0.5, 5.0, n_theta))
    a, rate = jnp.asarray(rng.uniform(0, 10, n_cmt)), jnp.asarray(rng.uniform(0, 3, n_cmt))
    np.testing.assert_allclose(LINEAR_MATRICES[rhs](theta) @ a + rate, rhs(0.0, a, theta, rate), rtol=1e-14)


@pytest.mark.parametrize("case", ["random", "equal-eigenvalues", "nearly-equal", "stiff"])
def test_closed_form_propagation_matches_expm(case: str) -> None:
    from bayestwin.dynamics.linear import propagate_linear

    rng = np.random.default_rng(1)
    for _ in range(20):
        ka, k = rng.uniform(0.05, 3.0, 2)
        if case == "equal-eigenvalues":
            k = ka
        elif case == "nearly-equal":
            k = ka * (1 + 1e-9)
        elif case == "stiff":
            ka = 500.0
        mats = [jnp.array([[-ka, 0.0], [ka, -k]]),
                ode_two_cmt(*rng.uniform(0.5, 5.0, 4)), jnp.array([[-k]])]
        for mat in mats:
            n = mat.shape[0]
            a, rate = jnp.asarray(rng.uniform(0, 10, n)), jnp.asarray(rng.uniform(0, 3, n))
            dt = float(rng.uniform(0.01, 30.0))
            got, status = propagate_linear(mat, a, jnp.asarray(dt), rate)
            aug = jnp.zeros((n + 1, n + 1)).at[:n, :n].set(mat * dt).at[:n, n].set(rate * dt)
            want = (jax.scipy.linalg.expm(aug) @ jnp.concatenate([a, jnp.ones(1)]))[:n]
            assert int(status) == 0
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-12)


def ode_two_cmt(cl: float, v1: float, q: float, v2: float) -> jax.Array:
    return LINEAR_MATRICES[two_cmt_iv_rhs](jnp.array([cl, v1, q, v2]))


def test_gradient_is_finite_where_ka_equals_k() -> None:
    from bayestwin.dynamics.linear import propagate_linear

    def central(ka: jax.Array) -> jax.Array:
        mat = jnp.array([[-ka, 0.0], [ka, -0.5]])
        return propagate_linear(mat, jnp.array([100.0, 0.0]), jnp.asarray(2.0), jnp.zeros(2))[0][1]

    g = float(jax.grad(central)(jnp.asarray(0.5)))
    h = 1e-6
    fd = (float(central(jnp.asarray(0.5 + h))) - float(central(jnp.asarray(0.5 - h)))) / (2 * h)
    assert np.isfinite(g) and g == pytest.approx(fd, rel=1e-6)
