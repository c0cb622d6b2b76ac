"""Command line: ``bayestwin demo``, ``bayestwin validate FILE``, ``bayestwin rules``.

The CLI is the only place that configures logging and prints.
"""

from bayestwin.cli.main import main

__all__ = ["main"]
