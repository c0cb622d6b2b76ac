"""Crash safety (SIGKILL at random points) and two processes writing at once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_harness import Zygote, run_crash_test
from storekit import KEY, assert_idata_identical, make_idata

from bayestwin.store import TwinStore

KILLS = 10


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    with Zygote({**os.environ, "BAYESTWIN_PSEUDONYM_KEY": KEY}) as z:
        yield z


def test_sigkill_at_random_points_leaves_a_consistent_store(tmp_path: Path, zygote: Zygote) -> None:
    counts = run_crash_test(tmp_path / "store", KILLS, seed=1, zygote=zygote)
    print(f"crash test: {counts}")
    assert counts["kills"] == KILLS and counts["killed_by_sigkill"] == KILLS
    assert counts["versions"] >= KILLS  # the writers did make progress between kills


def _race(tmp_path: Path, zygote: Zygote, patients: tuple[str, str]) -> tuple[list[str], TwinStore]:
    store_dir = tmp_path / "store"
    TwinStore.open(store_dir).close()
    pids = [zygote.start("race", store_dir, tmp_path / f"ack{i}", f"{p}:{i}") for i, p in enumerate(patients)]
    time.sleep(0.3)  # both open and waiting
    (store_dir / "start").touch()
    assert [zygote.wait(pid) for pid in pids] == [0, 0]
    lines = [line for i in range(2) for line in (tmp_path / f"ack{i}").read_text().splitlines()]
    return lines, TwinStore.open(store_dir)


def test_two_processes_different_patients_both_succeed(tmp_path: Path, zygote: Zygote) -> None:
    lines, store = _race(tmp_path, zygote, ("alice", "bob"))
    assert sorted(lines) == ["commit alice 1 0", "commit bob 1 1"]
    assert_idata_identical(make_idata(0), store.load_version("alice", 1).posterior)
    assert_idata_identical(make_idata(1), store.load_version("bob", 1).posterior)
    assert store.check_integrity().ok


def test_two_processes_same_patient_one_conflicts_nothing_lost(tmp_path: Path, zygote: Zygote) -> None:
    lines, store = _race(tmp_path, zygote, ("carol", "carol"))
    conflicts = [line for line in lines if line.startswith("conflict")]
    assert len(conflicts) == 1, lines
    assert "latest version is 1, but this commit builds on None" in conflicts[0]
    loser = conflicts[0].split()[2]
    winner = "1" if loser == "0" else "0"
    assert sorted(line for line in lines if line.startswith("commit")) == sorted(
        [f"commit carol 1 {winner}", f"commit carol 2 {loser}"])
    hist = store.history("carol")
    assert hist["version"].tolist() == [1, 2]
    assert_idata_identical(make_idata(int(winner)), store.load_version("carol", 1).posterior)
    assert_idata_identical(make_idata(int(loser)), store.load_version("carol", 2).posterior)
    assert store.check_integrity().ok
