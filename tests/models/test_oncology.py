"""Tumour-size models (``bayestwin.models.oncology``) against independent computations.

Claret TGI: the closed form against the ODE ``dy/dt = kl y - kd E(t) exp(-lam t) y`` integrated by
scipy's ``solve_ivp`` (LSODA, rtol 1e-12), to 1e-8 relative, on and off treatment, before time 0 and with
a stop (``t_off``); analytic special cases (no drug: pure exponential growth; lam -> 0: constant net
rate). Stein: the growth-decay curve's nadir time has a closed form. Gradients are finite and match
finite differences (the registry's cheap checks run in tests/testing/test_check_model.py).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from bayestwin.dynamics.events import Doses
from bayestwin.models import get_model, model_names
from bayestwin.models.oncology import ClaretTGI, SteinGrowthDecay, exposure_integral
from bayestwin.spec import TwinSpec

NONE = Doses.single(time=0.0, amt=0.0)._replace(mask=jnp.array([False]))
THETA = {"y0": 48.0, "kl": 0.025, "kd": 0.18, "lam": 0.15}


def _claret_ode(theta: dict[str, float], times: np.ndarray, t_off: float = np.inf) -> np.ndarray:
    """y(t) for each of `times` by integrating the Claret ODE from y(0) = y0 with solve_ivp.

    Each time gets its own solve from 0 (backwards for t < 0), split at ``t_off`` so the switch of E(t)
    is never stepped over.
    """

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        exposure = 1.0 if 0.0 <= t < t_off else 0.0
        return (theta["kl"] - theta["kd"] * exposure * np.exp(-theta["lam"] * t)) * y

    out = []
    for t in times:
        knots = [0.0, *([t_off] if 0.0 < t_off < t else []), float(t)]
        y = np.array([theta["y0"]])
        for a, b in itertools.pairwise(knots):
            if a != b:
                y = solve_ivp(rhs, (a, b), y, method="LSODA", rtol=1e-12, atol=1e-12).y[:, -1]
        out.append(y[0])
    return np.asarray(out)


@pytest.mark.parametrize("t_off", [np.inf, 9.0])
def test_claret_closed_form_matches_the_ode(t_off: float) -> None:
    times = np.array([-6.0, -1.0, 0.0, 0.5, 3.0, 8.0, 9.0, 12.0, 24.0, 40.0])
    theta = THETA | ({} if np.isinf(t_off) else {"t_off": t_off})
    closed = np.asarray(ClaretTGI().predict({k: jnp.asarray(v) for k, v in theta.items()}, NONE,
                                            jnp.asarray(times)))[:, 0]
    ode = _claret_ode(THETA, times, t_off)
    np.testing.assert_allclose(closed, ode, rtol=1e-8)


def test_claret_special_cases() -> None:
    t = jnp.array([0.0, 5.0, 20.0])
    no_drug = ClaretTGI().predict(THETA | {"kd": 0.0}, NONE, t)[:, 0]
    np.testing.assert_allclose(no_drug, THETA["y0"] * np.exp(THETA["kl"] * np.asarray(t)), rtol=1e-14)
    no_resistance = ClaretTGI().predict(THETA | {"lam": 1e-12}, NONE, t)[:, 0]   # net rate kl - kd
    np.testing.assert_allclose(no_resistance, THETA["y0"] * np.exp((THETA["kl"] - THETA["kd"]) * np.asarray(t)),
                               rtol=1e-9)
    # the drug's total effect is bounded: log(y / (y0 exp(kl t))) -> -kd / lam as t -> inf
    far = float(ClaretTGI().predict(THETA, NONE, jnp.array([1e4]))[0, 0])
    assert np.log(far / THETA["y0"]) - THETA["kl"] * 1e4 == pytest.approx(-THETA["kd"] / THETA["lam"], rel=1e-12)


def test_exposure_integral_is_the_integral() -> None:
    lam, t_off = 0.3, 4.0
    for t in (-2.0, 0.0, 1.5, 4.0, 7.0):
        expected = (1 - np.exp(-lam * min(max(t, 0.0), t_off))) / lam
        assert float(exposure_integral(jnp.array([t]), jnp.asarray(lam), t_off)[0]) == pytest.approx(expected, 1e-14)


def test_stein_values_and_nadir() -> None:
    theta = {"y0": 50.0, "d": 0.1, "g": 0.03}
    t = np.array([-2.0, 0.0, 4.0, 24.0])
    pred = np.asarray(SteinGrowthDecay().predict(theta, NONE, jnp.asarray(t)))[:, 0]
    np.testing.assert_allclose(pred, 50.0 * (np.exp(-0.1 * t) + np.exp(0.03 * t) - 1.0), rtol=1e-14)
    # dy/dt = 0 where d exp(-d t) = g exp(g t): t* = ln(d / g) / (d + g)
    nadir = np.log(0.1 / 0.03) / 0.13
    grad = jax.grad(lambda s: SteinGrowthDecay().predict(theta, NONE, jnp.array([s]))[0, 0])(jnp.asarray(nadir))
    assert abs(float(grad)) < 1e-12


@pytest.mark.parametrize("name", ["oncology.claret_tgi", "oncology.stein"])
def test_gradients_are_finite_and_match_differences(name: str) -> None:
    model = get_model(name)
    ref = dict(model.reference_values)
    times = jnp.linspace(-2.0, 30.0, 9)

    def total(x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.log(model.predict(dict(zip(ref, x, strict=True)), NONE, times)))

    x0 = jnp.asarray(list(ref.values()))
    grad = np.asarray(jax.grad(total)(x0))
    assert np.isfinite(grad).all()
    for i in range(x0.size):
        h = 1e-6 * float(x0[i])
        fd = (float(total(x0.at[i].add(h))) - float(total(x0.at[i].add(-h)))) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_registered_and_take_no_doses() -> None:
    assert {"oncology.claret_tgi", "oncology.stein"} <= set(model_names())
    for name in ("oncology.claret_tgi", "oncology.stein"):
        assert get_model(name).compartments == ()
        assert get_model(name).units["size"] == "mm"


def test_spec_files_validate() -> None:
    from model_specs.tumour_growth import spec, stein_spec, with_dose_intensity

    from bayestwin.models import validate_spec

    for s in (spec(), stein_spec(), with_dose_intensity(spec())):
        assert isinstance(s, TwinSpec)
        validate_spec(s)
    assert with_dose_intensity(spec()).parameter("kd").covariates[0].fixed == 1.0
