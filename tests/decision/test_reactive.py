"""Level-reactive plans (ReactiveRule) against a brute-force loop over draws and doses in numpy.

One-compartment IV bolus, ``C(t) = sum_i A_i / V exp(-CL (t - t_i) / V)``: the loop decides each draw's doses one
by one from its own predicted trough, then reads the targets; the compiled kernel must give the same per-draw
values (the same draws, no noise: exact up to rounding).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayestwin.decision import Exceeds, InWindow, Plan, PosteriorDraws, ReactiveRule, compare_plans
from bayestwin.exceptions import InputError, SpecError
from bayestwin.models import get_model
from bayestwin.testing.design import default_spec

V = 20.0
TIMES = np.linspace(0.0, 60.0, 121)
TARGETS = [InWindow("trough 2-5", lo=2.0, hi=5.0, at="trough"), Exceeds("peak > 11", threshold=11.0),
           InWindow("at 30 h", lo=2.0, hi=4.0, at=30.0)]


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(5)
    cl = np.exp(rng.normal(math.log(2.0), 0.3, size=(2, 150)))
    return PosteriorDraws.from_arrays(default_spec(get_model("pk.one_cmt_iv")), {"cl": cl, "v": np.full_like(cl, V)},
                                      {"sigma_prop": np.full_like(cl, 0.1)})


def brute_force(draws: PosteriorDraws, dose: float, interval: float, count: int, rule: ReactiveRule
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per draw: the values of TARGETS and the final amounts, deciding each dose in a Python loop."""
    times = np.arange(count) * interval
    values, amounts = [], []
    for cl in draws.theta["cl"].ravel():
        k = cl / V

        def conc(t: float, given: list[float], k: float = k) -> float:
            return sum(a / V * math.exp(-k * (t - ti)) for a, ti in zip(given, times, strict=False) if t >= ti)

        given: list[float] = []
        scale = 1.0
        for i, t in enumerate(times):
            if i >= rule.first:
                level = conc(t - 1e-6, given)
                if (level > rule.threshold) if rule.direction == "above" else (level < rule.threshold):
                    scale *= rule.factor
            given.append(dose * scale)
        trough = conc(times[-1] - 1e-6, given)
        peak = max(conc(float(t), given) for t in TIMES)
        values.append([2.0 <= trough <= 5.0, peak > 11.0, 2.0 <= conc(30.0, given) <= 4.0])
        amounts.append(given)
    return np.array(values, float), np.array(amounts)


@pytest.mark.parametrize("rule", [ReactiveRule(threshold=3.0, factor=0.75),
                                  ReactiveRule(threshold=2.5, factor=1.5, direction="below", first=2)])
def test_matches_a_brute_force_loop(draws, rule) -> None:
    plan = Plan.reactive_repeat(dose=200.0, interval=12.0, count=5, route="iv", rule=rule)
    fixed = Plan.repeat(dose=200.0, interval=12.0, count=5, route="iv")
    cmp = compare_plans(draws, [fixed, plan], TARGETS, times=TIMES)
    assert cmp.dataset.attrs["path"] == "linear"
    got = cmp.dataset["value"].sel(plan=plan.name).transpose("chain", "draw", "target").to_numpy().reshape(-1, 3)
    want, amounts = brute_force(draws, 200.0, 12.0, 5, rule)
    np.testing.assert_array_equal(got, want)
    adjusted = np.any(amounts != 200.0, axis=1).mean()
    assert 0.1 < adjusted < 0.95  # the rule fires in some draws and not in others: a real test of per-draw doses
    alone = compare_plans(draws, [fixed], TARGETS, times=TIMES).summary()  # a fixed plan is unchanged beside it
    both = cmp.summary()
    assert np.allclose(alone["estimate"].to_numpy(), both[both["plan"] == fixed.name]["estimate"].to_numpy(),
                       atol=1e-12)


def test_reactive_plans_need_the_linear_path(draws) -> None:
    plan = Plan.reactive_repeat(dose=200.0, interval=12.0, count=3, route="iv", rule=ReactiveRule(3.0, 0.75))
    with pytest.raises(InputError, match="linear path"):
        compare_plans(draws, [plan], TARGETS[:2], times=TIMES, path="generic")
    with pytest.raises(SpecError, match="'direction'"):
        ReactiveRule(3.0, 0.75, direction="up")
    with pytest.raises(SpecError, match="'first'"):
        ReactiveRule(3.0, 0.75, first=0)
    assert plan.to_record()["reactive"]["factor"] == 0.75
