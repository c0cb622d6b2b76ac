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
Why each matrix suits its parametrisation: ``bayestwin.testing.centring`` (``dense_mass_for``). The gate is unchanged.
Still failing: cardio.windkessel_emax. Its slow quantities are TYPICAL values of data-rich parameters (r0, cl,
v: 3 pressures + a concentration at 8 times per patient, BSV SD posteriors well away from 0), non-centred;
its weakly informed ones (ka, emax, ec50: BSV SD 5 % quantiles 0.012-0.022) need non-centring. REC tried
(seed 0, monkeypatched) centred offsets and latent centring of cl, v, r0, compliance: divergences either way
(10-12), omega_ka moved in the latent-centred run (its script, not the library). 2026-11-27 (helper WK), in
the library: ``TwinSpec.centered=(names...)`` samples those parameters' latent values ``z ~ N(TV, omega)``
(no TV ridge), and ``bayestwin.testing.centring`` measures each parameter's information on this design:
kappa (share of the BSV prior variance the data leave, at the typical patient) ka 0.31, cl 0.038, v 0.084,
r0 0.039, compliance 0.23, emax 0.84, ec50 0.99. Rule kappa < 1/2 (ka, cl, v, r0, compliance centred):
omega_ka R-hat 1.010, ESS 279, 18 divergences. Rule kappa < 1/5 (cl, v, r0): every R-hat <= 1.00, tv_r0 ESS
1941 (non-centred 493), smallest ESS 804 -- the slow typical value is cured -- but 8 divergent transitions,
all at the upper tail of omega_emax (0.38-0.60, median 0.12; a patient's emax effect 0.8-1.35); 8 again at
target acceptance 0.95, 12 with a dense matrix. Not cured by smaller steps: a region of the weakly informed
Emax random effects that the non-centred fit (0 divergences, seed 0) crossed without diverging. Suspected,
not measured: each patient's emax and ec50 form a ridge (the data inform the effect, not both). So the
harness still fits each spec as given and windkessel still fails the unchanged gate. Next: the effect's
parametrisation in the model (e.g. emax with the slope emax / ec50, both identified at low concentration)
or a design that reaches concentrations >> ec50 (the model's metadata); then per-parameter centring by
kappa for every model, and rerun the 16. SBC: ``run_sbc`` now takes the same mass rule (diagonal for a
non-centred spec). Windkessel, 8 replications of the SBC design (seed 0, load ~5): dense 202 s, 254 leapfrog
steps per iteration, divergences in 8 of 8, worst R-hat 1.23; diagonal 117 s, 151 steps, 2 of 8, 1.09. Its
full 200 + 60 run (``validation/run.py --only sbc``) did not finish in an 11-min limit: not rerun.
Reparametrisation of the drug effect (2026-11-27, helper WK2; slope s = emax / ec50 with ec50, a throw-away model
registered in a /tmp script, not in the library): NOT a cure, not adopted. On this design the trade-off it
targets is absent: concentrations reach 0.5-3.8 mg/L against ec50 = 2, and the design's Fisher information
gives a posterior correlation of (log emax, log ec50) of 0.03 for one typical patient and 0.30 for the typical
values of 16, against -0.14 and -0.93 for (log s, log ec50). Recovery fits (cl, v, r0 centred by kappa, diagonal,
4 x (1000 + 1000), load 11-19): seed 0 emax 8 divergences (above), slope 2; seed 1 emax 5, slope 30; posterior
correlation of log tv_ec50 with log tv_emax -0.21, with log tv_slope -0.86 (seed 1). Both parametrisations
diverge in the upper tail of the effect's BSV SD (seed 1 slope: divergent omega_slope median 0.44, posterior
median 0.27): at omega 0.2 the data leave kappa 0.84 of the emax random effect (weakly informed: non-centre),
at omega 0.5 and a patient emax of 1.5 only 0.19 (informed: centre), and kappa(omega) = 1 / (1 + F omega^2) has
nearly the same F for emax and s (4.8 vs 4.3), so renaming the effect leaves this funnel in place. No model
declares another parametrisation. A design reaching >> ec50 is no cure either: at 400 mg (peak ~15 mg/L, ~7.7
ec50; seed 0, cl, v, r0 centred) kappa of emax RISES to 0.875, and the fit got 33 divergences (omega_emax upper
tail again), tv_emax R-hat 1.02 and bulk ESS 295, typical-value correlation -0.69. Remaining candidate: a BSV
prior on the Emax effects that keeps omega below ~0.3 where the data cannot inform it (a modelling choice of the
default spec, to be argued, not a gate change).
Gradient check (every case): now also at the simulated truth, with the rounding floor printed (the exact 0.0
of stein/windkessel was errors below 100x the floor; tests/testing/test_check_model.py).
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
