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
passed; the rule above (dense for centred) passes longitudinal.level too: 15 of the 16 closed-form models.
Why each matrix suits its parametrisation: ``bayestwin.testing.harness``. The gate is unchanged.
Still failing: cardio.windkessel_emax. Its slow quantities are TYPICAL values of data-rich parameters (r0, cl,
v: 3 pressures + a concentration at 8 times per patient, BSV SD posteriors well away from 0), non-centred;
its weakly informed ones (ka, emax, ec50: BSV SD 5 % quantiles 0.012-0.022) need non-centring. Tried
(seed 0, monkeypatched, not in the library): cl, v, r0, compliance centred and the rest non-centred, with a
diagonal mass matrix: tv_r0 R-hat 1.022, ESS 320 (worse: the centred offsets eta_i are tied linearly to the
typical value); with a dense one: typical values fine (tv_r0 out of the worst 6), but 10 divergences, at
omega_emax 0.16-0.54 (posterior mean 0.14, the upper tail of a weakly informed BSV SD). Also tried: those 4
centred by sampling each patient's latent value itself (theta_i ~ N(TV, omega), not TV + eta_i), diagonal:
every typical value mixed (worst R-hat 1.007, min ESS 885) but 12 divergences, and omega_ka moved to 0.31
(90 % 0.22-0.42) from 0.13 (0.02-0.24) in every other run -- the same script written non-centred reproduced
0.13, so the latent-centred chains sat elsewhere (a flip-flop mode? not checked). Next: compare the log
density of the two regions; then per-parameter latent centring in TwinSpec / inference/population.py.
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
