"""``make validate``'s handling of the ODE models' SBC (validation/run.py): skipped with a reason unless asked.

The ODE SBC costs ~20-30 CPU-hours per model (validation/device_sbc.md), so ``sbc_model`` must not start it
by default, and a run with ``--ode`` must say in its row how its settings differ from the other models'.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "validation" / "run.py"


@pytest.fixture(scope="module")
def run_module():
    spec = importlib.util.spec_from_file_location("validation_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["pk.one_cmt_oral_mm", "pd.one_cmt_oral_idr2"])
def test_ode_sbc_is_not_run_without_ode_flag(run_module, name: str) -> None:
    fragment = run_module.sbc_model(name, 2, 2)  # returns at once: no simulation, no fit
    assert not fragment["ok"]
    assert "**NOT RUN**" in fragment["row"] and f"`{name}`" in fragment["row"]
    assert "device_sbc.md" in fragment["row"]


def test_ode_settings_are_named_in_the_row(run_module) -> None:
    assert run_module._settings_note(run_module.SBC_SETTINGS) == ""
    note = run_module._settings_note(run_module.ODE_SBC_SETTINGS)
    assert note.startswith("; ") and "parallel_ok True" in note
