"""Theophylline with a combined (additive + proportional) residual error; otherwise ``theophylline.spec``.

Why it exists: forecast calibration (``make validate``, leave future out, twins conditioned on each patient's
first 3 samples, 3 folds) found the additive-error spec's intervals too narrow -- 95 % intervals covered 0.865 of
96 later observations and 80 % intervals 0.729. Residuals of a concentration series grow with the concentration;
an additive-only error understates the spread at the peak. With this spec, same folds and seeds: 0.906 and 0.750
(measured 2026-11-26), closer to the targets (0.91-0.98 and 0.75-0.85) but the 95 % intervals are still short.
Those figures had a leak (the held-out values took part in choosing each twin's residual SDs); without it,
2026-11-27: 0.729 / 0.865, the same as the additive spec had with the leak. Why the later concentrations sit
above the forecasts: ``validation/theo_calibration_diagnosis.md``. The additive spec stays the default because it
is the model of the nlmixr2 reference fit that the test suite compares against.

Priors: as ``theophylline.spec``; proportional SD HalfNormal(0.3) (a 30 % coefficient of variation is a
generous upper range for an assay plus model error).
"""

from dataclasses import replace

from bayestwin.spec import ErrorModel, Prior, TwinSpec
from model_specs.theophylline import spec as additive_spec


def spec() -> TwinSpec:
    """The theophylline population spec with combined residual error."""
    return replace(
        additive_spec(),
        name="theophylline.one_cmt_oral.combined",
        description=__doc__,
        error=(ErrorModel("combined", priors=(("sigma_add", Prior.half_normal(1.0)),
                                              ("sigma_prop", Prior.half_normal(0.3)))),),
    )
