"""The Bergman minimal model with meals and insulin (``metabolic.bergman_meal``) and the CGM loader.

Model: the solve through ``solve_amounts`` (dopri5, forward sensitivities, rtol 1e-7) against scipy's
``solve_ivp`` (DOP853 at rtol 1e-12) of the same equations written out here in absolute states (G, X, I, not
the deviations the model uses), with doses applied as jumps; the basal steady state stays put; a meal raises
glucose and it returns towards Gb; insulin lowers it; a reset returns to basal; an SS record gives NaN; gradients
are finite and match central finite differences, including in ``gb`` and ``ib``, which enter only through the
basal state (the trap: a basal state passed as ``y0`` gets no derivative under forward sensitivities). One
jitted prediction and one jitted gradient for the module. Loader: counts, units and a bad row at its line.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp

from bayestwin.cli.demo import load_spec_file
from bayestwin.data import dataset_path, load_dataset
from bayestwin.data.datasets import HALL2018_NOMINAL_MEAL_G, _cgm_hall2018
from bayestwin.dynamics.events import Doses
from bayestwin.exceptions import InputError
from bayestwin.models import get_model, validate_spec

MODEL = get_model("metabolic.bergman_meal")
THETA = {"gb": 120.0, "sg": 0.018, "si": 4e-4, "p2": 0.025, "kabs": 0.03, "f": 0.85, "vg": 125.0, "ib": 12.0,
         "n": 0.15, "gamma": 0.06, "ka_ins": 0.02, "vi": 9.0}
# meal of 60 g at 10 min (stomach), 5 IU of insulin at 30 min (depot), a reset at 400 min, 40 g at 420 min
DOSE_T = np.array([10.0, 30.0, 400.0, 420.0])
DOSE_AMT = np.array([60.0, 5.0, 0.0, 40.0])
DOSE_CMT = np.array([0, 2, 0, 0])
DOSE_RESET = np.array([False, False, True, False])
TIMES = np.array([0.0, 5.0, 20.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 390.0, 430.0, 480.0, 600.0])


def _doses(**changes: np.ndarray) -> Doses:
    d = Doses.single(time=0.0, amt=0.0, n=len(DOSE_T))
    fields = {"time": DOSE_T, "amt": DOSE_AMT, "cmt": DOSE_CMT, "reset": DOSE_RESET,
              "mask": np.ones(len(DOSE_T), bool)} | changes
    return d._replace(**{k: jnp.asarray(v, dtype=getattr(d, k).dtype) for k, v in fields.items()})


@pytest.fixture(scope="module")
def predict():
    return jax.jit(lambda theta, doses: MODEL.predict(theta, doses, jnp.asarray(TIMES)))


def _theta(**changes: float) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v) for k, v in (THETA | changes).items()}


def _scipy_reference(theta: dict[str, float]) -> np.ndarray:
    """Glucose and insulin at TIMES from the model equations in absolute states, integrated by scipy."""
    p = theta

    def rhs(_t: float, y: np.ndarray) -> list[float]:
        q1, q2, s, g, x, i = y
        ra = 1000.0 * p["f"] * p["kabs"] * q2 / p["vg"]
        return [-p["kabs"] * q1, p["kabs"] * (q1 - q2), -p["ka_ins"] * s,
                -(p["sg"] + x) * g + p["sg"] * p["gb"] + ra,
                -p["p2"] * x + p["p2"] * p["si"] * (i - p["ib"]),
                -p["n"] * (i - p["ib"]) + p["gamma"] * max(g - p["gb"], 0.0) + 1000.0 * p["ka_ins"] * s / p["vi"]]

    basal = np.array([0.0, 0.0, 0.0, p["gb"], 0.0, p["ib"]])
    y, t, out = basal.copy(), 0.0, {}
    for stop in sorted(set(TIMES) | set(DOSE_T)):
        if stop > t:
            y = solve_ivp(rhs, (t, stop), y, method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
            t = stop
        for k in np.flatnonzero(stop == DOSE_T):  # same time: dose first, then the reading
            y = basal.copy() if DOSE_RESET[k] else y
            y[DOSE_CMT[k]] += DOSE_AMT[k]
        if stop in TIMES:
            out[stop] = (y[3], y[5])
    return np.array([out[t] for t in TIMES])


def test_solution_matches_scipy(predict) -> None:
    got = np.asarray(predict(_theta(), _doses()))
    want = _scipy_reference(THETA)
    assert got[:, 0].max() > THETA["gb"] + 40  # the meal shows (a test of something)
    np.testing.assert_allclose(got, want, rtol=1e-6)  # measured: 1.3e-7 glucose, 2.5e-7 insulin


def test_basal_steady_state_stays_put(predict) -> None:
    got = np.asarray(predict(_theta(), _doses(mask=np.zeros(len(DOSE_T), bool))))
    np.testing.assert_allclose(got[:, 0], THETA["gb"], rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], THETA["ib"], rtol=1e-12)


def test_meal_raises_glucose_and_it_returns_towards_basal(predict) -> None:
    only_meal = _doses(mask=np.array([True, False, False, False]))
    g = np.asarray(predict(_theta(), only_meal))[:, 0]
    peak = int(np.argmax(g))
    assert 45.0 <= TIMES[peak] <= 120.0 and g[peak] > THETA["gb"] + 40
    assert abs(g[-1] - THETA["gb"]) < 0.05 * (g[peak] - THETA["gb"])  # 10 h later: within 5 % of the rise
    assert np.all(np.diff(g[peak:]) <= 1e-9) or abs(g[-1] - THETA["gb"]) < 1.0


def test_insulin_lowers_glucose_and_reset_returns_to_basal(predict) -> None:
    meal = np.asarray(predict(_theta(), _doses(mask=np.array([True, False, False, False]))))
    both = np.asarray(predict(_theta(), _doses(mask=np.array([True, True, False, False]))))
    later = TIMES >= 90.0
    assert np.all(both[later & (TIMES < 400), 0] < meal[later & (TIMES < 400), 0])
    # exogenous insulin shows in the plasma peak (later, lower glucose means less secretion: no pointwise order)
    assert both[TIMES < 400, 1].max() > meal[TIMES < 400, 1].max() + 5.0
    reset_only = np.asarray(predict(_theta(), _doses(mask=np.array([True, True, True, False]))))
    after = TIMES >= 400.0
    np.testing.assert_allclose(reset_only[after], [[THETA["gb"], THETA["ib"]]] * int(after.sum()), rtol=1e-12)


def test_steady_state_record_gives_nan() -> None:
    d = Doses.single(time=0.0, amt=50.0, n=1)._replace(ss=jnp.array([1]), ii=jnp.array([1440.0]))
    out = MODEL.predict(_theta(), d, jnp.array([60.0]))
    assert np.isnan(np.asarray(out)).all()


@pytest.fixture(scope="module")
def gradient():
    names = ("gb", "sg", "si", "p2", "kabs", "f", "ib")  # the rest fixed at THETA (constants)

    def loss(x: jax.Array) -> jax.Array:
        theta = {k: jnp.asarray(v) for k, v in THETA.items() if k not in names} | dict(zip(names, x, strict=True))
        out = MODEL.predict(theta, _doses(), jnp.asarray(TIMES))
        return jnp.sum(out[:, 0] ** 2) / 1e4 + jnp.sum(out[:, 1] ** 2) / 1e2

    return names, jax.jit(loss), jax.jit(jax.grad(loss))


def test_gradients_finite_and_match_finite_differences(gradient) -> None:
    names, loss, grad = gradient
    x0 = np.array([THETA[k] for k in names])
    g = np.asarray(grad(jnp.asarray(x0)))
    assert np.all(np.isfinite(g))
    for k in range(len(names)):
        h = 1e-4 * x0[k]
        e = np.zeros_like(x0)
        e[k] = h
        fd = (float(loss(jnp.asarray(x0 + e))) - float(loss(jnp.asarray(x0 - e)))) / (2 * h)
        # solver error (rtol 1e-7 on the state) divided by the step makes FD noisy: 1e-3 relative is well above it
        assert g[k] == pytest.approx(fd, rel=1e-3, abs=1e-6 * abs(float(loss(jnp.asarray(x0))))), names[k]
    assert abs(g[names.index("gb")]) > 0 and abs(g[names.index("ib")]) > 0  # basal levels carry derivatives


def test_glucose_spec_validates() -> None:
    spec = load_spec_file("model_specs/glucose_minimal.py")
    validate_spec(spec, MODEL)
    assert spec.unit("glucose") == "mg/dL" and spec.unit("time") == "min"


# --- the bundled CGM data --------------------------------------------------------------------------------------
def test_cgm_loader_counts_units_and_meals() -> None:
    table = load_dataset("cgm_hall2018")
    raw = pd.read_csv(dataset_path("cgm_hall2018"))
    assert (table.n_patients, len(table.observations)) == (3, 5564)
    obs = table.observations
    np.testing.assert_array_equal(obs["dv"].to_numpy(), raw["glucose_mg_dl"].to_numpy())
    np.testing.assert_allclose(obs["time"].to_numpy(), raw["time_s"].to_numpy() / 60.0)
    assert table.units["time"] == "min" and table.units["dv"] == "mg/dL" and table.units["amt"] == "g"
    doses = table.frame[table.frame["evid"] == 1]
    assert len(doses) == 9 and (doses["amt"] == HALL2018_NOMINAL_MEAL_G).all() and (doses["cmt"] == 1).all()
    assert doses.groupby("id").size().to_dict() == {"2133-004": 3, "2133-018": 3, "2133-039": 3}


def _corrupt(tmp_path, name: str, line: int, column: str, value: str):
    raw = pd.read_csv(dataset_path(name), dtype=str, keep_default_na=False)
    raw.loc[line - 2, column] = value
    path = tmp_path / f"{name}_bad.csv"
    raw.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("value", ["n/a", ""])
def test_bad_glucose_is_refused_at_its_line(tmp_path, value: str) -> None:
    path = _corrupt(tmp_path, "cgm_hall2018", 9, "glucose_mg_dl", value)
    with pytest.raises(InputError, match=rf"column glucose_mg_dl in the glucose file .*line 9 \(subject 2133-004\): "
                                         rf"'{value}'.*Fix or remove"):
        _cgm_hall2018(path)


def test_bad_meal_time_is_refused_at_its_line(tmp_path) -> None:
    path = _corrupt(tmp_path, "cgm_hall2018_meals", 6, "time_s", "9:40")
    with pytest.raises(InputError, match=r"column time_s in the meals file .*line 6 \(subject 2133-018\): '9:40'"):
        _cgm_hall2018(meals=path)
