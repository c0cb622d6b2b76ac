"""The draw-chunked linear path (``bayestwin.decision.fused``) gives the plan-chunked path's values.

Same draws, same noise, every target kind, on ``ipred`` and ``pred``; several plans per amounts pattern, a
pattern of its own (a titration), IV boluses, a plan without doses, and draw chunks that do not
divide the draws (the last one padded). Indicators and crossing times are compared exactly (a flip would need
a value within ~1e-15 relative of a threshold), the interval sample to 1e-12 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bayestwin.decision.compare as compare_module
from bayestwin.decision import (
    Exceeds,
    InWindow,
    Plan,
    PosteriorDraws,
    TimeInRange,
    TimeToThreshold,
    compare_plans,
    trace_count,
)
from bayestwin.decision.fused import group_plans
from bayestwin.models import get_model
from bayestwin.testing.design import default_spec

PLANS = [*(Plan.repeat(dose=d, interval=8.0, count=3) for d in (50.0, 120.0, 300.0)),
         Plan.repeat(dose=200.0, interval=12.0, count=2),
         Plan.titrated(start_dose=50.0, step=50.0, interval=8.0, count=3, name="titrated"),
         *(Plan.repeat(dose=d, interval=8.0, count=3, route="central") for d in (80.0, 160.0)),
         Plan.none()]
TARGETS = [InWindow("at 20", lo=2.0, hi=8.0, at=20.0), Exceeds("peak", threshold=6.0, within=(0.0, 24.0)),
           TimeInRange("tir", lo=2.0, hi=8.0, within=(4.0, 30.0)), TimeToThreshold("reach 4", threshold=4.0),
           TimeToThreshold("fall to 3", threshold=3.0, direction="down", within=(10.0, 30.0)),
           Exceeds("measured > 6", threshold=6.0, quantity="pred"),
           InWindow("measured at 16", lo=2.0, hi=8.0, at=16.0, quantity="pred")]


@pytest.fixture(scope="module")
def draws() -> PosteriorDraws:
    spec = default_spec(get_model("pk.one_cmt_oral"))
    rng = np.random.default_rng(3)
    shape = (4, 53)  # 212 draws: chunks of 31 leave the last chunk padded
    theta = {"ka": np.exp(rng.normal(0.0, 0.3, shape)), "cl": np.exp(rng.normal(np.log(2.0), 0.3, shape)),
             "v": np.exp(rng.normal(np.log(20.0), 0.2, shape))}
    sigmas = {s: np.full(shape, 0.15) for s in spec.sigma_names}
    return PosteriorDraws.from_arrays(spec, theta, sigmas)


def test_fused_equals_plan_chunked(draws, monkeypatch) -> None:
    grid = np.linspace(0.0, 30.0, 61)
    monkeypatch.setattr(compare_module, "draws_per_chunk", lambda n, cells: 31)
    fused = compare_plans(draws, PLANS, TARGETS, times=grid, seed=5)
    before = trace_count()
    again = compare_plans(draws, PLANS, TARGETS, times=grid, seed=6)
    assert trace_count() == before  # one program, compiled once
    monkeypatch.setattr(compare_module, "_FUSED_LINEAR", False)
    chunked = compare_plans(draws, PLANS, TARGETS, times=grid, seed=5)
    assert fused.dataset.attrs["path"] == chunked.dataset.attrs["path"] == "linear"
    a, b = fused.dataset, chunked.dataset
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    for name in ("ipred_sample", "pred_sample"):
        np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(), rtol=1e-12, atol=1e-12)
    # the comparison is not vacuous: targets vary across plans and draws, and the seed moves the noise only
    v = a["value"].to_numpy()
    finite = np.where(np.isfinite(v), v, -1.0)
    assert all(np.ptp(finite[:, k]) > 0 for k in range(len(TARGETS)))
    names = [t.name for t in TARGETS]
    latent = [names.index("peak"), names.index("tir")]
    np.testing.assert_array_equal(again.dataset["value"].to_numpy()[:, latent], v[:, latent])
    assert not np.array_equal(again.dataset["value"].to_numpy()[:, names.index("measured > 6")],
                              v[:, names.index("measured > 6")])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 0.5, 1.0, 37.5, 1e3])), min_size=1,
                max_size=30))
def test_group_plans_rebuilds_every_plan(plans: list[tuple[int, float]]) -> None:
    base = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 2.0, 2.0, 0.5], [3.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 7.0]])
    amounts = np.array([c * base[r] for r, c in plans])
    g = group_plans(amounts)
    rows, width = g.coef.shape
    assert len(np.unique(g.position)) == len(plans) and g.cells < 2 * len(plans) + 1
    rebuilt = g.coef.reshape(-1)[g.position, None] * g.patterns[g.row_pattern[g.position // width]]
    np.testing.assert_allclose(rebuilt, amounts, rtol=1e-15, atol=0)
    padding = np.setdiff1d(np.arange(rows * width), g.position)
    assert np.all(g.coef.reshape(-1)[padding] == 0.0)
