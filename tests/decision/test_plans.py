"""Plan and target construction: schedules, titration, interventions, and every bad input naming its field."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayestwin.decision import Exceeds, Intervention, InWindow, Plan, TimeInRange, TimeToThreshold, Titration
from bayestwin.decision.optimize import Constraint, regimen_grid
from bayestwin.exceptions import SpecError


def test_repeat_schedule_with_stop_and_infusion() -> None:
    p = Plan.repeat(dose=500.0, interval=8.0, stop=24.0, duration=0.5, route="iv")
    assert [d.time for d in p.regimen.doses] == [0.0, 8.0, 16.0, 24.0]
    assert all(d.rate == 1000.0 and d.cmt == "central" for d in p.regimen.doses)  # rate = amt / duration
    assert p.total_amount == 2000.0 and p.interval == 8.0 and p.last_dose_time() == 24.0
    assert p.name == "500 mg q8h x4 over 0.5 h"
    assert Plan.repeat(dose=1.0, interval=8.0, count=2, stop=100.0).amounts == (1.0, 1.0)  # count caps stop
    rec = p.to_record()
    assert rec["doses"][0] == {"time": 0.0, "amt": 500.0, "rate": 1000.0, "cmt": "central", "time_unit": "h",
                               "amt_unit": "mg"}


def test_titration_rule_is_deterministic() -> None:
    p = Plan.titrated(start_dose=100.0, step=50.0, every=2, max_dose=220.0, interval=12.0, count=7, route="oral")
    assert p.amounts == (100.0, 100.0, 150.0, 150.0, 200.0, 200.0, 220.0)
    assert p.titration == Titration(100.0, 50.0, every=2, max_dose=220.0)
    assert p.regimen.doses[0].cmt == "depot" and "titrated" in p.name


def test_interventions_and_none_plan() -> None:
    stent = Plan.intervention("stent 3 mm", Intervention("d_lumen", 3.0, unit="mm"))
    assert stent.regimen is None and stent.amounts == () and stent.last_dose_time() is None
    assert Plan.none().name == "no new doses"
    assert Intervention("cl", 0.5, mode="scale", start=10.0).describe() == "cl x 0.5 from 10 h"


def test_regimen_grid_is_the_cartesian_product() -> None:
    grid = regimen_grid(doses=[100.0, 200.0], intervals=[8.0, 12.0, 24.0], stop=48.0)
    assert [p.name for p in grid][:3] == ["100 mg q8h x7", "100 mg q12h x5", "100 mg q24h x3"]
    assert len(grid) == 6


def test_targets_describe_and_validate() -> None:
    assert Exceeds("tox", threshold=20.0, at=2.0).kind == "at"
    assert Exceeds("tox", threshold=20.0).kind == "any"
    assert TimeInRange("tir", lo=1.0, hi=2.0, within=(0.0, 24.0)).describe() == "time in range [1, 2] in [0, 24] h"
    assert TimeToThreshold("ttt", threshold=2.0, direction="down").bounds == (-math.inf, 2.0)
    with pytest.raises(SpecError, match="'hi'"):
        InWindow("w", lo=5.0, hi=1.0)
    with pytest.raises(SpecError, match="'direction'"):
        TimeToThreshold("t", threshold=1.0, direction="sideways")
    with pytest.raises(SpecError, match="not both"):
        Exceeds("t", threshold=1.0, at=1.0, within=(0.0, 2.0))
    with pytest.raises(SpecError, match="'within'"):
        TimeInRange("t", lo=0.0, within=(5.0, 1.0))
    with pytest.raises(SpecError, match="'quantity'"):
        InWindow("t", lo=0.0, quantity="latent")
    with pytest.raises(SpecError, match="max= or min="):
        Constraint("t")


# --- property test: every bad value is refused with a SpecError naming its field ---------------------
_GOOD = {"dose": 100.0, "interval": 12.0, "count": 3, "start": 0.0, "duration": 0.0, "time_unit": "h",
         "amt_unit": "mg", "route": 0}
_BAD = {
    "dose": st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), st.just("100")),
    "interval": st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(-math.inf)),
    "count": st.one_of(st.integers(max_value=0), st.just(2.5), st.just(True)),
    "start": st.one_of(st.just(math.nan), st.just(math.inf), st.just(None)),
    "duration": st.one_of(st.floats(max_value=-1e-9, allow_infinity=False), st.just(math.nan)),
    "time_unit": st.sampled_from(["", "furlong_per_day", "not a unit"]),
    "amt_unit": st.sampled_from(["", "zz", "mg mg mg /"]),
    "route": st.one_of(st.integers(max_value=-1), st.just(""), st.just(1.5)),
}


@settings(deadline=None, max_examples=120)
@given(st.sampled_from(sorted(_BAD)).flatmap(lambda f: st.tuples(st.just(f), _BAD[f])))
def test_bad_plan_fields_raise_spec_error_naming_the_field(bad: tuple[str, object]) -> None:
    name, value = bad
    with pytest.raises(SpecError, match=f"'{name}'"):
        Plan.repeat(**{**_GOOD, name: value})


@settings(deadline=None, max_examples=60)
@given(st.floats(min_value=1e-3, max_value=1e4), st.floats(min_value=0.1, max_value=48.0),
       st.integers(min_value=1, max_value=30), st.floats(min_value=-100.0, max_value=100.0))
def test_good_plans_have_count_doses_at_even_intervals(dose: float, interval: float, count: int, start: float) -> None:
    p = Plan.repeat(dose=dose, interval=interval, count=count, start=start)
    times = [d.time for d in p.regimen.doses]
    assert len(times) == count and times[0] == start
    assert all(math.isclose(b - a, interval, rel_tol=1e-9, abs_tol=1e-9) for a, b in itertools.pairwise(times))
    assert math.isclose(p.total_amount, dose * count, rel_tol=1e-12)


@settings(deadline=None, max_examples=60)
@given(st.sampled_from(["parameter", "mode", "value", "start", "unit"]))
def test_bad_intervention_fields(field: str) -> None:
    bad = {"parameter": "", "mode": "double", "value": math.nan, "start": math.inf, "unit": "zz"}
    kwargs = {"parameter": "cl", "value": 2.0, "mode": "set", "start": None, "unit": None, field: bad[field]}
    with pytest.raises(SpecError, match=f"'{field}'"):
        Intervention(**kwargs)
