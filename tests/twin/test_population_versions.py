"""Population learning on theophylline: refit on a grown cohort, store round trip, twins that record and change
the population version they are conditioned on, and the old-vs-new comparison report.

Small fits (4 chains x 200 warm-up + 250 draws, started from the prior) under a relaxed gate (R-hat 1.1, ESS 80):
these tests check versioning, storage and provenance, not estimates (tests/twin/test_theophylline_twin.py does those
at full size). Compilation dominates. Measured 2026-11-26 on 2 cores shared with another job (load ~3.5): two
population fits ~25 s each, the twin fit ~16 s, the warm rebase ~21 s (it compiles the warm-start program once).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from bayestwin.diagnostics import ConvergenceGate
from bayestwin.exceptions import NotFittedError, PopulationMismatchError, StoreError
from bayestwin.inference import (
    PopulationFit,
    SamplerConfig,
    compare_populations,
    fit_population,
    format_comparison,
    population_version,
)
from bayestwin.inference.fit import population_quantities
from bayestwin.spec import Prior, set_prior
from bayestwin.store import TwinStore
from bayestwin.twin import Twin

GATE = ConvergenceGate(max_rhat=1.1, min_ess_bulk=80, min_ess_tail=80)
POP_SAMPLER = SamplerConfig(chains=4, warmup=200, draws=250, seed=1, init="prior")
TWIN_SAMPLER = SamplerConfig(chains=4, warmup=200, draws=250, seed=1, init="prior")
KEY = "a test key of at least thirty-two bytes"


@pytest.fixture(scope="module")
def old(spec, theo) -> PopulationFit:
    first_eight = theo.exclude(theo.frame["id"].isin(theo.patients[8:]).to_numpy(), reason="enrolled later")
    return fit_population(spec, first_eight, sampler=POP_SAMPLER, gate=GATE)


@pytest.fixture(scope="module")
def new(old, theo) -> PopulationFit:
    return old.refit(theo, seed=2)


@pytest.fixture(scope="module")
def store(tmp_path_factory, old, new):
    with TwinStore.open(tmp_path_factory.mktemp("pop") / "store", key=KEY, actor="tester") as s:
        assert s.commit_population(old) == old.version
        assert s.commit_population(new) == new.version
        yield s


@pytest.fixture(scope="module")
def twin(spec, old, first_three) -> Twin:
    return Twin(spec, population=old, sampler=TWIN_SAMPLER, gate=GATE).fit(first_three)


def test_refit_on_a_grown_cohort_is_a_child_version(old, new, theo) -> None:
    assert old.ok and new.ok, (old.diagnostics.format(), new.diagnostics.format())
    assert re.fullmatch(r"pop-[0-9a-f]{16}", old.version) and re.fullmatch(r"pop-[0-9a-f]{16}", new.version)
    assert (old.parent, new.parent) == (None, old.version) and new.version != old.version
    assert (old.n_patients, new.n_patients) == (8, 12) and new.data_digest == theo.digest()
    assert new.sampler == dataclasses.replace(POP_SAMPLER, seed=2) and new.diagnostics.gate == GATE
    assert new.version == population_version(new.spec.digest(), new.data_digest, old.version, new.idata.posterior)
    assert dataclasses.replace(new).version == new.version  # same content, same lineage: same version
    assert new.version in repr(new)
    with pytest.raises(TypeError, match=r"unknown sampler settings \['sed'\]; SamplerConfig has"):
        old.refit(theo, sed=2)


def test_store_round_trip_is_exact(store, old, new) -> None:
    history = store.population_history()
    assert history["version"].tolist() == [old.version, new.version]
    assert history["parent"].tolist() == [None, old.version] and history["n_patients"].tolist() == [8, 12]
    assert store.commit_population(new) == new.version and len(store.population_history()) == 2
    loaded = PopulationFit.from_store(store, new.version)
    assert (loaded.version, loaded.parent, loaded.spec, loaded.data_digest) == (new.version, old.version, new.spec,
                                                                                new.data_digest)
    assert loaded.sampler == new.sampler and loaded.fit_id == new.fit_id and loaded.arrays is None
    for name, values in new.idata.posterior.data_vars.items():
        got = loaded.idata.posterior[name]
        assert got.dtype == values.dtype and got.to_numpy().tobytes() == values.to_numpy().tobytes(), name
    patients = new.idata.posterior["patient"].values
    assert loaded.idata.posterior["patient"].values.tolist() == [store.pseudonym(p) for p in patients]
    assert loaded.diagnostics.ok == new.ok and loaded.diagnostics.table.equals(new.diagnostics.table)
    assert PopulationFit.from_store(store).version == new.version  # the latest by default
    assert store.check_integrity().ok


def test_loaded_population_refuses_altered_rows(store, new, monkeypatch) -> None:
    stored = store.load_population(new.version)
    monkeypatch.setattr(store, "load_population", lambda v=None, **_: dataclasses.replace(stored, parent=None))
    with pytest.raises(StoreError, match=r"loads as pop-.*differ from what was committed"):
        PopulationFit.from_store(store, new.version)


def test_twins_record_and_rebase_their_population(store, twin, old, new, spec) -> None:
    assert twin.population_version_ == old.version
    assert store.commit_twin(twin, expected_parent=None) == 1
    rebased = twin.rebase(PopulationFit.from_store(store, new.version))
    assert rebased is not twin and twin.population_version_ == old.version  # the old twin is kept as it was
    assert (rebased.rebased_from_, rebased.population_version_) == (old.version, new.version)
    assert rebased.rebase_mode_ == "warm" and rebased.diagnostics_.ok, rebased.rebase_mode_
    assert rebased.events_ is twin.events_ and rebased.patient_id_ == twin.patient_id_
    for name in spec.parameter_names:
        assert not np.array_equal(rebased.idata_.posterior[name], twin.idata_.posterior[name]), name
    assert store.commit_twin(rebased, expected_parent=1) == 2
    assert store.history(twin.patient_id_)["population_version"].tolist() == [old.version, new.version]
    assert store.population_history()["n_twin_versions"].tolist() == [1, 1]
    provenance = rebased.forecast([1.0, 6.0]).metadata["provenance"]
    assert (provenance["population_version"], provenance["rebased_from"]) == (new.version, old.version)


def test_rebase_refuses_another_spec_and_an_unfitted_twin(twin, new, spec) -> None:
    other = set_prior(spec, "v", Prior.lognormal(median=20.0, sigma=0.5))
    with pytest.raises(PopulationMismatchError, match=r"cannot rebase the twin of patient 12 onto population pop-"):
        twin.rebase(dataclasses.replace(new, spec=other))
    with pytest.raises(NotFittedError, match=r"call twin.fit\(events\) before .rebase\(\)"):
        Twin(spec, population=new).rebase(new)


def test_comparison_report(old, new, spec) -> None:
    table = compare_populations(old, new)
    assert table.index.tolist() == population_quantities(spec)
    assert table.loc["tv_cl", "unit"] == "L/h" and table.loc["omega_cl", "unit"] == "log-scale SD"
    assert table.attrs["old_version"] == old.version and table.attrs["new_parent"] == old.version
    assert (table.attrs["old_patients"], table.attrs["new_patients"]) == (8, 12)
    assert "[old posterior SDs]" in table.attrs["columns"]["shift_old_sd"]
    numbers = table.drop(columns="unit")
    assert np.isfinite(numbers.to_numpy(dtype=float)).all()
    assert (table["old_lower"] < table["old_mean"]).all() and (table["new_mean"] < table["new_upper"]).all()
    # the same subjects plus four more: omega_ka moves most (+2.0 old SDs at 4 x 1000 draws, docs/populations.md)
    assert (table["shift_old_sd"].abs() < 4).all(), table["shift_old_sd"]
    assert (table[["old_r_hat", "new_r_hat"]] < GATE.max_rhat).all().all()
    same = compare_populations(old, old)
    assert (same["shift_old_sd"] == 0).all() and (same["width_ratio"] == 1).all()
    text = format_comparison(table)
    assert text.splitlines()[0].startswith(f"Population {old.version} (8 patients) -> {new.version} (12 patients")
    assert all(f"| {name} |" in text for name in table.index)
    with pytest.raises(ValueError, match=r"prob must be in \(0, 1\)"):
        compare_populations(old, new, prob=95)
