"""The ``bayestwin`` store commands end to end on the bundled theophylline data, driven by typer's CliRunner.

fit-population (subjects 1-11) -> fit (subject 12, first 3 samples) -> update (2 more samples, warm) -> forecast ->
history -> audit verify -> export, in an encrypted store, and the exit codes: 2 bad input, 3 failed convergence, 4
store errors. Small fits (2 chains x 150 warm-up + 300 draws, relaxed gate: R-hat 1.1, ESS 50) check plumbing, not
estimates; each runs once per module. (With 150 draws the warm update's smallest ESS sat at the gate's 50 and
flipped to a cold refit when the bolus kernel's gradient changed in the last bits: 300 draws put it well clear, so
the test checks the warm path, not a coin toss.) The CLI's persistent JAX compilation cache points at a temporary
directory (and is switched off again at the end), so the deliberately failing refit reuses the compiled programs.
Measured 2026-11-26 on 2 cores shared with other jobs: 51-76 s for the module standalone (population fit 21-30 s,
twin fit 7-12 s, warm update 14-23 s: compilation dominates; ~7 s of it is the first import of arviz and numpyro,
which the full suite has already paid).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayestwin.cli import app, main
from bayestwin.data import load_dataset, write_nonmem
from bayestwin.store import TwinStore
from bayestwin.store.netcdf import idata_from_bytes

ROOT = Path(__file__).resolve().parents[2]
SPEC = str(ROOT / "model_specs" / "theophylline.py")
KEY = "a cli test key of at least thirty-two bytes"
ENCRYPTION_KEY = "another secret for encryption at rest, 32+ bytes"
SAMPLER = ["--chains", "2", "--warmup", "150", "--draws", "300", "--seed", "2", "--init", "prior"]
GATE = ["--max-rhat", "1.1", "--min-ess", "50"]


def run(env: dict[str, str], *args: str, **changes: str | None):
    """Invoke the CLI in-process with `env` (changed by `changes`; None removes a variable)."""
    merged: dict[str, str | None] = dict(env) | dict(changes)
    return CliRunner().invoke(app, list(args), env=merged, catch_exceptions=False)


def doc(result) -> dict:
    """The JSON document on stdout (the whole of stdout: progress and messages go to stderr)."""
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("cli-data")
    theo = load_dataset("theo_sd")
    p12 = theo.patient(12)
    later = p12.frame.index.isin(p12.frame.index[p12.frame["evid"] == 0][3:])
    next_two = p12.frame.index.isin(p12.frame.index[p12.frame["evid"] == 0][3:5])
    out = {"cohort": theo.exclude((theo.frame["id"] == 12).to_numpy(), reason="the twin's patient"),
           "first": p12.exclude(later, reason="measured later"), "next": p12.exclude(~next_two, reason="other rows")}
    for name, table in out.items():
        write_nonmem(table, folder / f"{name}.csv")
    bad = (folder / "first.csv").read_text().replace("320.65", "-320.65")  # a negative dose
    (folder / "bad.csv").write_text(bad)
    shutil.copy(folder / "first.csv.units.json", folder / "bad.csv.units.json")
    return {name: str(folder / f"{name}.csv") for name in (*out, "bad")}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("cli-store")
    yield {"BAYESTWIN_STORE": str(folder / "store"), "BAYESTWIN_PSEUDONYM_KEY": KEY,
           "BAYESTWIN_ENCRYPTION_KEY": ENCRYPTION_KEY, "BAYESTWIN_JAX_CACHE": str(folder / "jax-cache"),
           "BAYESTWIN_ACTOR": "cli-test"}
    import jax
    from jax._src import compilation_cache

    jax.config.update("jax_compilation_cache_dir", None)  # leave the rest of the suite as it found JAX
    compilation_cache.reset_cache()


def open_store(env: dict[str, str]) -> TwinStore:
    return TwinStore.open(env["BAYESTWIN_STORE"], key=KEY, encryption_key=ENCRYPTION_KEY, create=False)


@pytest.fixture(scope="module")
def population(env, files) -> dict:
    result = run(env, "fit-population", "--spec", SPEC, "--data", files["cohort"], *SAMPLER, *GATE, "--json")
    assert result.exit_code == 0, result.output
    return doc(result)


@pytest.fixture(scope="module")
def fitted(env, files, population) -> dict:
    result = run(env, "fit", "--data", files["first"], "--patient", "12", "--population", population["version"],
                 *SAMPLER, *GATE, "--update-warmup", "100", "--json")
    assert result.exit_code == 0, result.output
    return doc(result)


@pytest.fixture(scope="module")
def updated(env, files, fitted) -> dict:
    result = run(env, "update", "--patient", "12", "--data", files["next"], "--json")
    assert result.exit_code == 0, result.output
    return doc(result)


def test_fit_population_commits_a_version(env, population) -> None:
    assert population["ok"] and population["converged"] and population["n_patients"] == 11
    assert population["version"].startswith("pop-") and population["parent"] is None
    assert {r["quantity"] for r in population["quantities"]} >= {"tv_ka", "tv_cl", "tv_v", "sigma_add"}
    with open_store(env) as store:
        assert store.encrypted and store.population_history()["version"].tolist() == [population["version"]]


def test_fit_commits_the_first_version_and_the_twin_comes_back_exactly(env, fitted, population) -> None:
    assert (fitted["version"], fitted["parent"], fitted["population_version"]) == (1, None, population["version"])
    assert fitted["observations"] == 3 and [r["parameter"] for r in fitted["parameters"]] == ["ka", "cl", "v"]
    from bayestwin.twin import Twin

    with open_store(env) as store:
        stored = store.load_version(12, 1)
        assert store.pseudonym(12).encode() in store.load_events(12, 1)
        twin = Twin.from_store(store, "12")
    assert twin.stored_version_ == 1 and twin.patient_id_ == 12 and twin.events_.digest() == stored.data_hash
    assert twin.idata_.posterior.identical(stored.posterior.posterior) and twin.diagnostics_.ok
    assert twin.warm_.positions["z"].shape == (2, 3) and twin.warm_.step_size.shape == (2,)
    assert stored.diagnostics["settings"]["update_warmup"] == 100 and stored.diagnostics["fit_mode"] == "cold"


def test_a_fit_failing_its_gate_exits_3_and_commits_nothing(env, files, fitted) -> None:
    args = ["fit", "--data", files["first"], "--patient", "12", *SAMPLER, "--min-ess", "100000"]
    result = run(env, *args, "--json")
    assert result.exit_code == 3, result.output
    error = doc(result)
    assert error["exit_code"] == 3 and error["error"]["type"] == "ConvergenceError"
    assert "nothing was committed" in error["error"]["message"] and "--allow-failed-convergence" in result.stderr
    with open_store(env) as store:
        assert store.head(12) == 1


def test_update_appends_rows_and_warm_starts(updated) -> None:
    assert (updated["version"], updated["parent"], updated["mode"]) == (2, 1, "warm")
    assert updated["observations"] == 5 and updated["new_observations"] == 2 and updated["converged"]


def test_forecast_prints_intervals_and_records_them(env, updated) -> None:
    result = run(env, "forecast", "--patient", "12", "--times", "6,8,12,24", "--level", "0.8", "--level", "0.95",
                 "--json")
    assert result.exit_code == 0, result.output
    out = doc(result)
    assert (out["version"], out["status"], out["time_unit"]) == (2, "ok", "h")
    assert [r["time"] for r in out["rows"]] == [6.0, 8.0, 12.0, 24.0]
    assert all(r["lower_95%"] <= r["lower_80%"] <= r["median"] <= r["upper_80%"] <= r["upper_95%"]
               for r in out["rows"])
    with open_store(env) as store:
        records = store.load_version(12, 2).records
    assert [r["kind"] for r in records] == ["forecast"] and records[0]["payload"]["patient"] == store.pseudonym(12)
    table = run(env, "forecast", "--patient", "12", "--times", "6", "--version", "1")
    assert table.exit_code == 0 and "Forecast of patient 12 from version 1" in table.stdout


def test_history_lists_versions(env, updated) -> None:
    result = run(env, "history", "--patient", "12", "--json")
    assert result.exit_code == 0, result.output
    versions = doc(result)["versions"]
    assert [(v["version"], v["parent"], v["fit_mode"]) for v in versions] == [(1, None, "cold"), (2, 1, "warm")]
    assert all(v["converged"] and v["population_version"].startswith("pop-") for v in versions)
    assert "Twin versions of patient 12" in run(env, "history", "--patient", "12").stdout


def test_audit_verify_passes_and_names_the_first_tampered_record(env, updated, tmp_path) -> None:
    result = run(env, "audit", "verify", "--json")
    assert result.exit_code == 0 and doc(result)["n_records"] >= 4
    copy = tmp_path / "tampered"
    shutil.copytree(env["BAYESTWIN_STORE"], copy)
    with sqlite3.connect(copy / "store.sqlite") as raw:
        raw.execute("DROP TRIGGER audit_no_update")
        raw.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    bad = run(env, "audit", "verify", "--json", BAYESTWIN_STORE=str(copy))
    assert bad.exit_code == 4, bad.output
    error = doc(bad)["error"]
    assert error["type"] == "AuditError" and error["report"]["first_bad_seq"] == 2 and "record 2" in bad.stderr


def test_export_plain_and_deidentified(env, updated, tmp_path) -> None:
    result = run(env, "export", "--patient", "12", "--version", "1", "--out", str(tmp_path / "plain"), "--json")
    assert result.exit_code == 0, result.output
    path = Path(doc(result)["path"])
    with open_store(env) as store:
        assert idata_from_bytes(path.read_bytes()).posterior.identical(store.load_version(12, 1).posterior.posterior)
    deid = run(env, "export", "--deidentified", "--out", str(tmp_path / "deid"), "--json")
    assert deid.exit_code == 0, deid.output
    assert doc(deid)["versions"] == 2 and doc(deid)["subjects"] == 1
    with open_store(env) as store:
        report = store.check_integrity()
    assert report.ok and report.n_files == 5, report  # 1 population, 2 posteriors, 2 event snapshots


def test_bad_input_exits_2(env, files, population) -> None:
    missing = run(env, "fit", "--data", "nowhere.csv", "--patient", "12", "--json")
    assert missing.exit_code == 2 and doc(missing)["error"]["type"] == "InputError"
    unknown = run(env, "fit", "--data", files["first"], "--patient", "99")
    assert unknown.exit_code == 2 and "patient '99' is not in" in unknown.stderr
    invalid = run(env, "fit", "--data", files["bad"], "--patient", "12", "--json")
    assert invalid.exit_code == 2 and doc(invalid)["error"]["type"] == "DataValidationError"
    assert doc(invalid)["error"]["violations"][0]["rule"] == "D001"
    times = run(env, "forecast", "--patient", "12", "--times", "1,two")
    assert times.exit_code == 2 and "--times expects numbers" in times.stderr
    no_store = run(env, "history", "--patient", "12", BAYESTWIN_STORE=None)
    assert no_store.exit_code == 2 and "no twin store given" in no_store.stderr
    assert run(env, "history").exit_code == 2  # usage error: --patient is required
    spec = run(env, "fit-population", "--spec", "nowhere.py", "--data", files["cohort"])
    assert spec.exit_code == 2 and "spec file nowhere.py not found" in spec.stderr


def test_store_errors_exit_4(env, fitted, tmp_path) -> None:
    wrong = run(env, "history", "--patient", "12", "--json", BAYESTWIN_ENCRYPTION_KEY="x" * 40)
    assert wrong.exit_code == 4 and doc(wrong)["error"]["type"] == "StoreError"
    no_key = run(env, "history", "--patient", "12", BAYESTWIN_ENCRYPTION_KEY=None)
    assert no_key.exit_code == 4 and "encrypt" in no_key.stderr
    missing = run(env, "history", "--patient", "12", BAYESTWIN_STORE=str(tmp_path / "none"))
    assert missing.exit_code == 4 and "no twin store at" in missing.stderr
    unknown = run(env, "history", "--patient", "77")
    assert unknown.exit_code == 4 and "has no versions" in unknown.stderr
    copy = tmp_path / "damaged"
    shutil.copytree(env["BAYESTWIN_STORE"], copy)
    with sqlite3.connect(copy / "store.sqlite") as raw:
        (digest,) = raw.execute("SELECT events_hash FROM version_events ORDER BY version_id LIMIT 1").fetchone()
    damaged = copy / "objects" / f"{digest}.nc.enc"
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 1
    damaged.write_bytes(bytes(data))
    integrity = run(env, "forecast", "--patient", "12", "--times", "1", "--version", "1", "--json",
                    BAYESTWIN_STORE=str(copy))
    assert integrity.exit_code == 4 and doc(integrity)["error"]["type"] == "StoreIntegrityError"


def test_main_returns_exit_codes(env, monkeypatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["--version"]) == 0
    assert main(["no-such-command"]) == 2
    assert main(["history", "--patient", "77"]) == 4
