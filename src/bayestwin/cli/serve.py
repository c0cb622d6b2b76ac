"""``bayestwin serve``: run the decision-support service with uvicorn (``pip install 'bayestwin[service]'``).

Settings come from the environment (see :mod:`bayestwin.service.settings`); ``--store`` overrides
``BAYESTWIN_STORE``. With ``--ssl-certfile`` and ``--ssl-keyfile`` it serves HTTPS; otherwise bind it to
localhost behind a TLS-terminating reverse proxy (docs/service.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayestwin.cli import inputs as opt
from bayestwin.cli.errors import guarded
from bayestwin.cli.output import Output
from bayestwin.cli.state import verbose

__all__ = ["register", "serve_cmd"]


def serve_cmd(
    store: opt.StoreOpt = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    ssl_certfile: Annotated[Path | None, typer.Option("--ssl-certfile", exists=True, dir_okay=False,
                                                      help="TLS certificate chain (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option("--ssl-keyfile", exists=True, dir_okay=False,
                                                     help="TLS private key (PEM).")] = None,
    proxy_headers: Annotated[bool, typer.Option("--proxy-headers", help="Trust X-Forwarded-* from "
                                                "--forwarded-allow-ips (behind a reverse proxy).")] = False,
    forwarded_allow_ips: Annotated[str, typer.Option("--forwarded-allow-ips")] = "127.0.0.1",
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    """Serve the REST/OpenAPI decision-support service (docs/service.md)."""
    out = Output()
    with guarded(out, verbose=verbose()):
        from bayestwin._extras import require
        from bayestwin.exceptions import InputError

        uvicorn = require("uvicorn", extra="service")
        require("fastapi", extra="service")
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise InputError("TLS needs both --ssl-certfile and --ssl-keyfile (PEM files); give both or neither")
        from bayestwin.service.app import create_app
        from bayestwin.service.settings import ServiceSettings

        settings = ServiceSettings.from_env(store=None if store is None else str(store))
        app = create_app(settings)
        scheme = "https" if ssl_certfile else "http"
        out.info(f"serving {settings.store} on {scheme}://{host}:{port} (OpenAPI at /openapi.json)")
        if ssl_certfile is None and host not in ("127.0.0.1", "localhost", "::1"):
            out.warning(f"serving plain HTTP on {host}: terminate TLS in front of it (docs/service.md)")
        uvicorn.run(app, host=host, port=port, ssl_certfile=None if ssl_certfile is None else str(ssl_certfile),
                    ssl_keyfile=None if ssl_keyfile is None else str(ssl_keyfile), proxy_headers=proxy_headers,
                    forwarded_allow_ips=forwarded_allow_ips, log_level=log_level, server_header=False)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to `app`.

    Examples
    --------
    >>> demo = typer.Typer()
    >>> register(demo)
    >>> [c.name for c in demo.registered_commands]
    ['serve']
    """
    app.command("serve")(serve_cmd)
