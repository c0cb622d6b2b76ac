"""Run the real service in a subprocess on a free localhost port (tests, benchmarks, validation scripts).

``LocalServer`` starts ``bayestwin serve`` (via ``sys.executable``) with the given environment (store, keys,
limits), waits until ``/v1/health`` answers, and stops the process on exit. The server's output goes to a
log file, shown when it fails to start.

Examples
--------
>>> free_port() > 0
True
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LocalServer", "free_port"]

_MAIN = "import sys; from bayestwin.cli import main; sys.exit(main(sys.argv[1:]))"  # = the bayestwin command


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """``with LocalServer(env, log) as url:`` -- the service on ``http://127.0.0.1:<port>`` for the block.

    `env` is added to a copy of ``os.environ`` from which every ``BAYESTWIN_*`` variable was removed, so only
    what is given configures the server (``BAYESTWIN_STORE``, ``BAYESTWIN_PSEUDONYM_KEY``,
    ``BAYESTWIN_JWT_SECRET``, limits ...). `args` are more ``bayestwin serve`` options (e.g. ``--ssl-certfile``
    and ``--ssl-keyfile``: the URL is then ``https://localhost:<port>``, checked with `verify`).
    """

    def __init__(self, env: Mapping[str, str], log: str | os.PathLike[str], *, start_timeout_s: float = 60.0,
                 args: Sequence[str] = (), verify: bool | str = True) -> None:
        self.env = dict(env)
        self.log = Path(log)
        self.start_timeout_s = start_timeout_s
        self.args = list(args)
        self.verify = verify
        self.port = free_port()
        tls = "--ssl-certfile" in self.args
        self.url = f"{'https://localhost' if tls else 'http://127.0.0.1'}:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        import httpx

        env = {k: v for k, v in os.environ.items() if not k.startswith("BAYESTWIN_")} | self.env
        with open(self.log, "wb") as out:
            self._proc = subprocess.Popen([sys.executable, "-c", _MAIN, "serve", "--port",
                                           str(self.port), "--log-level", "warning", *self.args], env=env, stdout=out,
                                          stderr=subprocess.STDOUT)
        try:
            return self._wait_healthy(httpx)
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _wait_healthy(self, httpx: Any) -> str:
        verify = ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify
        end = time.monotonic() + self.start_timeout_s
        while True:
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1.0, verify=verify).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            assert self._proc is not None
            if self._proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the service did not start; its log ({self.log}):\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
