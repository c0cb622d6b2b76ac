"""Several observed outputs in one fit: concentrations (DVID 1) and a drug effect (DVID 2).

The structural model here is test-only (the PD model library is another issue): a one-compartment IV
model whose second output is a direct Emax effect, ``E = Emax * C / (EC50 + C)``. Twenty simulated
patients, each with six concentrations (recorded in ng/mL, modelled in mg/L) and six effect readings
(in %) at *other* times, proportional error 10 % on the concentrations and additive error 4 % on the
effect. What is checked:

* the pointwise log-likelihood stored in the fit equals a hand computation with scipy, observation by
  observation, each with its own error model and SDs (the analytic check of the multi-output likelihood);
* the fit passes its gate and every population quantity's truth lies in its central 99 % interval
  (6 quantities: if the intervals are calibrated, all six pass with probability 0.99**6 = 94 %; seed 3 is
  the only simulation seed used);
* a twin of a new patient forecasts both outputs, each in its own unit, in the tables and the JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax import Array
from scipy import stats

from bayestwin.data import read_nonmem
from bayestwin.dynamics import closed_form as cf
from bayestwin.dynamics.events import Doses
from bayestwin.exceptions import SpecError
from bayestwin.inference import SamplerConfig, fit_population
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.models import get_model, model_names, register
from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.twin import Twin

if "test.one_cmt_iv_emax" not in model_names():

    @register("test.one_cmt_iv_emax")
    class OneCmtIVEmax(AbstractStructuralModel):
        """One-compartment IV PK with a direct Emax effect as a second output (test-only)."""

        compartments: ClassVar[tuple[str, ...]] = ("central",)
        default_dose_compartment: ClassVar[str] = "central"
        outputs: ClassVar[tuple[str, ...]] = ("conc", "effect")
        parameters: ClassVar[Mapping[str, str]] = {"cl": "L/h", "v": "L", "emax": "%", "ec50": "mg/L"}
        units: ClassVar[Mapping[str, str]] = {"time": "h", "amt": "mg", "conc": "mg/L", "effect": "%"}

        def predict(self, theta: Mapping[str, Array], doses: Doses, times: Array, *,
                    features: frozenset[str] | None = None) -> Array:
            conc = cf.one_cmt_iv(times, doses, theta["cl"], theta["v"], features=features)
            return jnp.stack([conc, theta["emax"] * conc / (theta["ec50"] + conc)], axis=-1)


TRUTH = {"tv_cl": 2.0, "tv_v": 20.0, "tv_emax": 80.0, "tv_ec50": 1.5, "sigma_prop_conc": 0.1,
         "sigma_add_effect": 4.0}
CONC_TIMES = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.0])
EFFECT_TIMES = np.array([1.5, 3.0, 6.0, 10.0, 16.0, 24.0])
UNITS = {"time": "h", "amt": "mg", "dv": "ng/mL", "dv[2]": "%"}


def _spec() -> TwinSpec:
    ln = Prior.lognormal
    return TwinSpec(
        name="pkpd_emax_test", model="test.one_cmt_iv_emax",
        parameters=(Parameter("cl", unit="L/h", typical=ln(median=3.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
                    Parameter("v", unit="L", typical=ln(median=30.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
                    Parameter("emax", unit="%", typical=ln(median=60.0, sigma=1.0)),
                    Parameter("ec50", unit="mg/L", typical=ln(median=2.0, sigma=1.0), bsv=Prior.half_normal(0.5))),
        error=(ErrorModel("proportional", output="conc"),
               ErrorModel("additive", output="effect", priors=(("sigma_add", Prior.half_normal(10.0)),))),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L"), ("effect", "%")),
        centered=True)  # data-rich patients: centred + dense mass matrix, as model_specs/two_cmt_iv.py


def _truth_of(rng: np.random.Generator) -> dict[str, float]:
    return {"cl": TRUTH["tv_cl"] * np.exp(0.3 * rng.normal()), "v": TRUTH["tv_v"] * np.exp(0.3 * rng.normal()),
            "emax": TRUTH["tv_emax"], "ec50": TRUTH["tv_ec50"] * np.exp(0.3 * rng.normal())}


def _rows(pid: int, theta: Mapping[str, float], rng: np.random.Generator, conc_times: np.ndarray,
          effect_times: np.ndarray) -> list[dict]:
    model = get_model("test.one_cmt_iv_emax")
    times = np.concatenate([conc_times, effect_times])
    pred = np.asarray(model.predict({k: jnp.asarray(v) for k, v in theta.items()},
                                    Doses.single(time=0.0, amt=100.0), jnp.asarray(times)))
    conc = pred[: len(conc_times), 0] * (1 + TRUTH["sigma_prop_conc"] * rng.normal(size=len(conc_times)))
    effect = pred[len(conc_times):, 1] + TRUTH["sigma_add_effect"] * rng.normal(size=len(effect_times))
    rows = [{"ID": pid, "TIME": 0.0, "EVID": 1, "AMT": 100.0, "DV": ".", "DVID": "."}]
    rows += [{"ID": pid, "TIME": t, "EVID": 0, "AMT": 0.0, "DV": 1000.0 * y, "DVID": 1}  # ng/mL in the data
             for t, y in zip(conc_times, conc, strict=True)]
    rows += [{"ID": pid, "TIME": t, "EVID": 0, "AMT": 0.0, "DV": y, "DVID": 2} for t, y in zip(effect_times, effect,
                                                                                               strict=True)]
    return sorted(rows, key=lambda r: r["TIME"])


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(3)
    rows = []
    for pid in range(1, 21):
        rows += _rows(pid, _truth_of(rng), rng, CONC_TIMES, EFFECT_TIMES)
    return read_nonmem(pd.DataFrame(rows), units=UNITS)


@pytest.fixture(scope="module")
def fit(cohort):
    return fit_population(_spec(), cohort, sampler=SamplerConfig(chains=4, warmup=400, draws=400, dense_mass=True,
                                                                         seed=2))


def test_arrays_convert_each_output_to_its_unit(cohort) -> None:
    arrays = cohort_arrays(cohort, _spec(), get_model("test.one_cmt_iv_emax"))
    table = arrays.observations
    assert arrays.units == {"time": "h", "amt": "mg", "conc": "mg/L", "effect": "%"}
    assert (table["output"] == "conc").sum() == 120 and (table["output"] == "effect").sum() == 120
    raw = cohort.observations
    conc_rows = table["output"] == "conc"
    np.testing.assert_allclose(table.loc[conc_rows, "dv"], raw.loc[raw["dvid"] == 1, "dv"] / 1000.0, rtol=1e-15)
    np.testing.assert_array_equal(table.loc[~conc_rows, "dv"], raw.loc[raw["dvid"] == 2, "dv"])
    out = np.asarray(arrays.obs.output)[np.asarray(arrays.obs.mask)]
    np.testing.assert_array_equal(out, (table["output"] == "effect").to_numpy().astype(int))


def test_a_dvid_the_spec_does_not_observe_is_an_error_naming_the_row(cohort) -> None:
    one_output = TwinSpec.from_dict({**_spec().to_dict(), "error": [ErrorModel("proportional").to_dict()]})
    with pytest.raises(SpecError, match=r"row \d+ \(patient 1\): DVID 2 .* observes 1 output"):
        cohort_arrays(cohort, one_output, get_model("test.one_cmt_iv_emax"))


def test_an_output_the_model_does_not_predict_is_an_error(cohort) -> None:
    bad = TwinSpec.from_dict({**_spec().to_dict(), "error": [ErrorModel("proportional").to_dict(),
                                                             ErrorModel("additive", output="auc").to_dict()]})
    with pytest.raises(SpecError, match=r"output .auc.*predicts \[.conc., .effect.\]"):
        cohort_arrays(cohort, bad, get_model("test.one_cmt_iv_emax"))


def test_stored_loglik_matches_a_hand_computation(fit) -> None:
    post = fit.idata.posterior.isel(chain=0, draw=7)
    table = fit.arrays.observations
    model = get_model("test.one_cmt_iv_emax")
    expected = []
    for _, row in table.iterrows():
        p = list(fit.arrays.patients).index(row["patient"])
        theta = {k: jnp.asarray(float(post[k].values[p])) for k in ("cl", "v", "emax", "ec50")}
        pred = np.asarray(model.predict(theta, Doses.single(time=0.0, amt=100.0), jnp.asarray([row["time"]])))[0]
        if row["output"] == "conc":
            sd = float(post["sigma_prop_conc"]) * pred[0]
            expected.append(stats.norm.logpdf(row["dv"], pred[0], sd))
        else:
            expected.append(stats.norm.logpdf(row["dv"], pred[1], float(post["sigma_add_effect"])))
    stored = fit.idata.log_likelihood["obs"].isel(chain=0, draw=7).to_numpy()
    np.testing.assert_allclose(stored, expected, rtol=1e-9)
    assert list(np.unique(fit.idata.observed_data["observation_unit"])) == ["%", "mg/L"]


def test_population_recovers_both_outputs(fit) -> None:
    assert fit.diagnostics.ok, fit.diagnostics.format()
    post = fit.idata.posterior
    assert post["sigma_add_effect"].attrs["unit"] == "%"
    for name, truth in TRUTH.items():
        lo, hi = np.quantile(post[name].to_numpy(), [0.005, 0.995])
        assert lo < truth < hi, (name, lo, truth, hi)


def test_twin_forecasts_each_output_in_its_unit(fit) -> None:
    rng = np.random.default_rng(99)
    theta = _truth_of(rng)
    history = read_nonmem(pd.DataFrame(_rows(99, theta, rng, CONC_TIMES[:3], EFFECT_TIMES[:2])), units=UNITS)
    twin = Twin(_spec(), population=fit, sampler=SamplerConfig(chains=4, warmup=300, draws=300, seed=1))
    twin.fit(history)
    assert twin.diagnostics_.ok, twin.diagnostics_.format()
    times = np.array([4.0, 8.0, 12.0, 24.0])
    fc = twin.forecast(times)
    assert fc.outputs == ["conc", "effect"]
    assert fc.dataset["pred"].dims == ("chain", "draw", "time", "output")
    table = fc.interval(0.95)
    assert dict(zip(table["output"], table["unit"], strict=False)) == {"conc": "mg/L", "effect": "%"}
    doc = json.loads(fc.to_json())
    assert doc["outputs"] == [{"name": "conc", "unit": "mg/L", "nonnegative": False},  # the test model declares
                              {"name": "effect", "unit": "%", "nonnegative": False}]  # no nonnegative_outputs
    truth = np.asarray(get_model("test.one_cmt_iv_emax").predict(
        {k: jnp.asarray(v) for k, v in theta.items()}, Doses.single(time=0.0, amt=100.0), jnp.asarray(times)))
    ipred = fc.interval(0.95, quantity="ipred")
    for j, out in enumerate(("conc", "effect")):
        rows = ipred[ipred["output"] == out]
        inside = (rows["lower"].to_numpy() < truth[:, j]) & (truth[:, j] < rows["upper"].to_numpy())
        assert inside.sum() >= 3, (out, rows, truth[:, j])
