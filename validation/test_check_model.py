"""``make validate``: every built-in model through every ``check_model`` check but ``sbc``, recovery included.

Recovery: 16 simulated patients (``simulate_cohort``), ``check_model``'s own sampler
``RECOVERY_SAMPLER``: 4 chains x (1000 + 1000), a DIAGONAL mass matrix for a non-centred spec, a DENSE one for
a centred spec (the identity-scale longitudinal.level, longitudinal.linear, renal.egfr_linear); the gate
(R-hat < 1.01, bulk and tail ESS >= 400, no divergences) must pass and at most ``binom.ppf(0.99, P, 0.05)``
typical values may miss their 95 % interval. History (2026-11-27): with a DENSE mass matrix for every spec, at
4 x (500 + 500) and again at 4 x (1000 + 1000), 8 closed-form models (all non-centred) failed the gate on a
BSV SD (their typical values passed: at most the allowed number outside their intervals) --
oncology.claret_tgi (R-hat 1.015, ESS 291, 3 divergences), oncology.stein (R-hat 1.014), cardio.stenosis_ffr
(ESS 387, 1 divergence), pk.two_cmt_oral (R-hat 1.011, ESS 316), pd.one_cmt_oral_emax (ESS 354),
pd.one_cmt_oral_ke0_emax (ESS 386), pd.one_cmt_oral_sigmoid_emax (ESS 290, 5 divergences),
cardio.windkessel_emax (13 divergences). With a diagonal matrix for every spec, all 16 but
cardio.windkessel_emax (tv_r0 R-hat 1.011, bulk ESS 493) and the centred longitudinal.level (tv_level ESS 217)
passed. Why each matrix suits its parametrisation: ``bayestwin.testing.harness``. The gate is unchanged.
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
