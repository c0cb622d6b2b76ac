"""The commands that read a store: ``history``, ``audit verify``, ``export`` (plain or de-identified).

They never create a store: a missing one is a store error (exit status 4).
"""

from __future__ import annotations

import json as json_module
from pathlib import Path
from typing import Annotated, Any

import typer

from bayestwin.cli import inputs as opt
from bayestwin.cli.errors import guarded
from bayestwin.cli.output import Output
from bayestwin.cli.state import verbose
from bayestwin.exceptions import AuditError, InputError, StoreError

__all__ = ["register"]

audit_app = typer.Typer(help="Check the store's hash-chained audit log.", no_args_is_help=True)


def history_cmd(patient: opt.PatientOpt, store: opt.StoreOpt = None, json: opt.JsonOpt = False) -> None:
    """List a patient's twin versions, oldest first, with their convergence and records."""
    out = Output(json)
    with guarded(out, verbose=verbose()), opt.open_store(store) as twin_store:
        frame = twin_store.history(patient)
        if frame.empty:
            raise StoreError(f"patient {patient!r} has no versions in {twin_store.path} (pseudonym "
                             f"{twin_store.pseudonym(patient)}); check the id, the store and the pseudonymisation key")
        rows = [_history_row(rec) for rec in frame.to_dict("records")]
        shown = [r | {"created (UTC)": str(r["created_utc"])[:19].replace("T", " ")} for r in rows]
        out.table(f"Twin versions of patient {patient} ({twin_store.pseudonym(patient)})",
                  shown, columns=["version", "parent", "created (UTC)", "actor", "population_version", "converged",
                                  "max_rhat", "min_ess", "divergences", "fit_mode", "records"])
        if out.json:
            out.emit({"ok": True, "patient": patient, "pseudonym": twin_store.pseudonym(patient), "versions": rows})


def _history_row(rec: dict[str, Any]) -> dict[str, Any]:
    diag = json_module.loads(rec["diagnostics"])
    twin = diag.get("twin", {})
    return {"version": int(rec["version"]), "parent": None if rec["parent"] is None else int(rec["parent"]),
            "created_utc": rec["created_utc"], "actor": rec["actor"], "population_version": rec["population_version"],
            "converged": twin.get("ok"), "max_rhat": twin.get("max_rhat"), "min_ess": twin.get("min_ess"),
            "divergences": twin.get("divergences"), "fit_mode": diag.get("fit_mode"), "data_hash": rec["data_hash"],
            "posterior_hash": rec["posterior_hash"], "records": int(rec["n_records"])}


@audit_app.command("verify")
def audit_verify_cmd(
    store: opt.StoreOpt = None,
    expected_head: Annotated[str | None, typer.Option(
        "--expected-head", help="The audit head hash saved earlier elsewhere: also detects a rewritten chain "
                                "or deleted newest records.")] = None,
    json: opt.JsonOpt = False,
) -> None:
    """Verify the audit chain; exit 4 naming the first bad record if it was edited, cut or reordered."""
    out = Output(json)
    with guarded(out, verbose=verbose()), opt.open_store(store) as twin_store:
        report = twin_store.verify_audit(expected_head=expected_head)
        if not report.ok:
            raise AuditError(f"{report}. The audit log of {twin_store.path} was altered: restore the store from a "
                             "backup and find out who had write access.", report)
        head = twin_store.audit.head()
        out.print(f"[green]{report}[/]\nhead {head} (save it elsewhere; pass it back with --expected-head)")
        if out.json:
            out.emit({"ok": True, "n_records": report.n_records, "head": head, "expected_head_checked":
                      expected_head is not None})


def export_cmd(
    out_dir: Annotated[Path, typer.Option("--out", file_okay=False, help="Directory to write to.")],
    patient: Annotated[str | None, typer.Option("--patient", help="The patient's own id (de-identified export: "
                                                                   "default every patient).")] = None,
    version: Annotated[int | None, typer.Option("--version", min=1, help="Version to export (default: the latest).")
                       ] = None,
    deidentified: Annotated[bool, typer.Option("--deidentified", help="A HIPAA Safe Harbor de-identified copy of "
                                                                      "versions and records (see docs/store.md).")
                            ] = False,
    latest_only: Annotated[bool, typer.Option("--latest-only", help="De-identified export: only each patient's "
                                                                    "latest version.")] = False,
    store: opt.StoreOpt = None, actor: opt.ActorOpt = None, json: opt.JsonOpt = False,
) -> None:
    """Export a version's posterior (NetCDF-4), or a de-identified copy of the store; audited."""
    out = Output(json)
    with guarded(out, verbose=verbose()):
        if not deidentified and patient is None:
            raise InputError("export of a posterior needs --patient ID (and optionally --version N); for a "
                             "de-identified copy of the store pass --deidentified")
        if deidentified and version is not None:
            raise InputError("--version applies to a plain export; a de-identified export takes every version "
                             "(or --latest-only)")
        with opt.open_store(store, actor=actor) as twin_store:
            if deidentified:
                result = twin_store.export_deidentified(out_dir, None if patient is None else [patient],
                                                        latest_only=latest_only)
                out.print(f"[green]wrote[/] {result}")
                out.warning("the subject codes that link the export back to pseudonyms are not written to it; "
                            f"the export is audited (record {result.audit_seq})")
                if out.json:
                    out.emit({"ok": True, "directory": str(result.directory), "subjects": len(result.subjects),
                              "versions": result.n_versions, "records": result.n_records,
                              "audit_seq": result.audit_seq})
                return
            chosen = version if version is not None else twin_store.head(patient)
            if chosen is None:
                raise StoreError(f"patient {patient!r} has no versions in {twin_store.path}; check the id and the key")
            path = twin_store.export_version(patient, chosen, out_dir)
            out.print(f"[green]wrote[/] {path} (version {chosen} of patient {patient}; not encrypted: keep it as "
                      "protected as the store)")
            if out.json:
                out.emit({"ok": True, "patient": patient, "version": chosen, "path": str(path)})


def register(app: typer.Typer) -> None:
    """Add the store-reading commands to `app`."""
    app.command("history")(history_cmd)
    app.command("export")(export_cmd)
    app.add_typer(audit_app, name="audit")
