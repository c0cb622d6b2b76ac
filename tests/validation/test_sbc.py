"""Simulation-based calibration: the rank statistics and tests, and a reduced real run with its power check.

The reduced run (one-compartment IV model, non-centred, so a DIAGONAL mass matrix by ``dense_mass_for``, 12
patients, 30 replications x 2 chains) is the default-suite subset of ``make validate``'s SBC (200 replications
per built-in model). Its power check fits with every prior scale divided by 3; with 30 replications that
misspecification must already fail (measured: p = 2.7e-10 at 40 replications, centred; 1.2e-11 at 30,
non-centred + dense, 2026-11-26: the good run passed with smallest p 0.056, 21 of 30 replications had
divergent transitions). With the diagonal matrix (2026-11-27, 105 s at load ~7): good run smallest p 0.22
(v[1]), divergences in 7 of 30 replications; broken run p 7.9e-12 (omega_v).
"""

from __future__ import annotations

import dataclasses

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayestwin.exceptions import SpecError
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.batch import batched_trace_count
from bayestwin.models import get_model
from bayestwin.spec import CovariateEffect, example_spec
from bayestwin.testing import default_spec, simulate_cohort
from bayestwin.validation import SBCResult, misspecified_prior, run_sbc
from bayestwin.validation.sbc import _max_rhat, _program_key


def _result(ranks: np.ndarray, n_draws: int) -> SBCResult:
    frame = pd.DataFrame(ranks, columns=[f"q{j}" for j in range(ranks.shape[1])])
    rep = pd.DataFrame({"max_rhat": np.ones(len(frame)), "divergences": 0, "mean_steps": 7.0})
    return SBCResult(model="m", spec="s", ranks=frame, n_draws=n_draws, replications=rep, alpha=0.01,
                     wall_s=0.0, settings={})


def test_uniform_ranks_pass_and_piled_up_ranks_fail() -> None:
    rng = np.random.default_rng(0)
    uniform = _result(rng.integers(0, 100, size=(400, 3)), n_draws=99)
    assert uniform.n_bins == 20
    assert uniform.ok
    middle = _result(np.clip(rng.normal(50, 12, size=(400, 3)).round().astype(int), 0, 99), n_draws=99)
    assert not middle.ok  # an over-dispersed posterior piles the ranks in the middle
    assert (middle.tests()["p_value"] < 1e-6).all()


def test_chi_square_matches_scipy_with_unequal_bins() -> None:
    from scipy import stats

    ranks = np.array([[0], [1], [2], [3], [4], [4], [5], [6], [6], [6]])
    res = _result(ranks, n_draws=6)  # 7 rank values into 2 bins: {0,1,2,3} and {4,5,6}
    assert res.n_bins == 2
    expected = np.array([4 / 7, 3 / 7]) * 10
    chi2, p = stats.chisquare([4, 6], expected)
    row = res.tests().loc["q0"]
    assert row["chi2"] == pytest.approx(chi2)
    assert row["p_value"] == pytest.approx(p)


def test_bonferroni_threshold_is_alpha_over_quantities() -> None:
    rng = np.random.default_rng(1)
    res = _result(rng.integers(0, 100, size=(200, 5)), n_draws=99)
    t = res.tests()
    assert ((t["p_value"] >= 0.01 / 5) == t["passed"]).all()


def test_ecdf_difference_is_zero_at_the_ends() -> None:
    rng = np.random.default_rng(2)
    d = _result(rng.integers(0, 100, size=(50, 2)), n_draws=99).ecdf_difference()
    assert d.loc[0, "q0"] == 0.0 and d.iloc[-1]["q0"] == 0.0
    assert (d["band"] >= 0).all()


def test_max_rhat_agrees_with_arviz() -> None:
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(2, 4, 200, 3))
    draws[1, 0] += 3.0  # one stuck chain in replication 1
    ours = _max_rhat(draws)
    for r in range(2):
        ref = max(float(az.rhat(draws[r, :, :, q], method="split")) for q in range(3))
        assert ours[r] == pytest.approx(ref, rel=1e-10)
    assert ours[1] > 1.5


def test_misspecified_prior_scales_every_prior_but_keeps_medians() -> None:
    spec = example_spec()
    bad = misspecified_prior(spec, 0.5)
    for p, q in zip(spec.parameters, bad.parameters, strict=True):
        assert q.typical.param("mu") == p.typical.param("mu")
        assert q.typical.param("sigma") == pytest.approx(p.typical.param("sigma") / 2)
        if p.has_bsv:
            assert q.bsv.param("sigma") == pytest.approx(p.bsv.param("sigma") / 2)
    before, after = spec.sigma_prior("sigma_add"), bad.sigma_prior("sigma_add")
    assert after.param("sigma") == pytest.approx(before.param("sigma") / 2)


def test_sbc_refuses_covariates() -> None:
    spec = example_spec()
    cl = dataclasses.replace(spec.parameter("cl"), covariates=(CovariateEffect("WT", reference=70.0, fixed=0.75),))
    with_cov = dataclasses.replace(spec, parameters=tuple(cl if p.name == "cl" else p for p in spec.parameters))
    with pytest.raises(SpecError, match="without covariate"):
        run_sbc(with_cov, n_replications=2)


@pytest.fixture(scope="module")
def iv_spec():
    return default_spec(get_model("pk.one_cmt_iv"))


@pytest.mark.slow
def test_reduced_sbc_passes_and_misspecified_prior_fails(iv_spec) -> None:
    settings = {"n_replications": 30, "n_patients": 12, "warmup": 300, "draws": 500, "thin": 10, "seed": 11}
    names = ["omega_cl", "omega_v", "sigma_prop", "tv_cl", "tv_v", "cl[1]", "v[1]"]
    key = _sbc_key(iv_spec, names, n_patients=12, seed=11)
    broken = misspecified_prior(iv_spec, 1 / 3)
    broken_key = _sbc_key(broken, names, n_patients=12, seed=11)
    before, broken_before = batched_trace_count(key), batched_trace_count(broken_key)
    good = run_sbc(iv_spec, **settings)
    print(good.format())
    assert list(good.ranks.columns) == names and good.ranks.shape == (30, 7)
    assert good.n_draws == 100
    assert good.ok, good.tests()
    # the compiled NUTS program is kept (run_batched_nuts cache_key): another run of the same fitting spec, with
    # other replications and seed, compiles nothing; the broken variant is another program
    traced = batched_trace_count(key)
    assert traced - before in (0, 1)  # 0 if another test in this process already compiled the same program
    again = run_sbc(iv_spec, **settings | {"n_replications": 2, "seed": 12})
    assert batched_trace_count(key) == traced
    assert again.ranks.shape == (2, 7) and np.isfinite(again.replications["max_rhat"]).all()
    bad = run_sbc(iv_spec, fit_spec=broken, **settings)
    print(bad.format())
    assert not bad.ok, bad.tests()
    assert batched_trace_count(broken_key) - broken_before in (0, 1) and batched_trace_count(key) == traced


def _sbc_key(fit_spec, names, *, n_patients: int, seed: int) -> tuple:
    """The cache key run_sbc gives run_batched_nuts for `fit_spec` on its design (default times, 100 mg)."""
    model = get_model(fit_spec.model)
    table, _ = simulate_cohort(fit_spec, n_patients=n_patients, seed=seed)
    return _program_key(fit_spec, model.name, cohort_arrays(table, fit_spec, model).features, names)
