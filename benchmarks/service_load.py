"""Bounded load test of the decision-support service on localhost (issue 10).

Starts the real server (``bayestwin serve`` in a subprocess, fresh store), registers the theophylline spec,
fits a small population (theo_sd subjects 1-11) and the twin of subject 12 (first 3 samples) through the
API, then runs `--clients` concurrent clients for `--duration` seconds. Each client has its own token
(subject) and loops: forecast at 4 times and 2 levels; every `--append-every`-th request of the appending
clients adds one new observation row to the twin instead (a background update job). Afterwards it waits for
every job and checks for **lost writes**: every append answered 202 must have a job that succeeded and a
twin version in the store holding the row (the final version's observation count is the initial count plus
the accepted appends). Prints requests/s, p50/p99 latency of forecasts, error counts and the lost writes
as JSON (and writes it to `--out` if given).

Usage::

    python benchmarks/service_load.py                          # 20 clients x 30 s (a few minutes)
    python benchmarks/service_load.py --clients 50 --duration 120 --out load.json   # the issue's run
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = "load-test JWT secret, at least thirty-two bytes"
SAMPLER = {"chains": 2, "warmup": 150, "draws": 150, "seed": 2, "init": "prior"}
GATE = {"max_rhat": 1.1, "min_ess": 50}


def _rows(table: Any) -> dict[str, Any]:
    import pandas as pd

    from bayestwin.client import event_rows
    from bayestwin.data import write_nonmem

    with tempfile.TemporaryDirectory() as folder:
        write_nonmem(table, Path(folder) / "t.csv")
        frame = pd.read_csv(io.StringIO((Path(folder) / "t.csv").read_text()))
        units = {k.lower(): v for k, v in json.loads((Path(folder) / "t.csv.units.json").read_text()).items()}
    return event_rows(frame.to_dict("records"), units)


def setup(url: str) -> dict[str, Any]:
    """Spec, population and twin 12 through the API; returns the twin's first job result."""
    from bayestwin.cli.demo import load_spec_file
    from bayestwin.client import BayestwinClient
    from bayestwin.data import load_dataset
    from bayestwin.service.auth import make_token

    theo = load_dataset("theo_sd")
    p12 = theo.patient(12)
    later = p12.frame.index.isin(p12.frame.index[p12.frame["evid"] == 0][3:])
    cohort = theo.exclude((theo.frame["id"] == 12).to_numpy(), reason="the twin's patient")
    spec = load_spec_file(ROOT / "model_specs" / "theophylline.py")
    with BayestwinClient(url, make_token(SECRET, subject="load-modeler", role="modeler"), timeout_s=600) as m:
        spec_id = m.register_spec(spec.to_dict())["spec_id"]
        pop = m.wait(m.fit_population(spec_id, _rows(cohort), sampler=SAMPLER, gate=GATE), timeout_s=900)
    assert pop["status"] == "succeeded", pop
    with BayestwinClient(url, make_token(SECRET, subject="load-setup", role="clinician"), timeout_s=600) as c:
        twin = c.wait(c.create_twin("12", _rows(p12.exclude(later, reason="later")), sampler=SAMPLER, gate=GATE,
                                    allow_failed_convergence=True), timeout_s=600)
        assert twin["status"] == "succeeded", twin
        c.forecast("12", [1.0, 4.0, 12.0, 24.0])  # compile the forecast program before timing
    return twin["result"]


