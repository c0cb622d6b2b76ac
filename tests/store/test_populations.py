"""Population versions in the store, with plain values (no fits): lineage, pseudonyms, audit, append-only rows.

Real population fits, ``PopulationFit.from_store`` and twins conditioned on stored populations:
tests/twin/test_population_versions.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pytest
import xarray as xr
from storekit import assert_idata_identical

from bayestwin.exceptions import StoreError
from bayestwin.store import TwinStore
from bayestwin.store.populations import commit_population_version, load_population, population_history

V1, V2 = "pop-00000000000000a1", "pop-00000000000000b2"


def _posterior(seed: int, patients: list[str]) -> az.InferenceData:
    rng = np.random.default_rng(seed)
    post = xr.Dataset({"tv_cl": (("chain", "draw"), rng.lognormal(size=(2, 30))),
                       "cl": (("chain", "draw", "patient"), rng.lognormal(size=(2, 30, len(patients))))},
                      coords={"chain": [0, 1], "draw": np.arange(30), "patient": patients},
                      attrs={"fit_id": f"fit-{seed}"})
    post["tv_cl"].attrs["unit"] = "L/h"
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 30), bool))},
                       coords={"chain": [0, 1], "draw": np.arange(30)})
    return az.InferenceData(posterior=post, sample_stats=stats)


def _commit(store: TwinStore, version: str, parent: str | None, posterior: az.InferenceData) -> str:
    fields: dict[str, Any] = {"name": "demo", "spec": {"name": "demo", "model": "pk.x"}, "spec_hash": "sha256:s",
                              "data_hash": f"sha256:{version}", "diagnostics": {"report": {"ok": True}, "gate": {}},
                              "fit": {"fit_id": "fit-1", "notes": []}}
    return commit_population_version(store, version=version, parent=parent, posterior=posterior, **fields)


def test_lineage_history_and_exact_round_trip(store: TwinStore) -> None:
    assert population_history(store).empty
    first, second = _posterior(1, ["1", "2"]), _posterior(2, ["1", "2", "3"])
    assert _commit(store, V1, None, first) == V1
    assert _commit(store, V2, V1, second) == V2
    history = store.population_history()
    assert history["version"].tolist() == [V1, V2] and history["parent"].tolist() == [None, V1]
    assert history["n_patients"].tolist() == [2, 3] and history["ok"].tolist() == [True, True]
    assert history["n_twin_versions"].tolist() == [0, 0] and (history["posterior_bytes"] > 0).all()
    loaded = store.load_population(V1)
    assert (loaded.version, loaded.parent, loaded.spec, loaded.fit["fit_id"]) == (V1, None, {"name": "demo",
                                                                                           "model": "pk.x"}, "fit-1")
    assert loaded.posterior.posterior["patient"].values.tolist() == [store.pseudonym(p) for p in ("1", "2")]
    expected = first.copy()
    expected.posterior = expected.posterior.assign_coords(patient=[store.pseudonym(p) for p in ("1", "2")])
    assert_idata_identical(expected, loaded.posterior)
    assert load_population(store).version == V2  # default: the latest
    last = store.audit.records()[-1]
    assert (last.action, last.subject, last.inputs["parent"], last.output_hash) == (
        "commit_population", None, V1, history["posterior_hash"].iloc[1])
    assert store.check_integrity().ok


def test_recommit_writes_nothing_and_twins_are_counted(store: TwinStore) -> None:
    _commit(store, V1, None, _posterior(1, ["1"]))
    n_audit = len(store.audit.records())
    assert _commit(store, V1, None, _posterior(1, ["1"])) == V1
    assert len(store.audit.records()) == n_audit and len(store.population_history()) == 1
    store.commit_version("1", posterior=_posterior(5, ["x"]), data_hash="d", spec_hash="s", population_version=V1,
                         diagnostics={}, expected_parent=None)
    assert store.population_history()["n_twin_versions"].tolist() == [1]


def test_refusals_say_what_to_do(store: TwinStore) -> None:
    with pytest.raises(StoreError, match=r"which is not in .*commit the parent first"):
        _commit(store, V2, V1, _posterior(2, ["1"]))
    with pytest.raises(StoreError, match=r"is not a valid version: versions are 'pop-'"):
        _commit(store, "fit-1", None, _posterior(2, ["1"]))
    with pytest.raises(StoreError, match=r"differ from their parent"):
        _commit(store, V1, V1, _posterior(2, ["1"]))
    leaky = _posterior(3, ["MRN-7"])
    leaky.posterior.attrs["note"] = "MRN-7"
    with pytest.raises(StoreError, match=r"identifier appears in the posterior of population .* posterior.attrs.note"):
        _commit(store, V1, None, leaky)
    with pytest.raises(StoreError, match=r"no population pop-0123456789abcdef in .*stored versions: none"):
        store.load_population("pop-0123456789abcdef")
    assert population_history(store).empty and store.check_integrity().ok


def test_rows_are_append_only(store: TwinStore) -> None:
    _commit(store, V1, None, _posterior(1, ["1"]))
    for statement in ("UPDATE populations SET parent = NULL", "DELETE FROM populations"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store._conn.execute(statement)


def test_encrypted_store_encrypts_populations(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    with TwinStore.open(tmp_path / "enc", encryption_key="an encryption secret, not the pseudonym key, 0123") as enc:
        posterior = _posterior(1, ["1", "2"])
        _commit(enc, V1, None, posterior)
        files = list((enc.path / "objects").iterdir())
        assert len(files) == 1 and files[0].name.endswith(".nc.enc")
        draws = enc.load_population(V1).posterior.posterior["tv_cl"].to_numpy()
        assert draws.tobytes() == posterior.posterior["tv_cl"].to_numpy().tobytes()
