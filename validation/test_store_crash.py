"""Crash safety of the twin store at full size (issue 6): 100 writers killed with SIGKILL at random points.

After every kill the store must open, pass its integrity check, keep every acknowledged commit and record,
show no partial version, and load every committed version bit-identically. The default suite runs the
same check with 10 kills (tests/store/test_crash.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))

from crash_harness import run_crash_test

KILLS = 100


def test_store_survives_100_sigkills(tmp_path: Path) -> None:
    start = time.perf_counter()
    counts = run_crash_test(tmp_path / "store", KILLS, seed=2026)
    print(f"store crash test: {counts['kills']} SIGKILLs ({counts['killed_by_sigkill']} by SIGKILL), "
          f"{counts['versions']} versions and {counts['records']} records committed, every one verified; "
          f"{counts['leftover_tmp']} temporary and {counts['unreferenced']} unreferenced files left (invisible); "
          f"{time.perf_counter() - start:.0f} s")
    assert counts["kills"] == KILLS == counts["killed_by_sigkill"]
    assert counts["versions"] >= KILLS
