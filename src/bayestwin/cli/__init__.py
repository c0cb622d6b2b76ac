"""Command line: ``bayestwin`` (typer + rich). See ``docs/cli.md`` and ``bayestwin --help``.

The CLI is the only place that configures logging, prints, and turns on JAX's persistent
compilation cache (:mod:`bayestwin.cli.jaxcache`).
"""

from bayestwin.cli.main import app, main

__all__ = ["app", "main"]
