"""Decision support on a real twin: theophylline subject 12 (bundled real data), one small fit per module.

The population (11 other subjects) and the twin are fitted with small chains to keep the module cheap (the
fits may miss the convergence gate; every call passes override_convergence=True, which is recorded). What is
checked does not depend on convergence: compare_plans against a brute-force loop over plans through
Twin.forecast on the same posterior, compile-once, extrapolation warnings, the regimen choice and its
point-estimate counterpart, and the recommendation record through a real TwinStore.
"""

from __future__ import annotations

import copy
import dataclasses
import html
import json
import math
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayestwin.data import load_dataset
from bayestwin.decision import (
    RECOMMENDATION_SCHEMA,
    Constraint,
    Exceeds,
    InWindow,
    Plan,
    PosteriorDraws,
    Recommendation,
    TimeToThreshold,
    compare_plans,
    optimize_regimen,
    record_recommendation,
    record_recommendation_html,
    regimen_grid,
    trace_count,
)
from bayestwin.decision.map_estimate import map_draws, twin_log_density
from bayestwin.exceptions import ConvergenceError, ConvergenceWarning, InputError
from bayestwin.inference import SamplerConfig, fit_population
from bayestwin.store import TwinStore
from bayestwin.twin import Twin

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from model_specs.theophylline import spec as theophylline_spec

GRID = np.linspace(0.0, 72.0, 145)
TARGETS = [InWindow("trough 5-15", lo=5.0, hi=15.0, at="trough"),
           Exceeds("peak > 12", threshold=12.0, within=(24.0, 72.0)),
           Exceeds("measured > 8 at 30 h", threshold=8.0, at=30.0, quantity="pred"),
           TimeToThreshold("reach 10", threshold=10.0, within=(24.0, 72.0))]


@pytest.fixture(scope="module")
def twin():
    theo = load_dataset("theo_sd")
    cohort = theo.exclude(theo.frame["id"] == 12, reason="subject 12 is the twin's patient")
    spec = theophylline_spec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # small chains; the override is recorded
        pop = fit_population(spec, cohort, sampler=SamplerConfig(chains=2, warmup=150, draws=150, seed=1))
        return Twin(spec, population=pop, sampler=SamplerConfig(chains=2, warmup=150, draws=250, seed=1),
                    override_convergence=True).fit(theo.patient(12))


def plans() -> list[Plan]:
    return [Plan.repeat(dose=d, interval=12.0, count=3, start=24.0) for d in (100.0, 200.0, 300.0)]


def test_matches_a_brute_force_loop_over_twin_forecasts(twin) -> None:
    cmp = compare_plans(twin, plans(), TARGETS, times=GRID, override_convergence=True)
    s = cmp.summary().set_index(["plan", "target"])
    window = (GRID >= 24.0) & (GRID <= 72.0)
    for plan in plans():
        trough = plan.regimen.doses[-1].time - 1e-6
        times = np.concatenate([GRID, [trough, 30.0]])
        fc = twin.forecast(times, regimen=plan.regimen, override_convergence=True, seed=11)
        ipred = fc.dataset["ipred"].to_numpy()[..., 0].reshape(-1, len(times))
        pred = fc.dataset["pred"].to_numpy()[..., 0].reshape(-1, len(times))
        brute = {"trough 5-15": np.mean([(5.0 <= row[-2] <= 15.0) for row in ipred]),
                 "peak > 12": np.mean([np.any(row[:len(GRID)][window] >= 12.0) for row in ipred]),
                 "reach 10": np.mean([np.any(row[:len(GRID)][window] >= 10.0) for row in ipred])}
        for name, value in brute.items():  # the same posterior draws: equal up to rounding
            assert s.loc[(plan.name, name), "estimate"] == pytest.approx(value, abs=1e-12), (plan.name, name)
        # a new measurement has its own noise in the loop: equal within Monte Carlo error
        got, err = s.loc[(plan.name, "measured > 8 at 30 h"), ["estimate", "mcse"]]
        loop = float(np.mean(pred[:, -1] > 8.0))
        loop_err = math.sqrt(loop * (1 - loop) / len(pred)) * 1.5  # ESS of draws <= their number: allow 1.5x
        assert abs(got - loop) <= 4 * math.hypot(err, loop_err) + 1e-12, (plan.name, got, loop)
    assert any("convergence gate" in w for w in cmp.warnings) == (not twin.diagnostics_.ok
                                                                   or twin.population_overridden_)


