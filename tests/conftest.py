"""Test-suite configuration: strict mode (warnings are errors, see pyproject) and shared fixtures."""

from __future__ import annotations

import os

import pytest

# First, before any test module imports jax: importing bayestwin asks XLA for 4 host devices, which it can do only
# while jax is not yet imported. A test module that imports jax first (collected first in a worker, e.g.
# tests/benchmarks/) would otherwise leave the whole worker with 1 device: every fit's chains then run
# sequentially instead of in parallel, giving other (seeded) results and a suite ~50 % slower (measured
# 2026-11-27: 1641 s with 3 borderline fits failing, vs 1071 s).
import bayestwin  # noqa: F401  (isort: skip)
import jax

assert jax.local_device_count() > 1, "jax was initialised before bayestwin set the host device count (XLA_FLAGS)"


@pytest.fixture(autouse=True)
def _no_fast_mode_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests decide their own sizes; an exported BAYESTWIN_FAST must not change them silently.
    if "BAYESTWIN_FAST" in os.environ:
        monkeypatch.delenv("BAYESTWIN_FAST")


class Compiles:
    """Counts XLA compilations (backend compiles) while active: ``with Compiles() as c: ...; c.n``."""

    def __init__(self) -> None:
        self.n = 0

    def __enter__(self) -> Compiles:
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def _listen(self, event: str, duration: float, **_: object) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            self.n += 1

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.clear_event_listeners()


@pytest.fixture(scope="session")
def count_compiles() -> type[Compiles]:
    """The compilation counter (a context manager class) for tests asserting that nothing recompiles."""
    return Compiles
