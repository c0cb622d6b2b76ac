"""Glucose after a standardized breakfast (``metabolic.bergman_meal``): one person's twin from CGM readings.

Bergman's minimal model with a two-compartment gut (see ``bayestwin.models.metabolic``), fitted to continuous
glucose monitoring (Dexcom G4, every 5 min) around breakfasts, for an adult with type 2 diabetes or prediabetes who
is not on insulin (the bundled ``cgm_hall2018`` data: Hall et al., PLoS Biol 16:e2005143, 2018).

Priors are from the literature, not from these data (three people are too few to learn a population):

* ``gb`` basal (pre-breakfast) glucose: log-normal, median 115 mg/dL, 95 % 70-190.
* ``sg`` glucose effectiveness: median 0.015/min (Bergman's minimal-model values, ~0.025 in healthy people and
  lower in type 2 diabetes), log-SD 0.5.
* ``si`` insulin sensitivity: median 2e-4 /min per mIU/L (healthy 5-8e-4, type 2 diabetes 0.5-2e-4), log-SD 0.7.
* ``p2`` insulin-action rate: median 0.02/min, log-SD 0.5.
* ``kabs`` gut absorption rate: median 0.025/min (meal appearance peaks at 40 min; Hovorka et al. 2004), log-SD 0.4.
* ``f``: the **relative meal size**. The data give the food of each breakfast (cereal flakes, peanut-butter
  sandwich, protein bar), not its carbohydrate, so every breakfast is a dose of a nominal 50 g and ``50 f`` g is
  the glucose that appears in plasma: median 0.8 (40 g), log-SD 0.5 (95 % 15-107 g). One ``f`` per person for
  every breakfast: the meals' different compositions are NOT modelled (their glucose responses differ).
* Fixed at the model's defaults: glucose volume 130 dL, basal insulin 10 mIU/L, insulin clearance 0.14/min,
  secretion ``gamma`` 0.05 mIU/L/min per mg/dL (insulin is not measured, so ``si`` and ``gamma`` act only through
  their product; fixing ``gamma`` makes ``si`` an *effective* sensitivity).
* Error: additive, SD ~ HalfNormal(15 mg/dL): sensor error (Dexcom G4, MARD ~ 13 %) plus what the model misses.

No between-subject variability: each person is fitted alone (a per-person twin with literature priors).
"""

from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The per-person breakfast-glucose spec."""
    ln = Prior.lognormal
    return TwinSpec(
        name="glucose_minimal_breakfast", model="metabolic.bergman_meal", description=__doc__,
        parameters=(
            Parameter("gb", unit="mg/dL", typical=ln(median=115.0, sigma=0.25)),
            Parameter("sg", unit="1/min", typical=ln(median=0.015, sigma=0.5)),
            Parameter("si", unit="L/mIU/min", typical=ln(median=2e-4, sigma=0.7)),
            Parameter("p2", unit="1/min", typical=ln(median=0.02, sigma=0.5)),
            Parameter("kabs", unit="1/min", typical=ln(median=0.025, sigma=0.4)),
            Parameter("f", unit="dimensionless", typical=ln(median=0.8, sigma=0.5)),
        ),
        error=(ErrorModel("additive", output="glucose", priors=(("sigma_add", Prior.half_normal(15.0)),)),),
        units=(("time", "min"), ("amt", "g"), ("glucose", "mg/dL"), ("insulin", "mIU/L")),
    )


def insulin_spec() -> TwinSpec:
    """A person with type 1 diabetes on insulin: no glucose-driven secretion, meals of known size.

    ``gamma`` is fixed at 0 (no endogenous secretion; basal insulin holds the basal state), ``f`` at 0.9 (Dalla Man
    et al. 2007: meals are recorded in grams of carbohydrate). Priors as in ``spec()``, except the basal glucose
    (median 140 mg/dL: people with type 1 diabetes run higher) and insulin sensitivity (median 4e-4 /min per mIU/L,
    log-SD 0.7). Insulin doses are records into compartment 3 (``insulin_depot``) in IU.
    """
    ln = Prior.lognormal
    return TwinSpec(
        name="glucose_minimal_insulin", model="metabolic.bergman_meal", description=insulin_spec.__doc__,
        parameters=(
            Parameter("gb", unit="mg/dL", typical=ln(median=140.0, sigma=0.3)),
            Parameter("sg", unit="1/min", typical=ln(median=0.015, sigma=0.5)),
            Parameter("si", unit="L/mIU/min", typical=ln(median=4e-4, sigma=0.7)),
            Parameter("p2", unit="1/min", typical=ln(median=0.02, sigma=0.5)),
            Parameter("kabs", unit="1/min", typical=ln(median=0.025, sigma=0.4)),
            Parameter("f", unit="dimensionless", fixed=0.9),
            Parameter("gamma", unit="mIU*dL/L/min/mg", fixed=0.0, scale="identity"),
        ),
        error=(ErrorModel("additive", output="glucose", priors=(("sigma_add", Prior.half_normal(15.0)),)),),
        units=(("time", "min"), ("amt", "g"), ("glucose", "mg/dL"), ("insulin", "mIU/L")),
    )
