"""Forecast times are checked before anything is predicted: a NaN or infinite time is an error naming it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bayestwin.exceptions import InputError
from bayestwin.forecast import forecast_times


@given(times=arrays(float, st.integers(1, 30), elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_accepts_finite_times_and_names_every_other_position(times: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(times))
    if bad.size == 0:
        assert np.array_equal(forecast_times(times.tolist()), times)
    else:
        with pytest.raises(InputError, match=r"not at positions \[" + ", ".join(map(str, bad[:10])) + r"\]"):
            forecast_times(times)


@pytest.mark.parametrize(("times", "message"), [
    ([], "non-empty 1-d"), ([[1.0, 2.0]], "non-empty 1-d"), (3.0, "non-empty 1-d"), (["a"], "must be numbers"),
    ([1.0, None], "finite numbers"),
])
def test_other_bad_times(times: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        forecast_times(times)
