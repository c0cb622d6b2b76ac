"""Shared by the benchmark scripts: the machine line of a report and writing a section of docs/benchmarks.md.

Light on purpose (standard library only): a script that times its own imports can use it.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

#: the start of docs/monitoring-evaluation.md, for scripts that add the first section to it
MONITOR_PAGE = "# Monitoring: evaluation and throughput\n\n"


def write_section(page: Path, lines: list[str], *,
                  new_page: str = "# Benchmarks\n\nWritten by `make bench` (benchmarks/*.py).\n\n") -> None:
    """Replace (or add) the section that starts with ``lines[0]`` in `page`; other sections are kept.

    `new_page` is the text a page that does not exist yet starts with.
    """
    text = page.read_text() if page.exists() else new_page
    head, sep, tail = text.partition(lines[0] + "\n")
    rest = tail[tail.find("\n## "):] if sep and "\n## " in tail else ""
    body = head.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    page.write_text(body + ("\n" + rest.lstrip("\n") if rest else ""))


def machine_line(packages: tuple[str, ...], load: str) -> str:
    """The report's machine line: architecture, cores, `load` (how busy the machine was), Python and versions."""
    return (f"{platform.machine()}, {os.cpu_count()} cores ({load}); Python {platform.python_version()}; "
            + ", ".join(f"{p} {metadata.version(p)}" for p in packages))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