def test_refuses_a_failed_twin_without_override(twin) -> None:
    # force a failed gate (the small fit may pass or fail its own): a copy whose report says it failed
    failed = copy.copy(twin)
    failed.diagnostics_ = dataclasses.replace(twin.diagnostics_, ok=False, failures=("forced for this test",))
    with pytest.raises(ConvergenceError, match="override_convergence=True"):
        compare_plans(failed, plans(), TARGETS, times=GRID)


def test_second_comparison_on_the_twin_compiles_nothing(twin) -> None:
    draws = PosteriorDraws.from_twin(twin, override_convergence=True)
    compare_plans(draws, plans(), TARGETS, times=GRID)
    before = trace_count()
    other = [Plan.repeat(dose=d, interval=8.0, count=3, start=30.0) for d in (150.0, 250.0, 350.0)]
    compare_plans(draws, other, TARGETS, times=GRID, seed=5)
    assert trace_count() == before


def test_extrapolated_dose_is_flagged(twin) -> None:
    ranges = PosteriorDraws.from_twin(twin, override_convergence=True).meta["population_ranges"]
    lo, hi = ranges["amt"]
    assert 200.0 < lo <= hi < 400.0  # theophylline doses: 3.1-5.9 mg/kg in adults, about 250-340 mg
    big = Plan.repeat(dose=1000.0, interval=12.0, count=2, start=24.0, name="1000 mg")
    cmp = compare_plans(twin, [plans()[2], big], TARGETS, times=GRID, override_convergence=True)
    flagged = [w for w in cmp.warnings if w.startswith("plan 1000 mg: dose 1000 mg is outside")]
    assert len(flagged) == 1 and f"({lo:g}-{hi:g} mg)" in flagged[0]
    assert not any(w.startswith("plan 300 mg") for w in cmp.warnings)  # 300 mg is inside the cohort's range


@pytest.fixture(scope="module")
def choice(twin):
    grid = regimen_grid(doses=[100.0, 200.0, 300.0, 400.0], intervals=[8.0, 12.0, 24.0], start=24.0, stop=71.0)
    return optimize_regimen(twin, "trough 5-15", [Constraint("peak > 12", max=0.05)], TARGETS, grid=grid,
                            times=GRID, override_convergence=True, point_estimates=("mean", "median", "map"))


def test_regimen_choice_follows_its_rule(choice) -> None:
    t = choice.table
    assert len(t) == 12 and t["chosen"].sum() == (choice.chosen is not None)
    if choice.chosen is None:  # pragma: no cover - depends on the posterior; still a valid outcome
        assert not t["feasible"].any()
        return
    row = t[t["chosen"]].iloc[0]
    assert row["feasible"] and row["tied"] and row["peak > 12"] <= 0.05
    best = t[t["feasible"]]["trough 5-15"].max()
    tied = t[t["tied"]]
    assert set(choice.ties) == set(tied["plan"]) - {row["plan"]}
    assert row["total_amount"] == tied["total_amount"].min()  # least drug among the ties
    assert (best - tied["trough 5-15"] <= 2 * tied["trough 5-15_mcse"].max() * 2 + 1e-12).all()
    assert set(choice.point_estimates) == {"mean", "median", "map"}
    for kind, v in choice.point_estimates.items():
        assert set(v["table"]["trough 5-15"]) <= {0.0, 1.0}  # a point estimate sees no uncertainty
        assert choice.differs_from_point_estimate[kind] == (v["chosen"] != choice.chosen.name)


