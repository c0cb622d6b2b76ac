"""The examples in ``docs/*.md`` run and print what the pages say (doctest, as a reader would run them)."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md") if ">>> " in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES)
def test_page_examples(page: str) -> None:
    result = doctest.testfile(str(DOCS / page), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in docs/{page} failed (see above)"


def test_pages_with_examples_are_found() -> None:
    assert {"data-format.md", "twin.md"} <= set(PAGES)


def test_public_api_is_reexported() -> None:
    import bayestwin

    for name in bayestwin.__all__:
        assert getattr(bayestwin, name) is not None, name
    assert bayestwin.Twin.__module__ == "bayestwin.twin"
