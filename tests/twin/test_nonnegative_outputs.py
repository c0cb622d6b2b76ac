"""Outputs that cannot be negative: model declarations and intervals floored at 0 without changing coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayestwin.exceptions import SpecError
from bayestwin.forecast import Forecast
from bayestwin.models import get_model, model_names
from bayestwin.models.registry import register
from bayestwin.spec.structural import AbstractStructuralModel


@pytest.mark.parametrize("name", model_names())
def test_every_model_declares_only_its_own_outputs(name: str) -> None:
    model = get_model(name)
    assert model.nonnegative_outputs <= set(model.outputs)
    if name.startswith(("pk.", "pd.")):
        assert "conc" in model.nonnegative_outputs  # a concentration is never negative


def test_a_model_declaring_an_unknown_output_is_refused() -> None:
    with pytest.raises(SpecError, match=r"nonnegative_outputs \['size'\] are not among its outputs"):
        @register("test.bad_nonnegative")
        class Bad(AbstractStructuralModel):  # pragma: no cover - refused at registration
            outputs = ("conc",)
            nonnegative_outputs = frozenset({"size"})


def _forecast(draws: np.ndarray, nonnegative: list[str]) -> Forecast:
    y = draws.reshape(-1, 1, 2)
    return Forecast.from_draws(y, y, chains=1, times=np.array([1.0]), outputs=["conc", "change"],
                               units={"conc": "mg/L", "change": "mmHg"}, time_unit="h", metadata={},
                               nonnegative=nonnegative)


def test_only_declared_outputs_are_floored() -> None:
    rng = np.random.default_rng(0)
    fc = _forecast(rng.normal(0.2, 1.0, size=(400, 2)), ["conc"])
    table = fc.interval(0.9).set_index("output")
    assert table.loc["conc", "lower"] == 0.0 and table.loc["change", "lower"] < -1.0
    outputs = {o["name"]: o["nonnegative"] for o in json.loads(fc.to_json())["outputs"]}
    assert outputs == {"conc": True, "change": False}
    with pytest.raises(ValueError, match="not forecast"):
        _forecast(rng.normal(size=(10, 2)), ["glucose"])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), mean=st.floats(-2.0, 3.0), prob=st.sampled_from([0.5, 0.8, 0.95]),
       y=st.floats(0.0, 6.0, exclude_min=True))
def test_flooring_does_not_change_whether_a_nonnegative_value_is_covered(seed: int, mean: float, prob: float,
                                                                         y: float) -> None:
    draws = np.random.default_rng(seed).normal(mean, 1.0, size=(200, 2))
    floored = _forecast(draws, ["conc"]).interval(prob).set_index("output").loc["conc"]
    raw = _forecast(draws, []).interval(prob).set_index("output").loc["conc"]
    assert floored["lower"] == max(raw["lower"], 0.0) and floored["upper"] == max(raw["upper"], 0.0)
    assert (floored["lower"] <= y <= floored["upper"]) == (raw["lower"] <= y <= raw["upper"])  # y > 0
    if raw["lower"] < 0:  # a reported 0 (the atom of max(0, y)) is inside the floored interval
        assert floored["lower"] == 0.0