def test_map_is_the_mode_of_the_twin_posterior(twin) -> None:
    m = map_draws(twin, override_convergence=True)
    assert (m.n_chains, m.n_draws) == (1, 1) and m.meta["point_estimate"] == "map"
    assert m.meta["map"]["converged"]
    logp = twin_log_density(twin)
    post = twin.idata_.posterior
    bsv = [twin.spec.parameter(n) for n in twin.spec.bsv_parameters]
    u_draws = np.stack([np.log(post[p.name].to_numpy().ravel()) if p.scale == "log" else post[p.name].to_numpy().ravel()
                        for p in bsv], axis=1)
    at_draws = np.asarray(jax.vmap(logp)(jnp.asarray(u_draws)))
    u_map = np.array([m.meta["map"]["latent"][p.name] for p in bsv])
    assert float(logp(u_map)) == pytest.approx(m.meta["map"]["log_density"], abs=1e-9)
    assert float(logp(u_map)) >= at_draws.max() - 1e-9  # no posterior draw has a higher density than the mode
    assert np.max(np.abs(np.asarray(jax.grad(logp)(jnp.asarray(u_map))))) < 1e-3  # a stationary point
    for p in bsv:  # the natural-scale values are the latent mode mapped back
        assert m.theta[p.name].item() == pytest.approx(np.exp(m.meta["map"]["latent"][p.name]) if p.scale == "log"
                                                       else m.meta["map"]["latent"][p.name], rel=1e-12)
    with pytest.raises(InputError, match="needs the fitted Twin"):
        optimize_regimen(PosteriorDraws.from_twin(twin, override_convergence=True), "trough 5-15", {"peak > 12": 0.05},
                         TARGETS, grid=plans(), times=GRID, point_estimates=("map",))


def test_recommendation_round_trip_through_a_real_store(twin, choice, tmp_path) -> None:
    rec = Recommendation.from_choice(choice)
    doc = json.loads(rec.to_json())
    assert doc["schema"] == RECOMMENDATION_SCHEMA and doc["patient"] == "12"
    assert doc["model"]["spec_digest"] == twin.spec.digest()
    assert doc["population_version"] == twin.population_version_
    assert doc["data"]["data_digest"] == twin.events_.digest() and doc["data"]["n_observations"] == 11
    assert doc["diagnostics"]["status"] in ("ok", "failed-overridden")
    assert len(doc["plans"]) == 12 and {"estimates", "intervals", "doses"} <= set(doc["plans"][0])
    assert doc["chosen"] == (None if choice.chosen is None else choice.chosen.name) and doc["rule"] == choice.rule
    assert Recommendation.from_json(rec.to_json()).to_json() == rec.to_json()
    with pytest.raises(InputError, match="schema"):
        Recommendation.from_json({**doc, "schema": "bayestwin.recommendation/0"})

    store = TwinStore.open(tmp_path / "store", key="a test key of at least 32 bytes....")
    with pytest.raises(InputError, match="commit the twin"):
        record_recommendation(store, rec, patient=12)
    version = store.commit_twin(twin, expected_parent=None)
    record_recommendation(store, rec, patient=12)
    stored = store.load_version(12, version).records[-1]
    assert stored["kind"] == "recommendation"
    back = Recommendation.from_json(stored["payload"])
    assert back.patient == store.pseudonym(12)  # the store filed it under the pseudonym
    assert json.loads(back.to_json()) == {**json.loads(rec.to_json()), "patient": store.pseudonym(12)}
    assert store.verify_audit().ok
    assert [r.subject for r in store.audit.records() if r.action == "recommendation"] == [store.pseudonym(12)]
    text = back.to_markdown()
    assert text.startswith(f"# Treatment recommendation for patient {store.pseudonym(12)}")
    assert "## Plans compared" in text and "Rule:" in text

    rid = record_recommendation_html(store, rec, patient=12)
    stored_html = store.load_version(12, version).records[-1]
    assert stored_html["kind"] == "recommendation_html" and rid > 0
    assert stored_html["payload"]["created"] == rec.created and stored_html["payload"]["patient"] == store.pseudonym(12)
    page = stored_html["payload"]["html"]
    assert page == dataclasses.replace(rec, patient=store.pseudonym(12)).to_html()  # pseudonymised, nothing else
    for must in [store.pseudonym(12), twin.spec.name, twin.spec.digest(), twin.population_version_,
                 twin.events_.digest(), f"diagnostics: {doc['diagnostics']['status']}", html.escape(rec.rule),
                 rec.created, f"bayestwin {rec.software['bayestwin']}", *[html.escape(w) for w in rec.warnings],
                 *[html.escape(p["name"]) for p in doc["plans"]]]:
        assert must in page, must
    if choice.chosen is not None:
        assert f"Chosen plan: {html.escape(choice.chosen.name)}" in page
    est = doc["plans"][0]["estimates"][0]
    assert f"{100 * est['estimate']:.1f} % ± {100 * est['mcse']:.1f} %" in page  # estimates with their MC errors
    assert page.count("<details>") == len(doc["plans"])  # each plan's predictive intervals
    assert [r.action for r in store.audit.records()][-1] == "recommendation_html" and store.verify_audit().ok


