"""Full property-based fuzzing of the decision-support service (issue 10): schemathesis, no 5xx.

Starts the real server on a fresh store, fits the theophylline population and the twin of patient "12"
through the API (so generated requests for that patient reach a real twin), then sends `--examples`
generated requests to every operation of docs/openapi.json -- once with the path parameter as generated,
and once for the forecast, compare, history and recommendation operations with ``patient`` pinned to "12".
Every response must be below 500 and every error body must be ``{"error", "detail", ...}`` without a
traceback. Prints the counts per operation and status class as JSON.

Usage: ``python validation/service_fuzz.py [--examples 200]`` (about 10-20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

PINNED = ("/v1/twins/{patient}/forecast", "/v1/twins/{patient}/compare", "/v1/twins/{patient}/history",
          "/v1/twins/{patient}/recommendations")


def run(url: str, examples: int) -> dict[str, Any]:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from service_load import SECRET

    from bayestwin.service.auth import make_token

    schema = schemathesis.openapi.from_dict(json.loads((ROOT / "docs" / "openapi.json").read_text()))
    counts: dict[str, Counter[str]] = {}
    failures: list[str] = []

    def make(op: Any, label: str, pin: bool, tally: Counter[str]) -> Any:
        @given(case=op.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            if pin:
                case.path_parameters = {**(case.path_parameters or {}), "patient": "12"}
            role = "modeler" if case.path.startswith(("/v1/specs", "/v1/populations")) else "clinician"
            token = make_token(SECRET, subject=f"fuzz-{uuid.uuid4().hex[:8]}", role=role)
            response = case.call(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300)
            tally[f"{response.status_code // 100}xx"] += 1
            tally[str(response.status_code)] += 1
            if response.status_code >= 500 or (response.status_code >= 400 and (
                    "Traceback" in response.text or not {"error", "detail"} <= set(response.json()))):
                failures.append(f"{label}: {response.status_code} {response.text[:300]}")

        return fuzz

    for result in schema.get_all_operations():
        op = result.ok()
        for pin in ((False, True) if op.path in PINNED else (False,)):
            label = op.label + (" [patient 12]" if pin else "")
            make(op, label, pin, counts.setdefault(label, Counter()))()
    return {"examples_per_operation": examples, "operations": len(counts),
            "requests": sum(c["2xx"] + c["4xx"] + c["5xx"] for c in counts.values()),
            "server_errors": sum(c["5xx"] for c in counts.values()), "failures": failures[:20],
            "by_operation": {k: dict(sorted(v.items())) for k, v in counts.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from service_load import SECRET, setup

    from bayestwin.service.local import LocalServer

    folder = Path(tempfile.mkdtemp(prefix="bayestwin-fuzz-"))
    env = {"BAYESTWIN_STORE": str(folder / "store"), "BAYESTWIN_PSEUDONYM_KEY": "fuzz pseudonym key, 32+ bytes long",
           "BAYESTWIN_JWT_SECRET": SECRET, "BAYESTWIN_SERVICE_MAX_QUEUED_JOBS": "100000",
           "BAYESTWIN_SERVICE_MAX_TIMES": "50", "BAYESTWIN_SERVICE_MAX_DRAWS": "2000", "PYTHONWARNINGS": "ignore"}
    with LocalServer(env, folder / "server.log", start_timeout_s=120) as url:
        setup(url)
        report = run(url, args.examples)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if report["server_errors"] == 0 and not report["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
