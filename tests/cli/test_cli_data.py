"""The data commands kept from the argparse CLI (``rules``, ``validate``) and the global options, via CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bayestwin.cli import app, main
from bayestwin.data import load_dataset, write_nonmem

UNITS = ["--unit", "time=h", "--unit", "amt=mg", "--unit", "dv=mg/L", "--unit", "WT=kg"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_rules_lists_every_rule_as_text_and_json() -> None:
    text = invoke("rules")
    assert text.exit_code == 0 and text.stdout.splitlines()[0].startswith("C001  error")
    rules = json.loads(invoke("rules", "--json").stdout)
    assert {"id", "severity", "stage", "title"} <= set(rules[0])
    assert text.stdout.rstrip().endswith(f"{len(rules)} rules")


def test_validate_exits_0_on_clean_data_1_on_broken_data_2_without_units(tmp_path: Path) -> None:
    good = tmp_path / "theo.csv"
    write_nonmem(load_dataset("theo_sd"), good, sidecar=False)
    assert invoke("validate", str(good), *UNITS).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(good.read_text().replace("\n1,0,1,", "\n1,0,1,-", 1))  # subject 1's dose: negative
    result = invoke("validate", str(bad), *UNITS, "--json")
    assert result.exit_code == 1 and "D001" in {v["rule"] for v in json.loads(result.stdout)}
    assert "[D001]" in invoke("validate", str(bad), *UNITS, "--limit", "5").stdout
    no_units = invoke("validate", str(good))
    assert no_units.exit_code == 2 and "no units given" in no_units.stderr


def test_help_version_and_usage_errors() -> None:
    helped = invoke("--help")
    assert helped.exit_code == 0 and "Exit codes" in helped.stdout and "fit-population" in helped.stdout
    assert invoke("--version").stdout.startswith("bayestwin ")
    assert invoke("validate").exit_code == 2  # missing argument
    assert main(["rules", "--no-such-option"]) == 2
