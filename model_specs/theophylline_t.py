"""Theophylline with combined residual error and Student-t tails (nu = 4); otherwise ``theophylline_combined``.

Why it exists: with the combined-error spec the leave-future-out PIT histogram of ``make validate`` still has a
heavy upper tail and the 95 % intervals cover 0.906 (target 0.91-0.98): a few concentrations sit far above
their forecast. A Student-t residual keeps the bulk of the intervals where the Normal puts them but gives
the tails room. nu = 4 is fixed in advance at the usual robust choice (Lange, Little & Taylor 1989, JASA
84:881), not tuned on the calibration data; the calibration study reports this spec beside the others, so
the comparison is visible, and the choice of a heavy-tailed family was prompted by that same study (say so
when quoting its coverage).

Measured 2026-11-27 (same folds, seeds and sampler as ``make validate``; 96 held-out observations; 422 s on a
loaded 2-core machine): it does NOT help. Coverage 0.719 / 0.885 at 80 / 95 % (combined Normal: 0.750 / 0.906);
PIT histogram [7, 5, 10, 13, 16, 7, 3, 8, 7, 20]: the top bin still holds 20 of 96, so the later concentrations
sit above the forecasts (a bias of the forecast, not tails that are too light); and fold 1's population fit
FAILED its gate (R-hat 1.14 on tv_cl, 3802 divergences: with 8 training patients the t scale and the combined
error's two SDs are weakly identified). (These figures predate the fix of a leak in ``leave_future_out``'s
component weights, 2026-11-27: the held-out values took part in choosing each twin's residual SDs; see
``theophylline_combined``.) Kept as the record of that negative result and as an example of
``ErrorModel(nu=...)``; not used by ``make validate``.

Priors: as ``theophylline_combined`` (the SDs are now the t scales).
"""

from dataclasses import replace

from bayestwin.spec import ErrorModel, Prior, TwinSpec
from model_specs.theophylline_combined import spec as combined_spec


def spec() -> TwinSpec:
    """The theophylline population spec with combined Student-t(4) residual error."""
    return replace(
        combined_spec(),
        name="theophylline.one_cmt_oral.combined_t4",
        description=__doc__,
        error=(ErrorModel("combined", nu=4.0, priors=(("sigma_add", Prior.half_normal(1.0)),
                                                      ("sigma_prop", Prior.half_normal(0.3)))),),
    )
