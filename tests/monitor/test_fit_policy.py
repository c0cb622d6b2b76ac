"""The declared fit policy: one refit of a failing fit, a loud report and an invalid cohort if it still fails."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

from bayestwin.exceptions import ConvergenceWarning
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.monitor.fit_policy import FitPolicy, fit_cohort


class FakeFits:
    """A fit function that records its calls; `passes(signal, sampler)` decides each fit's gate."""

    def __init__(self, passes):
        self.passes, self.calls = passes, []

    def __call__(self, frame, signal, *, sampler, gate=None):
        self.calls.append((signal, sampler.warmup, sampler.draws))
        ok = self.passes(signal, sampler)
        diag = SimpleNamespace(max_rhat=1.003 if ok else 1.016, min_ess=900.0 if ok else 354.0, divergences=0)
        return SimpleNamespace(ok=ok, diagnostics=diag, wall_time_s=float(sampler.draws), sampler=sampler)


def _run(fake, signals=("heart_rate", "resp_rate", "spo2"), policy=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = fit_cohort(None, list(signals), policy or FitPolicy(), fit_fn=fake)
    return fits, [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_passing_fits_are_not_refitted():
    fake = FakeFits(lambda s, c: True)
    fits, caught = _run(fake)
    assert fits.valid and fits.refitted == () and not caught
    assert fake.calls == [(s, 500, 750) for s in ("heart_rate", "resp_rate", "spo2")]


def test_a_failing_fit_is_refitted_once_with_longer_chains_and_the_refit_is_used():
    fake = FakeFits(lambda s, c: s != "resp_rate" or c.draws >= 1500)
    fits, caught = _run(fake)
    assert fits.valid and fits.refitted == ("resp_rate",) and not caught
    assert fake.calls == [("heart_rate", 500, 750), ("resp_rate", 500, 750), ("resp_rate", 1000, 1500),
                          ("spo2", 500, 750)]
    assert fits.fits["resp_rate"].sampler.draws == 1500  # the evaluation gets the passing refit
    table = fits.table()
    assert table[table["signal"] == "resp_rate"]["gate"].tolist() == ["FAILED", "OK"]
    assert table["attempt"].max() == 2


def test_still_failing_after_the_refit_marks_the_cohort_not_valid_loudly():
    fake = FakeFits(lambda s, c: s != "spo2")
    fits, caught = _run(fake)
    assert not fits.valid and fits.failed == ("spo2",)
    assert [c for c in fake.calls if c[0] == "spo2"] == [("spo2", 500, 750), ("spo2", 1000, 1500)]  # once only
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'spo2'" in message and "NOT VALID" in message and "1.016" in message


def test_no_retry_policy_fails_at_once():
    fake = FakeFits(lambda s, c: False)
    policy = FitPolicy(first=SamplerConfig(chains=2, warmup=10, draws=10), retry=None)
    fits, caught = _run(fake, ("weight",), policy)
    assert not fits.valid and fake.calls == [("weight", 10, 10)] and len(caught) == 1


def test_progress_callback_sees_every_attempt():
    seen = []
    fake = FakeFits(lambda s, c: c.draws >= 1500)
    fit_cohort(None, ["sbp"], FitPolicy(), fit_fn=fake, on_attempt=seen.append)
    assert [(a.signal, a.attempt, a.ok) for a in seen] == [("sbp", 1, False), ("sbp", 2, True)]


def test_describe_names_both_settings():
    assert FitPolicy().describe().startswith("4 x 500 + 750;") and "4 x 1000 + 1500" in FitPolicy().describe()
    assert FitPolicy(retry=None).describe() == "4 x 500 + 750; no refit"
