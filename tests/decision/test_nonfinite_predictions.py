"""A prediction that is not finite for some draws (a failed ODE solve) is an error, never a silent subset.

The draws are built directly with a NaN clearance in two of them: the closed-form model then predicts NaN for
those draws exactly as an ODE model does where its solver fails (``SolveStatus`` -> NaN). Every path of
``compare_plans`` must refuse to summarise the other draws, and ``require_finite_predictions`` (used by
``Twin.forecast``) must name the draws.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayestwin.decision import Exceeds, InWindow, Plan, PosteriorDraws, TimeToThreshold, compare_plans
from bayestwin.exceptions import PredictionError
from bayestwin.forecast import require_finite_predictions
from bayestwin.spec import example_spec

TIMES = np.linspace(0.0, 48.0, 25)
TARGETS = [Exceeds("above 8", threshold=8.0, within=(24.0, 48.0)), InWindow("trough", lo=1.0, hi=5.0, at=47.0),
           TimeToThreshold("reach 6", threshold=6.0, within=(0.0, 48.0))]
PLANS = [Plan.repeat(dose=d, interval=12.0, count=4, start=0.0) for d in (100.0, 200.0)]


def _draws(bad: tuple[int, ...]) -> PosteriorDraws:
    rng = np.random.default_rng(0)
    cl = rng.lognormal(np.log(2.0), 0.2, size=(2, 20))
    for i in bad:
        cl.flat[i] = np.nan
    return PosteriorDraws.from_arrays(example_spec(), {"ka": np.full((2, 20), 1.0), "cl": cl,
                                                       "v": rng.lognormal(np.log(20.0), 0.1, size=(2, 20))},
                                      {"sigma_add": np.full((2, 20), 0.2)})


@pytest.mark.parametrize("path", [None, "generic"])
def test_compare_plans_refuses_draws_that_did_not_solve(path: str | None) -> None:
    ok = compare_plans(_draws(()), PLANS, TARGETS, times=TIMES, path=path)
    assert np.isfinite(ok.summary()["estimate"]).all()
    with pytest.raises(PredictionError, match=r"plan '200 mg.*', target 'above 8': 2 of 40 draws"):
        compare_plans(_draws((3, 27)), PLANS, TARGETS, times=TIMES, path=path)


def test_require_finite_predictions_counts_draws_and_names_times() -> None:
    v = np.ones((5, 3, 2))
    require_finite_predictions(v, np.array([1.0, 2.0, 3.0]), ["conc", "effect"])  # all finite: nothing
    v[1, 2, 1], v[4, 0, 0] = np.nan, np.inf
    with pytest.raises(PredictionError, match=r"2 of 5 posterior draws \(conc at time 1, effect at time 3\)"):
        require_finite_predictions(v, np.array([1.0, 2.0, 3.0]), ["conc", "effect"])


def test_optimize_dose_refuses_draws_that_did_not_solve() -> None:
    from bayestwin.decision import optimize_dose

    targets = [InWindow("trough", lo=2.0, hi=5.0, quantity="pred"),
               Exceeds("peak", threshold=8.0, within=(0.0, 48.0), quantity="pred")]
    kw = {"intervals": [12.0], "dose_range": (20.0, 200.0), "stop": 47.0, "times": TIMES}
    optimize_dose(_draws(()), "trough", {"peak": 0.05}, targets, **kw)
    with pytest.raises(PredictionError, match="optimize_dose: the model's prediction is not finite for 2 of 40"):
        optimize_dose(_draws((3, 27)), "trough", {"peak": 0.05}, targets, **kw)
