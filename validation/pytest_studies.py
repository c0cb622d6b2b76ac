"""The pytest studies of ``make validate`` (``validation/test_*.py``), kept one result per test case.

The studies are long (minutes to hours each: every model's recovery in ``test_check_model.py``, the ODE
reference posterior, the heavy notebooks), so they can be run piecemeal: each run saves one JSON fragment per
test case it ran (outcome, time, what the test printed, the date and the commit), and the report lists EVERY
collected case with its latest result -- a case that has never run is shown as **NOT RUN** and makes the
section fail. The section passes only when every collected case has a fragment and none failed.

Usage::

    python validation/pytest_studies.py validation/test_posteriordb_radon.py   # any pytest arguments
    python validation/pytest_studies.py validation/test_check_model.py -k "pk."
    python validation/run.py --only assemble                                    # rebuild docs/validation.md

``validation/run.py --only pytest`` runs them all (what ``make validate`` does).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: one JSON file per test case, beside the SBC fragments
FRAGMENTS = ROOT / "docs" / "validation" / "fragments" / "pytest"
_OUTCOMES = {"failure": "**FAILED**", "error": "**ERROR**", "skipped": "skipped"}


def _key(nodeid: str) -> str:
    """A file name for a test case's node id (``validation/test_x.py::test_y[a.b]``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid.removeprefix("validation/"))


def _commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _nodeid(case: ET.Element) -> str:
    """The pytest node id of a junit ``testcase`` (file from ``classname``: ``validation.test_x``)."""
    module = (case.get("classname") or "").split(".")
    path = "/".join(module) + ".py" if module != [""] else case.get("file", "")
    return f"{path}::{case.get('name')}"


def run(pytest_args: list[str]) -> int:
    """Run pytest on `pytest_args` (default: all of ``validation/``) and save one fragment per case run.

    Returns pytest's exit status.
    """
    xml = ROOT / f".validate-junit-{os.getpid()}.xml"  # one per process: two studies may run at once
    args = pytest_args or ["validation"]
    cmd = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider", "-s", f"--junitxml={xml}",
           "-o", "junit_logging=system-out", "-o", "junit_family=xunit1"]
    code = subprocess.call(cmd, cwd=ROOT)
    if not xml.exists():
        return code or 1
    FRAGMENTS.mkdir(parents=True, exist_ok=True)
    date, commit = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), _commit()
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome = next((_OUTCOMES[t] for t in _OUTCOMES if case.find(t) is not None), "passed")
        out = case.find("system-out")
        printed = out.text.strip()[-3000:] if out is not None and out.text and out.text.strip() else ""
        failure = next((case.find(t) for t in ("failure", "error") if case.find(t) is not None), None)
        if failure is not None:  # the message is pytest's one-line summary; the text ends with the full report
            detail = (failure.text or failure.get("message") or "").strip()[-2500:]
            printed = (printed + "\n" + detail).strip()
        nodeid = _nodeid(case)
        (FRAGMENTS / f"{_key(nodeid)}.json").write_text(json.dumps(
            {"nodeid": nodeid, "outcome": outcome, "time_s": float(case.get("time", 0)), "printed": printed,
             "date": date, "commit": commit}, indent=1) + "\n")
    xml.unlink()
    return code


def collect() -> list[str]:
    """Node ids of every test case in ``validation/`` (``pytest --collect-only``)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "validation", "--collect-only", "-q", "-p",
                          "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if "::" in line and not line.startswith(" ")]


def report(nodeids: list[str] | None = None) -> tuple[bool, list[str], float]:
    """``(passed, Markdown lines, summed wall seconds)`` from the latest fragment of every collected case."""
    nodeids = collect() if nodeids is None else nodeids
    rows, printed, total, counts = [], [], 0.0, {"passed": 0, "failed": 0, "skipped": 0, "not run": 0}
    for nodeid in nodeids:
        path = FRAGMENTS / f"{_key(nodeid)}.json"
        f = json.loads(path.read_text()) if path.exists() else None
        name = nodeid.removeprefix("validation/")
        if f is None:
            rows.append(f"| `{name}` | **NOT RUN** | | |")
            counts["not run"] += 1
            continue
        total += f["time_s"]
        counts[{"passed": "passed", "skipped": "skipped"}.get(f["outcome"], "failed")] += 1
        rows.append(f"| `{name}` | {f['outcome']} | {f['time_s']:.0f} s | {f['date']} ({f['commit']}) |")
        if f["printed"]:
            printed += [f"`{name}`:", "", "```text", f["printed"], "```", ""]
    ok = bool(nodeids) and counts["failed"] == 0 and counts["not run"] == 0
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    lines = ["## Reference posteriors, cross-engine check, conformance and recovery (pytest `validation/`)", "",
             f"{len(nodeids)} test cases: {summary}; their own times add up to {total / 60:.1f} min. Each row is "
             "the case's latest run (`python validation/pytest_studies.py <pytest args>` runs some; a case that "
             "has never run fails this section).", "",
             "| test | outcome | time | run (commit) |", "|---|---|---|---|", *rows, ""]
    if printed:
        lines += ["### What the studies printed", "", *printed]
    return ok, lines, total


if __name__ == "__main__":
    code = run(sys.argv[1:])
    print(f"pytest exit status {code}; fragments in {FRAGMENTS.relative_to(ROOT)}")
    sys.exit(code)
