"""Cardiovascular models (bayestwin.models.cardio) against independent computations.

* Windkessel: the closed-form periodic SBP/DBP/MAP against scipy's solve_ivp of ``Ca dP/dt = Q(t) - P/R``
  run over many beats; the drug lowers resistance by the documented Emax form.
* Stenosis: ``Fv`` and ``Fs`` against a hand computation in SI units (a textbook lesion), the flow against
  the quadratic it solves, FFR limits (no lesion: 1; a full-coverage stent at the reference diameter: only
  Poiseuille over the stent), monotonicity, gradients, and ``post_stent_ffr`` on labelled draws.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp

from bayestwin.dynamics.closed_form import one_cmt_oral
from bayestwin.dynamics.events import Doses
from bayestwin.models import get_model
from bayestwin.models.cardio import (
    coronary_flow,
    ffr,
    post_stent_ffr,
    stenosis_coefficients,
    windkessel_pressures,
)

NO_DOSE = Doses.single(time=0.0, amt=0.0)._replace(mask=jnp.array([False]))


@pytest.mark.parametrize(("r", "ca", "sv", "hr"), [(1.0, 1.5, 70.0, 70.0), (1.6, 0.8, 60.0, 95.0)])
def test_windkessel_closed_form_matches_the_ode(r: float, ca: float, sv: float, hr: float) -> None:
    ts, period = 0.3, 60.0 / hr
    p = 80.0
    for _ in range(40):  # beats until the periodic state (tau = R Ca <= 1.5 s; 40 beats ~ 20 tau)
        up = solve_ivp(lambda t, y: [(sv / ts - y[0] / r) / ca], (0, ts), [p], rtol=1e-12, atol=1e-12)
        top = up.y[0, -1]
        down = solve_ivp(lambda t, y: [-y[0] / r / ca], (ts, period), [top], rtol=1e-12, atol=1e-12)
        p = down.y[0, -1]
    sbp, dbp, mean = (float(x) for x in windkessel_pressures(r, ca, sv, hr, ts))
    assert sbp == pytest.approx(top, rel=1e-8)
    assert dbp == pytest.approx(p, rel=1e-8)
    # the cycle mean of P equals inflow x R
    grid = np.linspace(0, period, 20001)
    pressure = np.where(grid <= ts, sv / ts * r + (dbp - sv / ts * r) * np.exp(-grid / (r * ca)),
                        sbp * np.exp(-(grid - ts) / (r * ca)))
    assert mean == pytest.approx(np.trapezoid(pressure, grid) / period, rel=1e-6)


def test_windkessel_drug_lowers_resistance_by_emax() -> None:
    model = get_model("cardio.windkessel_emax")
    theta = dict(model.reference_values)
    doses = Doses.single(time=0.0, amt=100.0)
    times = jnp.array([0.5, 2.0, 24.0])
    pred = np.asarray(model.predict(theta, doses, times, features=frozenset()))
    conc = np.asarray(one_cmt_oral(times, doses, theta["ka"], theta["cl"], theta["v"], features=frozenset()))
    r = theta["r0"] / (1 + theta["emax"] * conc / (theta["ec50"] + conc))
    np.testing.assert_allclose(pred[:, 0], conc, rtol=1e-14)
    np.testing.assert_allclose(pred[:, 3], 70.0 * 70.0 / 60.0 * r, rtol=1e-13)
    baseline = np.asarray(model.predict(theta, NO_DOSE, times, features=frozenset()))
    assert (pred[:, 1:] < baseline[:, 1:]).all()  # every pressure falls while the drug is there


def test_stenosis_coefficients_by_hand() -> None:
    # A 50 % diameter stenosis of a 3 mm artery, 10 mm long; SI units throughout, then mmHg and mL/s.
    mu, rho, kt = 3.5e-3, 1050.0, 1.52
    a_s, a_n = math.pi * (0.75e-3) ** 2, math.pi * (1.5e-3) ** 2   # m^2
    fv_si = 8 * math.pi * mu * 10e-3 / a_s**2                        # Pa s / m^3
    fs_si = kt * rho / 2 * (1 / a_s - 1 / a_n) ** 2                  # Pa s^2 / m^6
    fv, fs = stenosis_coefficients(1.5, 10.0, 3.0)
    assert float(fv) == pytest.approx(fv_si * 1e-6 / 133.322387415, rel=1e-12)
    assert float(fs) == pytest.approx(fs_si * 1e-12 / 133.322387415, rel=1e-12)
    # written out: 2.113 mmHg per mL/s and 1.078 mmHg per (mL/s)^2; at 3 mL/s (180 mL/min) dP = 16.0 mmHg
    assert (round(float(fv), 3), round(float(fs), 3)) == (2.113, 1.078)
    assert float(fv) * 3 + float(fs) * 9 == pytest.approx(16.04, abs=0.01)


def test_flow_solves_the_circuit_and_ffr_limits() -> None:
    fv, fs = stenosis_coefficients(1.2, 15.0, 3.0)
    q = float(coronary_flow(95.0, 5.0, 22.0, fv, fs))
    assert 90.0 - (22.0 + float(fv)) * q - float(fs) * q * q == pytest.approx(0.0, abs=1e-10)
    assert float(ffr(3.0, 0.0, 3.0, r_hyp=22.0, pa=95.0)) == pytest.approx(1.0, abs=1e-15)  # no lesion
    value = float(ffr(1.2, 15.0, 3.0, r_hyp=22.0, pa=95.0, pv=5.0))
    assert value == pytest.approx(22.0 * q / 90.0, rel=1e-14)
    # stented over the whole lesion at the reference diameter: only Poiseuille over the stent
    fv_st, fs_st = stenosis_coefficients(1.2, 15.0, 3.0, stent_diameter=3.0, stent_length=18.0)
    assert float(fs_st) == 0.0
    assert float(fv_st) == pytest.approx(float(stenosis_coefficients(3.0, 15.0, 3.0)[0]), rel=1e-14)
    # no expansion loss from a lumen at least the reference (so a "lesion" of mld = stent diameter is that stent)
    assert float(stenosis_coefficients(3.5, 15.0, 3.0)[1]) == 0.0
    assert stenosis_coefficients(3.5, 15.0, 3.0) == stenosis_coefficients(1.2, 15.0, 3.0, stent_diameter=3.5,
                                                                          stent_length=15.0)
    # a stent shorter than the lesion keeps the lesion's exit loss
    assert float(stenosis_coefficients(1.2, 15.0, 3.0, stent_diameter=3.0, stent_length=8.0)[1]) == float(fs)


def test_ffr_rises_with_lumen_and_falls_with_length() -> None:
    mlds = np.linspace(0.8, 2.8, 21)
    values = np.asarray(ffr(mlds, 12.0, 3.0, r_hyp=25.0, pa=90.0))
    assert np.all(np.diff(values) > 0) and values[0] < 0.5 < 0.95 < values[-1]
    assert float(ffr(1.5, 20.0, 3.0, r_hyp=25.0, pa=90.0)) < float(ffr(1.5, 10.0, 3.0, r_hyp=25.0, pa=90.0))


def test_stenosis_model_prediction_and_gradients() -> None:
    model = get_model("cardio.stenosis_ffr")
    theta = {"mld": 1.4, "r_hyp": 28.0, "r_rest": 80.0, "tau": 8.0, "length": 12.0}
    times = jnp.array([0.0, 5.0, 10.0, 300.0])
    pred = np.asarray(model.predict(theta, NO_DOSE, times))
    fv, fs = stenosis_coefficients(1.4, 12.0, 3.0)
    assert pred[0, 0] == pytest.approx(float(coronary_flow(90.0, 0.0, 80.0, fv, fs)), rel=1e-14)  # at rest
    assert np.all(np.diff(pred[:, 0]) > 0)  # flow rises as the microvasculature dilates
    np.testing.assert_allclose(pred[:, 1], float(fv) * pred[:, 0] + float(fs) * pred[:, 0] ** 2, rtol=1e-14)
    assert 1 - pred[-1, 1] / 90.0 == pytest.approx(float(ffr(1.4, 12.0, 3.0, r_hyp=28.0, pa=90.0)), rel=1e-12)
    names = ("mld", "r_hyp", "r_rest", "tau")
    grad = jax.grad(lambda x: model.predict(dict(zip(names, x, strict=True)), NO_DOSE, times).sum())(
        jnp.array([1.4, 28.0, 80.0, 8.0]))
    assert np.isfinite(np.asarray(grad)).all()


def test_post_stent_ffr_on_labelled_draws() -> None:
    rng = np.random.default_rng(0)
    draws = xr.Dataset({"mld": (("chain", "draw"), rng.normal(1.2, 0.05, (2, 50))),
                        "r_hyp": (("chain", "draw"), rng.lognormal(np.log(25.0), 0.1, (2, 50)))})
    now = post_stent_ffr(draws, None, lesion_length=15.0)
    assert now.dims == ("chain", "draw")
    sizes = [post_stent_ffr(draws, d, 18.0, lesion_length=15.0) for d in (2.25, 2.5, 3.0)]
    assert bool((sizes[0] > now).all()) and bool((sizes[1] > sizes[0]).all()) and bool((sizes[2] > sizes[1]).all())
    direct = ffr(draws["mld"].values, 15.0, 3.0, r_hyp=draws["r_hyp"].values, pa=90.0, stent_diameter=2.5,
                 stent_length=18.0)
    np.testing.assert_allclose(sizes[1].values, direct, rtol=1e-15)


@pytest.mark.parametrize("name", ["windkessel", "stenosis"])
def test_example_specs_fit_their_models(name: str) -> None:
    from pathlib import Path

    from bayestwin.cli.demo import load_spec_file
    from bayestwin.models import validate_spec
    from bayestwin.units import parse_unit

    spec = load_spec_file(Path(__file__).resolve().parents[2] / "model_specs" / f"{name}.py")
    validate_spec(spec)
    for _, unit in spec.units:
        parse_unit(unit)


def test_diffuse_disease_and_stent_expansion() -> None:
    model = get_model("cardio.stenosis_ffr")
    theta = {"mld": 1.4, "r_hyp": 28.0, "r_rest": 80.0, "tau": 8.0, "r_diffuse": 3.0}
    pred = np.asarray(model.predict(theta, NO_DOSE, jnp.array([600.0])))[0]
    fv, fs = stenosis_coefficients(1.4, 10.0, 3.0)
    q = float(coronary_flow(90.0, 0.0, 28.0, float(fv) + 3.0, fs))
    assert pred[0] == pytest.approx(q, rel=1e-14)
    assert pred[1] == pytest.approx((float(fv) + 3.0) * q + float(fs) * q * q, rel=1e-14)
    # a perfect stent removes the lesion, not the diffuse disease: FFR = r_hyp / (r_hyp + r_diffuse + Fv(stent))
    draws = {"mld": np.array([1.4]), "r_hyp": np.array([28.0]), "r_diffuse": np.array([3.0])}
    fv_stent = float(stenosis_coefficients(3.0, 10.0, 3.0)[0])
    after = float(post_stent_ffr(draws, 3.0, 12.0)[0])
    assert after == pytest.approx(28.0 / (28.0 + 3.0 + fv_stent), rel=1e-13)
    # an under-expanded stent (90 % of 3.0 mm) is a 2.7 mm stent
    assert float(post_stent_ffr(draws, 3.0, 12.0, expansion=0.9)[0]) == pytest.approx(
        float(post_stent_ffr(draws, 2.7, 12.0)[0]), rel=1e-14)
    assert float(post_stent_ffr(draws, 3.0, 12.0, expansion=0.9)[0]) < after
