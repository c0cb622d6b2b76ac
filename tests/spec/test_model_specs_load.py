"""Every spec in model_specs/ builds, validates and round-trips through its plain-dict form.

The specs are documentation users copy from; a spec that no longer builds (an API change) must fail here,
not in a user's notebook.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from bayestwin.spec import TwinSpec

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(p.stem for p in (ROOT / "model_specs").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", NAMES)
def test_spec_builds_and_round_trips(name: str) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        module = importlib.import_module(f"model_specs.{name}")
    finally:
        sys.path.remove(str(ROOT))
    if not callable(getattr(module, "spec", None)):
        pytest.skip(f"model_specs/{name}.py has no spec() (a helper module)")
    spec = module.spec()
    assert isinstance(spec, TwinSpec)
    assert TwinSpec.from_dict(spec.to_dict()) == spec
    assert TwinSpec.from_dict(spec.to_dict()).digest() == spec.digest()
