"""Twin-level SBC: the prior draws, the ranks with ties, and a reduced real run with its power check.

The reduced run is the default-suite subset of ``validation/run.py --twin`` (200 replications per model, every
ODE model): the closed-form one-compartment oral model on a therapeutic-drug-monitoring design (one 100 mg dose,
3 samples), 48 replications (6 lockstep groups; the good and broken runs share one compiled program), one chain,
starts at the jittered mixture centre (``init="prior"``: compiles faster). Its power check fits the same design
with every BSV SD of the population divided by 3; on this sparse design the twin's prior matters. Measured
2026-11-27 (two runs, different process histories): good smallest p 0.098 and 0.053 (threshold 0.0025); broken
2.4e-6 and 2e-5. At 30 replications the broken run gave p 0.0027: too close to the threshold, hence 48.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayestwin.exceptions import SpecError
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.individual import mixture_scaling, population_prior
from bayestwin.models import get_model
from bayestwin.spec import add_covariate_effect, example_spec
from bayestwin.testing import default_spec
from bayestwin.validation.twin_sbc import _ranks, _simulate, run_twin_sbc, scale_bsv, synthetic_population, twin_design

TDM = {"doses": ((0.0, 100.0, None),), "times": (1.0, 4.0, 12.0)}
REDUCED = {"chains": 1, "warmup": 200, "draws": 200, "thin": 2, "init": "prior", **TDM}  # "prior": compiles faster


@pytest.fixture(scope="module")
def oral() -> tuple:
    spec = default_spec(get_model("pk.one_cmt_oral"))
    return spec, synthetic_population(spec, n_components=50, seed=3)


def test_ranks_break_ties_uniformly() -> None:
    rng = np.random.default_rng(0)
    draws = np.zeros((20000, 4))  # every draw equals the truth: the rank must be uniform on 0..4
    ranks = _ranks(np.zeros(20000), draws, rng)
    counts = np.bincount(ranks, minlength=5)
    assert counts.sum() == 20000 and len(counts) == 5
    assert np.all(np.abs(counts - 4000) < 4 * np.sqrt(20000 * 0.2 * 0.8))  # 4 binomial SDs
    assert _ranks(np.array([1.5]), np.array([[1.0, 2.0, 1.4]]), rng).tolist() == [2]


def test_simulated_patients_follow_the_twin_prior(oral: tuple) -> None:
    """The simulated latent parameters have the mixture's mean and SD (within 4 Monte Carlo SEs)."""
    spec, pop = oral
    model = get_model(spec.model)
    arrays = cohort_arrays(twin_design(spec, **TDM), spec, model)
    prior = population_prior(spec, pop, {})
    comp, u, values = _simulate(spec, model, arrays, prior, 4000, seed=5)
    center, scale = mixture_scaling(prior)
    se = scale / np.sqrt(len(u))
    assert np.all(np.abs(u.mean(axis=0) - center) < 4 * se)
    assert np.all(np.abs(u.std(axis=0) / scale - 1) < 4 / np.sqrt(2 * len(u)))
    mask = np.asarray(arrays.obs.mask)[0]
    assert mask.sum() == 3 and values.shape == (4000, mask.size) and np.isfinite(values[:, mask]).all()
    assert set(np.unique(comp)) <= set(range(50)) and len(np.unique(comp)) > 40


def test_synthetic_population_and_broken_variant(oral: tuple) -> None:
    _spec, pop = oral
    assert set(pop) == {"tv_ka", "tv_cl", "tv_v", "omega_ka", "omega_cl", "omega_v", "sigma_prop"}
    # HalfNormal(0.3) median 0.202, jittered by exp(0.05 z): the draws' median within ~4 SE of it
    assert abs(np.median(pop["omega_cl"]) - 0.3 * 0.6745) < 0.015
    broken = scale_bsv(pop, 1 / 3)
    np.testing.assert_allclose(broken["omega_v"], pop["omega_v"] / 3)
    np.testing.assert_array_equal(broken["tv_v"], pop["tv_v"])
    with pytest.raises(SpecError, match="covariate"):
        synthetic_population(add_covariate_effect(example_spec(), "cl", "WT", reference=70.0, unit="kg"))


def test_reduced_twin_sbc_passes_and_broken_prior_fails(oral: tuple) -> None:
    spec, pop = oral
    good = run_twin_sbc(spec, pop, n_replications=48, **REDUCED)
    print(good.format())
    assert list(good.ranks.columns) == ["ka", "cl", "v", "sigma_prop"]
    assert good.n_draws == 100 and good.ranks.to_numpy().max() <= 100
    assert good.ok, good.format()
    bad = run_twin_sbc(spec, pop, fit_population=scale_bsv(pop, 1 / 3), n_replications=48, seed=1,
                       **REDUCED)
    print(bad.format())
    assert not bad.ok, bad.format()
