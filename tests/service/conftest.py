"""The REAL service for the service tests: ``bayestwin serve`` (uvicorn) in a subprocess on a free localhost port.

One server per test session (started once, stopped at the end); tests drive it with ``bayestwin.client``.
Limits are set low enough to test (413 above 200 kB, 429 past 100 requests per subject per minute).
"""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from bayestwin.service.local import LocalServer

    folder = tmp_path_factory.mktemp("service")
    store, log = folder / "store", folder / "server.log"
    env = {"BAYESTWIN_STORE": str(store), "BAYESTWIN_PSEUDONYM_KEY": PSEUDONYM_KEY,
           "BAYESTWIN_JWT_SECRET": JWT_SECRET, "BAYESTWIN_SERVICE_RATE_LIMIT": str(RATE_LIMIT),
           "BAYESTWIN_SERVICE_MAX_BODY_BYTES": str(MAX_BODY), "BAYESTWIN_SERVICE_MAX_TIMES": "50",
           "BAYESTWIN_SERVICE_MAX_PLANS": "4", "BAYESTWIN_SERVICE_MAX_DRAWS": "2000",
           "BAYESTWIN_SERVICE_JOB_TIMEOUT_S": "600", "PYTHONWARNINGS": "ignore"}
    with LocalServer(env, log) as url:
        yield Server(url, store, log)
