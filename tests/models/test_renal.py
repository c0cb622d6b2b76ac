"""eGFR models (``bayestwin.models.renal``) and the crossing probability (``bayestwin.forecast.crossing``).

Predictions against numpy, the centring identity, piecewise-constant parameters, gradients against
finite differences; P(crossing) against a closed-form bivariate-normal answer within 4 Monte Carlo standard
errors (a two-sided false alarm rate of about 6e-5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bayestwin.dynamics.events import Doses
from bayestwin.exceptions import InputError
from bayestwin.forecast import Forecast
from bayestwin.forecast.crossing import crossing_indicator, probability_of_crossing
from bayestwin.models import get_model, validate_spec
from bayestwin.models.renal import EGFRExponential, EGFRLinear

NONE = Doses.single(time=0.0, amt=0.0)._replace(mask=jnp.array([False]))
TIMES = np.array([0.0, 0.5, 1.0, 2.5, 4.0, 7.5])


def test_linear_and_exponential_predictions() -> None:
    lin = np.asarray(EGFRLinear().predict({"egfr_ref": 40.0, "slope": -2.5, "time_ref": 2.0}, NONE,
                                          jnp.asarray(TIMES)))[:, 0]
    np.testing.assert_allclose(lin, 40.0 - 2.5 * (TIMES - 2.0), rtol=1e-15)
    exp = np.asarray(EGFRExponential().predict({"egfr_ref": 40.0, "k": 0.08, "time_ref": 2.0}, NONE,
                                               jnp.asarray(TIMES)))[:, 0]
    np.testing.assert_allclose(exp, 40.0 * np.exp(-0.08 * (TIMES - 2.0)), rtol=1e-15)
    # time_ref defaults to 0: egfr_ref is then the value at time 0
    assert float(EGFRExponential().predict({"egfr_ref": 40.0, "k": 0.08}, NONE, jnp.array([0.0]))[0, 0]) == 40.0


def test_centring_only_moves_the_reference_point() -> None:
    # the same line written around time_ref 0 and 3: egfr_ref(3) = egfr_ref(0) + 3 slope
    a = EGFRLinear().predict({"egfr_ref": 50.0, "slope": -4.0}, NONE, jnp.asarray(TIMES))
    b = EGFRLinear().predict({"egfr_ref": 38.0, "slope": -4.0, "time_ref": 3.0}, NONE, jnp.asarray(TIMES))
    np.testing.assert_allclose(a, b, rtol=1e-14)


@pytest.mark.parametrize("name", ["renal.egfr_linear", "renal.egfr_exponential"])
def test_segments_with_one_segment_equal_predict(name: str) -> None:
    model = get_model(name)
    theta = dict(model.reference_values) | {"time_ref": 1.0}
    one = model.predict(theta, NONE, jnp.asarray(TIMES))
    seg = model.predict_segments({k: jnp.array([v, v]) for k, v in theta.items()}, jnp.array([-jnp.inf, jnp.inf]),
                                 NONE, jnp.asarray(TIMES))
    np.testing.assert_allclose(one, seg, rtol=1e-15)
    # a second segment from t = 2.5 on uses its own parameters there
    two = {k: jnp.array([v, 2 * v]) for k, v in theta.items() if k != "time_ref"} | {"time_ref": jnp.array([1.0, 1.0])}
    out = np.asarray(model.predict_segments(two, jnp.array([-jnp.inf, 2.5]), NONE, jnp.asarray(TIMES)))[:, 0]
    late = np.asarray(model.predict({k: v[1] for k, v in two.items()}, NONE, jnp.asarray(TIMES)))[:, 0]
    np.testing.assert_allclose(out[TIMES >= 2.5], late[TIMES >= 2.5], rtol=1e-15)


@pytest.mark.parametrize("name", ["renal.egfr_linear", "renal.egfr_exponential"])
def test_gradients_are_finite_and_match_differences(name: str) -> None:
    model = get_model(name)
    ref = dict(model.reference_values)

    def total(x: jax.Array) -> jax.Array:
        return jnp.sum(model.predict(dict(zip(ref, x, strict=True)) | {"time_ref": 2.0}, NONE,
                                     jnp.asarray(TIMES)) ** 2)

    x0 = jnp.asarray(list(ref.values()))
    grad = np.asarray(jax.grad(total)(x0))
    assert np.isfinite(grad).all()
    for i in range(x0.size):
        h = 1e-6 * abs(float(x0[i]))
        fd = (float(total(x0.at[i].add(h))) - float(total(x0.at[i].add(-h)))) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-6)


def test_spec_files_validate_with_a_treatment_effect_on_the_rate() -> None:
    from model_specs.egfr_decline import exponential_spec, spec

    for s, rate, form in ((spec(), "slope", "linear"), (exponential_spec(), "k", "exponential")):
        validate_spec(s)
        effect = s.parameter(rate).covariates[0]
        assert (effect.covariate, effect.form, effect.reference) == ("TRT", form, 0.0)
        assert s.parameter("time_ref").fixed == 2.0


def _forecast(ipred: np.ndarray, times: np.ndarray, chains: int) -> Forecast:
    return Forecast.from_draws(ipred[..., None], ipred[..., None], chains=chains, times=times, outputs=["egfr"],
                               units={"egfr": "mL/min"}, time_unit="year", metadata={})


def test_probability_of_crossing_matches_a_closed_form() -> None:
    # independent draws of a line a + b t, a ~ N(30, 5), b ~ N(-3, 1): the trajectory is below 15 somewhere on
    # [0, H] iff min(a, a + b H) < 15, whose probability is 1 - P(a >= 15, a + b H >= 15) (bivariate normal)
    rng = np.random.default_rng(7)
    n, horizon = 8000, 4.0
    a, b = rng.normal(30.0, 5.0, n), rng.normal(-3.0, 1.0, n)
    times = np.linspace(0.0, 6.0, 25)
    fc = _forecast(a[:, None] + b[:, None] * times, times, chains=4)
    row = probability_of_crossing(fc, threshold=15.0, by=horizon).iloc[0]
    cov = np.array([[25.0, 25.0], [25.0, 25.0 + horizon**2]])
    # P(a >= 15, a + bH >= 15) = P(-a <= -15, -(a + bH) <= -15)
    both_above = stats.multivariate_normal(mean=[-30.0, -(30.0 - 3.0 * horizon)], cov=cov).cdf([-15.0, -15.0])
    exact = 1.0 - both_above
    assert row["n_draws"] == n and row["direction"] == "below" and row["unit"] == "mL/min"
    assert abs(row["probability"] - exact) <= 4 * row["mcse"], (row["probability"], exact, row["mcse"])
    # the MCSE of independent draws is the binomial one
    assert row["mcse"] == pytest.approx(np.sqrt(exact * (1 - exact) / n), rel=0.1)


def test_crossing_above_after_and_several_horizons() -> None:
    times = np.array([0.0, 1.0, 2.0, 3.0])
    paths = np.array([[10.0, 30.0, 10.0, 10.0], [10.0, 10.0, 10.0, 30.0], [10.0, 10.0, 10.0, 10.0],
                      [30.0, 10.0, 10.0, 10.0]])
    fc = _forecast(paths, times, chains=1)
    table = probability_of_crossing(fc, threshold=20.0, below=False, by=[1.0, 3.0])
    assert table["probability"].tolist() == [0.5, 0.75]
    assert (table["direction"] == "above").all()
    # counting from t = 1 only: the draw above 20 at t = 0 alone no longer counts
    assert crossing_indicator(fc, threshold=20.0, below=False, by=3.0, after=1.0).ravel().tolist() == [
        True, True, False, False]
    # every draw agrees: probability 0 with MCSE 0
    none = probability_of_crossing(fc, threshold=50.0, below=False, by=3.0).iloc[0]
    assert (none["probability"], none["mcse"]) == (0.0, 0.0)


def test_crossing_errors_say_what_to_fix() -> None:
    fc = _forecast(np.ones((4, 2)), np.array([1.0, 2.0]), chains=1)
    with pytest.raises(InputError, match=r"no forecast time lies in \[-inf, 0.5\] year.*forecast on a grid"):
        probability_of_crossing(fc, threshold=15.0, by=0.5)
    with pytest.raises(InputError, match="has no output 'conc'; it has \\['egfr'\\]"):
        probability_of_crossing(fc, threshold=15.0, by=2.0, output="conc")
    with pytest.raises(InputError, match="quantity must be 'ipred'"):
        probability_of_crossing(fc, threshold=15.0, by=2.0, quantity="latent")