def test_plots_draw(twin) -> None:
    plotting = pytest.importorskip("bayestwin.plotting.plans")
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    cmp = compare_plans(twin, plans(), TARGETS, times=GRID, override_convergence=True)
    assert plotting.plot_plan_fans(cmp) is not None
    assert plotting.plot_plan_probabilities(cmp) is not None
    assert plotting.plot_time_to_threshold(cmp, "reach 10") is not None


def test_intervals_of_a_concentration_are_floored_at_zero_and_cover_as_before(twin) -> None:
    # at the dose time the latent concentration is 0, so additive error puts half of a new measurement below 0
    fc = twin.forecast(np.array([0.0, 24.0]), override_convergence=True, seed=3)
    raw = fc.dataset["pred"].stack(s=("chain", "draw")).quantile(0.025, dim="s").to_numpy()[:, 0]
    assert raw[0] < 0 and fc.nonnegative("conc")
    table = fc.interval(0.95)
    assert table["lower"].iloc[0] == 0.0 and (table[["lower", "median", "upper"]].to_numpy() >= 0).all()
    assert table["upper"].iloc[1] == pytest.approx(
        float(fc.dataset["pred"].stack(s=("chain", "draw")).quantile(0.975, dim="s")[1, 0]))  # untouched
    assert (fc.dataset["pred"].to_numpy() < 0).any()  # the draws are kept as sampled
    assert json.loads(fc.to_json())["outputs"][0]["nonnegative"] is True
    cmp = compare_plans(twin, plans()[:1], TARGETS[:1], times=GRID, override_convergence=True)
    iv = cmp.intervals()
    assert (iv[["lower", "median", "upper"]].to_numpy() >= 0).all()
    sample = cmp.dataset["pred_sample"].to_numpy()
    assert (np.quantile(sample, 0.025, axis=1) < 0).any()  # the floor did something here


def test_non_finite_times_are_refused_before_predicting(twin) -> None:
    with pytest.raises(InputError, match=r"forecast times must be finite numbers; not at positions \[1\]"):
        twin.forecast([1.0, float("nan")], override_convergence=True)
    with pytest.raises(InputError, match=r"compare_plans times must be finite numbers; not at positions \[0\]"):
        compare_plans(twin, plans()[:1], TARGETS[:1], times=[float("inf"), 2.0], override_convergence=True)
    with pytest.raises(InputError, match="interval_times must be finite"):
        compare_plans(twin, plans()[:1], TARGETS[:1], times=GRID, interval_times=[float("nan")],
                      override_convergence=True)


def test_forecast_refuses_draws_whose_prediction_is_not_finite(twin, monkeypatch) -> None:
    import bayestwin.twin as twin_module
    from bayestwin.exceptions import PredictionError

    real = twin_module.predictive_draws

    def failing(*args, **kwargs):  # as an ODE model's failed solve: NaN for some draws
        ipred, pred = real(*args, **kwargs)
        ipred, pred = ipred.copy(), pred.copy()
        ipred[:3, 1], pred[:3, 1] = np.nan, np.nan
        return ipred, pred

    monkeypatch.setattr(twin_module, "predictive_draws", failing)
    n = twin.idata_.posterior.sizes["chain"] * twin.idata_.posterior.sizes["draw"]
    expected = rf"patient 12.*not finite for 3 of {n} posterior draws \(conc at time 30\)"
    with pytest.raises(PredictionError, match=expected):
        twin.forecast([24.0, 30.0], override_convergence=True)
