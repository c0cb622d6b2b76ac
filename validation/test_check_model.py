"""``make validate``: every built-in model through every ``check_model`` check but ``sbc``, recovery included.

Recovery: 16 simulated patients (``simulate_cohort``), 4 chains x (500 + 500), dense mass matrix; the
gate must pass and at most ``binom.ppf(0.99, P, 0.05)`` typical values may miss their 95 % interval.
"""

from __future__ import annotations

import pytest

from bayestwin.models import model_names
from bayestwin.testing import ALL_CHECKS, check_model


@pytest.mark.parametrize("name", [n for n in model_names() if not n.startswith("test.")])
def test_every_check(name: str) -> None:
    # the "sbc" check's 30 replications are left to validation/run.py, which runs 200 per model
    report = check_model(name, checks=tuple(c for c in ALL_CHECKS if c != "sbc"))
    print(report.format())
    report.raise_if_failed()
