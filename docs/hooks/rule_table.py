"""MkDocs hook: write the validation rule table into the docs from the code, at build time.

``docs/data-checks.md`` holds the marker ``<!-- RULE_TABLE -->``; this hook replaces it
with a Markdown table built from :func:`bayestwin.data.rule_table`, so the published
list of rules (id, severity, stage, title, fix) can never drift from the rules the
readers actually apply. A page that should hold the table but lacks the marker is a
warning, which ``mkdocs build --strict`` turns into a failed build.
"""

from __future__ import annotations

import html
import logging
import re
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- RULE_TABLE -->"
PAGE = "data-checks.md"

log = logging.getLogger("mkdocs.hooks.rule_table")

_MARKDOWN_SPECIAL = re.compile(r"([\\*_{}\[\]|#])")


def _plain(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _cell(value: Any) -> str:
    """One table cell on one line: text shown as written, `quoted names` as code."""
    text = " ".join(str(value).split())
    parts = text.split("`")
    if len(parts) % 2 == 0:  # unbalanced backtick: show it literally
        return _plain(text).replace("`", "\\`")
    return "".join(_plain(p) if i % 2 == 0 else f"`{p.replace('|', chr(92) + '|')}`" for i, p in enumerate(parts))


def _rule_table() -> Any:
    try:
        from bayestwin.data import rule_table
    except ImportError:  # building from a checkout without `pip install -e .`
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
        from bayestwin.data import rule_table
    return rule_table()


def render_rule_table() -> str:
    """The rule table as Markdown: a count line, then one row per rule in id order."""
    table = _rule_table()
    n_err = int((table["severity"] == "error").sum())
    n_warn = int((table["severity"] == "warning").sum())
    lines = [
        f"{len(table)} rules: {n_err} errors, {n_warn} warnings "
        "(generated from `bayestwin.data.rule_table()` when this site was built).",
        "",
        "| id | severity | stage | title | fix |",
        "|---|---|---|---|---|",
    ]
    for rec in table.itertuples(index=False):
        cells = [f"`{rec.id}`", _cell(rec.severity), _cell(rec.stage), _cell(rec.title), _cell(rec.fix)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker on the validation page with the generated table."""
    if MARKER not in markdown:
        if page.file.src_uri == PAGE:
            log.warning("%s has no %s marker: the rule table was not written into it", PAGE, MARKER)
        return markdown
    return markdown.replace(MARKER, render_rule_table())