def client_loop(url: str, k: int, stop: float, append_every: int, out: dict[str, list[Any]],
                lock: threading.Lock) -> None:
    """One client: forecasts, and (for appending clients) an observation row every `append_every` requests."""
    from bayestwin.client import BayestwinClient, event_rows
    from bayestwin.exceptions import ServiceRequestError
    from bayestwin.service.auth import make_token

    token = make_token(SECRET, subject=f"load-client-{k}", role="clinician", patients=["12"])
    n = 0
    with BayestwinClient(url, token, timeout_s=300) as client:
        while time.monotonic() < stop:
            n += 1
            append = append_every > 0 and k % 5 == 0 and n % append_every == 0
            t0 = time.perf_counter()
            try:
                if append:
                    with lock:  # a distinct sample time for every append (a repeated row would be refused)
                        out["counter"].append(k)
                        t_obs = round(30.0 + 0.01 * len(out["counter"]), 4)
                    row = {"ID": 12, "TIME": t_obs, "EVID": 0, "AMT": 0, "CMT": 2, "DV": 2.5, "MDV": 0, "WT": 60.5}
                    job = client.add_data("12", event_rows([row], {"time": "h", "amt": "mg", "dv": "mg/L",
                                                                    "wt": "kg"}))
                    with lock:
                        out["appends"].append({"job": job["id"], "time": t_obs})
                else:
                    client.forecast("12", [1.0, 4.0, 12.0, 24.0], levels=[0.8, 0.95], seed=n)
                    with lock:
                        out["latency"].append(time.perf_counter() - t0)
            except ServiceRequestError as err:
                with lock:
                    out["errors"].append(f"{'append' if append else 'forecast'} {err.status}: "
                                         f"{(err.body or {}).get('error')}")
            except Exception as err:  # transport errors count as errors too
                with lock:
                    out["errors"].append(f"{type(err).__name__}: {err}")


def check_writes(url: str, appends: list[dict[str, Any]], initial_obs: int, store: Path, key: str) -> dict[str, Any]:
    """Wait for every accepted append; count lost writes (job not succeeded, or row missing from the store)."""
    from bayestwin.client import BayestwinClient
    from bayestwin.service.auth import make_token
    from bayestwin.store import TwinStore

    states = []
    with BayestwinClient(url, make_token(SECRET, subject="load-check", role="clinician"), timeout_s=300) as c:
        for a in appends:
            states.append(c.wait(a["job"], timeout_s=3600))
        history = c.history("12")
    ok = [s for s in states if s["status"] == "succeeded"]
    with TwinStore.open(store, key=key, create=False) as st:
        snapshot = json.loads(st.load_events("12"))
    text = json.dumps(snapshot)
    missing = [a for a in appends if repr(a["time"]) not in text and f"{a['time']}" not in text]
    final_obs = max((s["result"]["observations"] for s in ok), default=initial_obs)
    return {"accepted_appends": len(appends), "succeeded": len(ok),
            "failed_jobs": {s["status"]: sum(x["status"] == s["status"] for x in states) for s in states
                            if s["status"] != "succeeded"},
            "job_errors": sorted({json.dumps(s["error"])[:300] for s in states if s["status"] != "succeeded"})[:5],
            "versions": len(history["versions"]), "final_observations": final_obs,
            "expected_observations": initial_obs + len(appends), "rows_missing_from_store": len(missing),
            "lost_writes": len(appends) - len(ok) + len(missing)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--append-every", type=int, default=10, help="every n-th request of every 5th client "
                                                                     "appends a row (0: no appends)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from bayestwin.service.local import LocalServer

    folder = Path(tempfile.mkdtemp(prefix="bayestwin-load-"))
    key = "load-test pseudonym key, 32 bytes or more"
    env = {"BAYESTWIN_STORE": str(folder / "store"), "BAYESTWIN_PSEUDONYM_KEY": key, "BAYESTWIN_JWT_SECRET": SECRET,
           "BAYESTWIN_SERVICE_RATE_LIMIT": "100000", "BAYESTWIN_SERVICE_MAX_QUEUED_JOBS": "10000",
           "PYTHONWARNINGS": "ignore"}
    with LocalServer(env, folder / "server.log", start_timeout_s=120) as url:
        t0 = time.monotonic()
        first = setup(url)
        setup_s = time.monotonic() - t0
        out: dict[str, list[Any]] = {"latency": [], "appends": [], "errors": [], "counter": []}
        lock = threading.Lock()
        start = time.monotonic()
        threads = [threading.Thread(target=client_loop, args=(url, k, start + args.duration, args.append_every, out,
                                                              lock)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - start
        writes = check_writes(url, out["appends"], first["observations"], folder / "store", key)
    lat = sorted(out["latency"])
    report = {
        "clients": args.clients, "duration_s": round(wall, 1), "setup_s": round(setup_s, 1),
        "forecasts": len(lat), "appends": len(out["appends"]),
        "requests_per_s": round((len(lat) + len(out["appends"])) / wall, 2),
        "forecast_p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
        "forecast_p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1) if lat else None,
        "errors": len(out["errors"]), "error_kinds": sorted(set(out["errors"]))[:10], **writes,
        "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if report["errors"] == 0 and writes["lost_writes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
