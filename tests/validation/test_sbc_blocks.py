"""validation/sbc_blocks.py: stored blocks of an SBC are counted, combined only when complete, into a report fragment.

Synthetic blocks (uniform ranks for the model's SBC, ranks piled at 0 for its broken variant) stand in for real
fits, which take hours for the ODE models this script is for; ``run_sbc(replication_ids=...)`` itself is tested
in ``test_sbc_parts.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayestwin.validation import SBCResult, sbc_to_dict

SCRIPT = Path(__file__).resolve().parents[2] / "validation" / "sbc_blocks.py"
MODEL = "pd.one_cmt_oral_idr1"


@pytest.fixture(scope="module")
def blocks():
    spec = importlib.util.spec_from_file_location("sbc_blocks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts validation/ on sys.path (its `run` import)
    return module


def _block(ids: list[int], *, piled: bool, seed: int) -> SBCResult:
    rng = np.random.default_rng(seed)
    index = pd.Index(ids, name="replication")
    ranks = pd.DataFrame({q: (np.zeros(len(ids), int) if piled else rng.integers(0, 101, len(ids)))
                          for q in ("tv_cl", "omega_cl")}, index=index)
    rep = pd.DataFrame({"max_rhat": 1.0, "divergences": 0, "mean_steps": 30.0}, index=index)
    settings = {"replication_keys": "fold_in", "platform": "cpu", "devices": 4, "batch": 1, "seed": 0,
                "spec_digest": "sha256:s", "fit_spec_digest": "sha256:b" if piled else "sha256:s"}
    return SBCResult(MODEL, "check." + MODEL, ranks, n_draws=100, replications=rep, alpha=0.01, wall_s=10.0,
                     settings=settings)


def _store(root: Path, variant: str, result: SBCResult) -> None:
    folder = root / MODEL
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(result.ranks.index)
    (folder / f"{variant}_{ids[0]:04d}-{ids[-1]:04d}.json").write_text(json.dumps(sbc_to_dict(result)))


def test_status_counts_and_combine_waits_for_every_replication(blocks, tmp_path, monkeypatch) -> None:
    run = importlib.import_module("run")  # the module sbc_blocks.combine imports
    monkeypatch.setattr(run, "FRAGMENTS", tmp_path / "fragments")
    monkeypatch.setattr(run, "FIGURES", tmp_path)
    root = tmp_path / "parts"
    _store(root, "good", _block(list(range(0, 100)), piled=False, seed=1))
    _store(root, "broken", _block(list(range(0, 60)), piled=True, seed=2))
    assert blocks.stored_ids(MODEL, "good", root) == set(range(100))
    assert blocks.combine(MODEL, 200, 60, root) == 1  # 100 of 200: nothing written
    assert not (tmp_path / "fragments").exists()
    _store(root, "good", _block(list(range(100, 200)), piled=False, seed=3))
    assert blocks.combine(MODEL, 200, 60, root) == 0
    fragment = json.loads((tmp_path / "fragments" / f"sbc_{MODEL}.json").read_text())
    assert fragment["ok"] and fragment["replications"] == 200
    assert "200 + 60 replications" in fragment["row"] and "in 2 + 1 blocks" in fragment["row"]
    assert "centred cl, v, r0" in fragment["row"]
    assert "failed, as it must" in fragment["row"]
    assert (tmp_path / f"sbc_{MODEL}.png").exists()


def test_combine_refuses_a_block_of_another_spec(blocks, tmp_path) -> None:
    root = tmp_path / "parts"
    _store(root, "good", _block([0, 1], piled=False, seed=1))
    other = _block([2, 3], piled=False, seed=1)
    other.settings["spec_digest"] = "sha256:other"
    _store(root, "good", other)
    with pytest.raises(Exception, match="spec_digest"):
        blocks.load(MODEL, "good", root)


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_claims_share_ids_between_processes_and_free_those_of_dead_ones(blocks, tmp_path, monkeypatch) -> None:
    import os

    import bayestwin.validation as validation

    run = importlib.import_module("run")
    monkeypatch.setattr(run, "sbc_setup", lambda name, ode: ("spec", {"seed": 0, "chains": 2}))
    calls: list[list[int]] = []

    def fake_run_sbc(spec, *, fit_spec, replication_ids, **settings):
        calls.append(list(replication_ids))
        return _block(list(replication_ids), piled=False, seed=len(calls))

    monkeypatch.setattr(validation, "run_sbc", fake_run_sbc)
    root, claims = tmp_path / "parts", tmp_path / "claims"
    (claims / MODEL).mkdir(parents=True)
    host = os.uname().nodename
    (claims / MODEL / "good_0001.claim").write_text(f"{host} {os.getpid()} 0\n")  # held by a live process
    (claims / MODEL / "good_0002.claim").write_text(f"{host} {_dead_pid()} 0\n")  # left by a dead one
    (claims / MODEL / "good_0003.claim").write_text(f"another-host {_dead_pid()} 0\n")  # another machine's
    n = blocks.run_blocks(MODEL, list(range(5)), 1, broken=False, deadline=None, batch=None, root=root,
                          claims=claims)
    assert n == 3 and calls == [[0], [2], [4]]
    assert blocks.stored_ids(MODEL, "good", root) == {0, 2, 4}
    assert sorted(p.name for p in (claims / MODEL).iterdir()) == ["good_0001.claim", "good_0003.claim"]
    # a claim is exclusive: a second claimant gets the next free ids only
    assert blocks.claim(MODEL, "good", [5, 6, 7], 2, claims) == [5, 6]
    assert blocks.claim(MODEL, "good", [5, 6, 7], 2, claims) == [7]


def test_a_failed_block_releases_its_claims(blocks, tmp_path, monkeypatch) -> None:
    import bayestwin.validation as validation

    run = importlib.import_module("run")
    monkeypatch.setattr(run, "sbc_setup", lambda name, ode: ("spec", {"seed": 0}))

    def failing(*args, **kwargs):
        raise RuntimeError("solver blew up")

    monkeypatch.setattr(validation, "run_sbc", failing)
    claims = tmp_path / "claims"
    with pytest.raises(RuntimeError, match="solver blew up"):
        blocks.run_blocks(MODEL, [0, 1], 2, broken=False, deadline=None, batch=None, root=tmp_path / "parts",
                          claims=claims)
    assert list((claims / MODEL).iterdir()) == []
