"""Fixtures of the store tests: a pseudonymisation key (and no encryption key) in the environment, a fresh store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storekit import KEY

from bayestwin.store import TwinStore


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAYESTWIN_PSEUDONYM_KEY", KEY)
    monkeypatch.delenv("BAYESTWIN_PSEUDONYM_KEY_FILE", raising=False)
    monkeypatch.delenv("BAYESTWIN_ENCRYPTION_KEY", raising=False)  # stores are plain unless a test encrypts one
    monkeypatch.delenv("BAYESTWIN_ENCRYPTION_KEY_FILE", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TwinStore]:
    with TwinStore.open(tmp_path / "store", actor="tester") as s:
        yield s
