"""The REAL service for the service tests: ``bayestwin serve`` (uvicorn) in a subprocess on a free localhost port.

One server per test session (started once, stopped at the end); tests drive it with ``bayestwin.client``.
Limits are set low enough to test (413 above 200 kB, 429 past 100 requests per subject per minute).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _service_env import JWT_SECRET, MAX_BODY, PSEUDONYM_KEY, RATE_LIMIT

from bayestwin._extras import require_all_deps

try:
    import fastapi  # noqa: F401
    import jwt  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError:  # without the [service] extra the service tests are skipped (CI requires it: they fail there)
    if require_all_deps():
        raise
    collect_ignore_glob = ["test_*.py"]


@dataclass
class Server:
    """A running service: its URL, store path and a way to make clients for tokens."""

    url: str
    store: Path
    log: Path

    def client(self, token: str | None = None) -> Any:
        from bayestwin.client import BayestwinClient

        return BayestwinClient(self.url, token, timeout_s=180.0)

    def token(self, subject: str, role: str, patients: list[str] | None = None, **claims: object) -> str:
        from bayestwin.service.auth import make_token

        return make_token(JWT_SECRET, subject=subject, role=role, patients=patients, **claims)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("service")
    store, log = folder / "store", folder / "server.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAYESTWIN_", "XLA_"))}
    env |= {"BAYESTWIN_STORE": str(store), "BAYESTWIN_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "BAYESTWIN_JWT_SECRET": JWT_SECRET, "BAYESTWIN_SERVICE_RATE_LIMIT": str(RATE_LIMIT),
            "BAYESTWIN_SERVICE_MAX_BODY_BYTES": str(MAX_BODY), "BAYESTWIN_SERVICE_MAX_TIMES": "50",
            "BAYESTWIN_SERVICE_MAX_PLANS": "4", "BAYESTWIN_SERVICE_MAX_DRAWS": "2000",
            "BAYESTWIN_SERVICE_JOB_TIMEOUT_S": "600", "PYTHONWARNINGS": "ignore"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bayestwin.cli.main", "serve", "--port", str(port),
                                 "--log-level", "warning"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import httpx

    try:
        end = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the service did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield Server(url, store, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
