"""What the command line prints: rich tables on stdout, progress and messages on stderr, or JSON only.

With ``--json`` stdout carries exactly one JSON document (the result, or ``{"ok": false, "exit_code": ...,
"error": ...}``); everything meant for people -- progress, warnings, errors -- goes to stderr either way.
Consoles are made per command, so that output follows ``sys.stdout`` / ``sys.stderr`` as they are at call
time (``typer.testing.CliRunner`` swaps them).

Examples
--------
>>> out = Output(json_mode=False)
>>> out.table("Versions", [{"version": 1, "ok": True}])  # doctest: +NORMALIZE_WHITESPACE
      Versions
┏━━━━━━━━━┳━━━━━━┓
┃ version ┃ ok   ┃
┡━━━━━━━━━╇━━━━━━┩
│ 1       │ True │
└─────────┴──────┘
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

__all__ = ["Output", "fmt", "json_safe"]


def _console(stream: Any) -> Console:
    terminal = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=stream, highlight=False, width=None if terminal else 160, soft_wrap=False)


def fmt(value: Any) -> str:
    """A cell as text: floats with 4 significant digits, missing values as ``-``.

    >>> fmt(1.234567), fmt(None), fmt(float("nan")), fmt(12345.6), fmt(True)
    ('1.235', '-', '-', '1.235e+04', 'True')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)


class Output:
    """Where a command's output goes; see the module docstring.

    Parameters
    ----------
    json_mode : bool
        Print one JSON document on stdout instead of tables.
    """

    def __init__(self, json_mode: bool = False) -> None:
        self.json = json_mode
        self.out = _console(sys.stdout)
        self.err = _console(sys.stderr)

    # --- results (stdout) -------------------------------------------------------------------
    def emit(self, doc: Mapping[str, Any]) -> None:
        """Print `doc` as the command's JSON result (stdout)."""
        from bayestwin.forecast.forecast import json_default  # imported here: keeps `bayestwin --help` fast

        typer.echo(json.dumps(json_safe(doc), indent=2, default=json_default, allow_nan=False))

    def print(self, text: str) -> None:
        """A line of the human-readable result (stdout; nothing with ``--json``). Rich markup allowed."""
        if not self.json:
            self.out.print(text)

    def table(self, title: str, rows: Sequence[Mapping[str, Any]], *, columns: Sequence[str] | None = None) -> None:
        """A table of `rows` (stdout; nothing with ``--json``)."""
        if self.json:
            return
        names = list(columns) if columns is not None else (list(rows[0]) if rows else [])
        table = Table(title=title, title_justify="left" if len(names) > 6 else "center")
        for name in names:
            table.add_column(name, justify="right" if rows and _numeric(rows[0].get(name)) else "left")
        for row in rows:
            table.add_row(*(escape(fmt(row.get(name))) for name in names))
        self.out.print(table)

    # --- people (stderr) --------------------------------------------------------------------
    def info(self, text: str) -> None:
        """A progress or context message (stderr). Rich markup allowed."""
        self.err.print(text)

    def warning(self, text: str) -> None:
        """A warning (stderr)."""
        self.err.print(f"[yellow]warning:[/] {escape(text)}")

    def loud(self, title: str, text: str) -> None:
        """A result that must not be missed (a fit used despite failing its gate): a red panel on stderr."""
        self.err.print(Panel(escape(text), title=f"[bold]{escape(title)}[/]", border_style="red", expand=False))

    def fail(self, title: str, message: str, code: int, *, hint: str | None = None) -> None:
        """The error message of a failed command (stderr)."""
        body = escape(message) + (f"\n[dim]{escape(hint)}[/]" if hint else "")
        self.err.print(Panel(body, title=f"[bold]error: {escape(title)}[/] (exit {code})", border_style="red",
                             expand=False))

    @contextmanager
    def stage(self, text: str, *, spinner: bool = True) -> Iterator[None]:
        """Show `text` with a spinner on stderr while the block runs, then a done line with its wall time.

        `spinner` false prints the line first instead (when another progress display, such as NumPyro's
        per-chain bars, writes to the terminal meanwhile).
        """
        start = time.perf_counter()
        try:
            if spinner:
                with self.err.status(escape(text), spinner="dots"):
                    yield
            else:
                self.err.print(f"[cyan]…[/] {escape(text)}")
                yield
        except BaseException:
            self.err.print(f"[red]✗[/] {escape(text)} [dim]({time.perf_counter() - start:.1f} s)[/]")
            raise
        self.err.print(f"[green]✓[/] {escape(text)} [dim]({time.perf_counter() - start:.1f} s)[/]")


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities replaced by ``None`` (strict JSON), recursively.

    >>> json_safe({"a": [1.0, float("nan")], "b": np.float64(2.0)})
    {'a': [1.0, None], 'b': 2.0}
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
