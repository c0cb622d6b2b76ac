"""The commands that fit and use twins in a store: ``fit-population``, ``fit``, ``update``, ``forecast``.

Each opens the store first (so that a wrong key or path fails before minutes of sampling), shows its
progress on stderr, gates every fit (exit 3 and nothing committed when the gate fails, unless
``--allow-failed-convergence``) and prints a table, or one JSON document with ``--json``.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from bayestwin.cli import inputs as opt
from bayestwin.cli.errors import guarded
from bayestwin.cli.jaxcache import enable_compilation_cache
from bayestwin.cli.output import Output
from bayestwin.cli.state import verbose
from bayestwin.exceptions import ConvergenceError, ConvergenceWarning, InputError

__all__ = ["register"]

SpecOpt = Annotated[Path, typer.Option("--spec", help="Python file defining spec(), e.g. model_specs/theophylline.py.")]
DataOpt = Annotated[Path, typer.Option("--data", help="NONMEM-style CSV file (units: --unit or <file>.units.json).")]


def _gate_verdict(out: Output, what: str, diagnostics: Any, allow: bool) -> None:
    """Stop with exit status 3 if `diagnostics` failed its gate, unless `allow` (then say so loudly)."""
    if diagnostics.ok:
        out.info(f"[green]✓[/] {what} passed its convergence gate: {diagnostics.format().splitlines()[0]}")
        return
    if not allow:
        raise ConvergenceError(
            f"{what} FAILED its convergence gate; nothing was committed.\n{diagnostics.format()}\nRerun with more "
            "--warmup/--draws (or another --seed), or pass --allow-failed-convergence to commit it anyway, marked "
            "failed (forecasts from it then need --allow-failed-convergence too).")
    out.loud("FAILED CONVERGENCE -- committed anyway (--allow-failed-convergence)",
             f"{what} failed its convergence gate; its results may be wrong with confident intervals.\n"
             f"{diagnostics.format()}")


def _twin_rows(twin: Any) -> list[dict[str, Any]]:
    import arviz as az

    names = list(twin.spec.parameter_names)
    table = az.summary(twin.idata_, var_names=names, hdi_prob=0.9, round_to="none")
    units = {p.name: p.unit for p in twin.spec.parameters}
    return [{"parameter": str(name), "unit": units.get(str(name).split("[")[0], ""), "mean": row["mean"],
             "sd": row["sd"], "hdi_5%": row["hdi_5%"], "hdi_95%": row["hdi_95%"], "ess_bulk": row["ess_bulk"],
             "r_hat": row["r_hat"]} for name, row in table.iterrows()]


def _twin_doc(store: Any, patient: str, version: int, twin: Any) -> dict[str, Any]:
    return {"ok": True, "patient": patient, "pseudonym": store.pseudonym(patient), "version": version,
            "parent": version - 1 if version > 1 else None, "population_version": twin.population_version_,
            "observations": len(twin.events_.observations), "converged": bool(twin.diagnostics_.ok),
            "diagnostics": twin.diagnostics_.to_dict(), "parameters": _twin_rows(twin)}


def fit_population_cmd(
    spec: SpecOpt, data: DataOpt, store: opt.StoreOpt = None, unit: opt.UnitOpt = None,
    evid_coding: opt.EvidOpt = opt.EvidCoding.nonmem, chains: opt.ChainsOpt = None, warmup: opt.WarmupOpt = None,
    draws: opt.DrawsOpt = None, seed: opt.SeedOpt = None, init: opt.InitOpt = None, max_rhat: opt.MaxRhatOpt = None,
    min_ess: opt.MinEssOpt = None, allow_failed_convergence: opt.AllowFailedOpt = False, actor: opt.ActorOpt = None,
    json: opt.JsonOpt = False,
) -> None:
    """Fit a population model to a cohort and commit it to the store as a new population version."""
    out = Output(json)
    with guarded(out, verbose=verbose()):
        the_spec = opt.load_spec(spec)
        cohort = opt.read_events(data, unit, evid_coding)
        with opt.open_store(store, create=True, actor=actor) as twin_store:
            enable_compilation_cache()
            from bayestwin.inference import fit_population

            sampler = opt.make_sampler(chains, warmup, draws, seed, init, progress=opt.progress_bars() and not json)
            with out.stage(f"fitting population model {the_spec.name!r} to {cohort.n_patients} patients (NUTS, "
                           f"{sampler.chains} chains x {sampler.warmup} warm-up + {sampler.draws} draws)",
                           spinner=not sampler.progress_bar), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # reported below
                fit = fit_population(the_spec, cohort, sampler=sampler, gate=opt.make_gate(max_rhat, min_ess))
            summary = fit.summary()
            rows = [{"quantity": str(name), **{k: row[k] for k in ("unit", "mean", "sd", "hdi_2.5%", "hdi_97.5%",
                                                                     "ess_bulk", "r_hat")}}
                    for name, row in summary.iterrows()]
            out.table(f"Population {fit.version} ({the_spec.name}, {fit.n_patients} patients)", rows)
            _gate_verdict(out, f"the population fit of {the_spec.name!r}", fit.diagnostics, allow_failed_convergence)
            version = twin_store.commit_population(fit)
            out.print(f"committed population [bold]{version}[/] to {twin_store.path}")
            if out.json:
                out.emit({"ok": True, "version": version, "parent": fit.parent, "spec": the_spec.name,
                          "spec_hash": the_spec.digest(), "data_hash": fit.data_digest, "n_patients": fit.n_patients,
                          "converged": fit.ok, "diagnostics": fit.diagnostics.to_dict(),
                          "wall_time_s": fit.wall_time_s, "quantities": rows})


def fit_cmd(
    data: DataOpt, patient: opt.PatientOpt,
    population: Annotated[str, typer.Option("--population", help="Population version (pop-...) or 'latest'.")
                          ] = "latest",
    spec: Annotated[Path | None, typer.Option("--spec", help="Spec file; must be the population's spec "
                                                             "(default: the population's own).")] = None,
    store: opt.StoreOpt = None, unit: opt.UnitOpt = None, evid_coding: opt.EvidOpt = opt.EvidCoding.nonmem,
    chains: opt.ChainsOpt = None, warmup: opt.WarmupOpt = None, draws: opt.DrawsOpt = None, seed: opt.SeedOpt = None,
    init: opt.InitOpt = None, max_rhat: opt.MaxRhatOpt = None, min_ess: opt.MinEssOpt = None,
    update_warmup: Annotated[int, typer.Option("--update-warmup", min=1, help="Warm-up of later warm `update`s.",
                                               rich_help_panel="Sampler")] = 200,
    allow_failed_convergence: opt.AllowFailedOpt = False, actor: opt.ActorOpt = None, json: opt.JsonOpt = False,
) -> None:
    """Fit a patient's twin on a stored population and commit it as the patient's next version."""
    out = Output(json)
    with guarded(out, verbose=verbose()):
        events = opt.select_patient(opt.read_events(data, unit, evid_coding), patient, where=str(data))
        with opt.open_store(store, create=False, actor=actor) as twin_store:
            enable_compilation_cache()
            from bayestwin.inference import PopulationFit
            from bayestwin.twin import Twin

            pop = PopulationFit.from_store(twin_store, None if population == "latest" else population)
            the_spec = pop.spec
            if spec is not None and opt.load_spec(spec).digest() != pop.spec.digest():
                from bayestwin.exceptions import SpecError

                raise SpecError(f"the spec in {spec} is not the spec population {pop.version} was fitted with "
                                f"({pop.spec.name!r}); pass that spec, or leave out --spec to use it")
            head = twin_store.head(patient)
            if head is not None:
                out.info(f"patient {patient} has versions 1-{head}; this fit becomes version {head + 1}")
            sampler = opt.make_sampler(chains, warmup, draws, seed, init, progress=opt.progress_bars() and not json)
            twin = Twin(the_spec, population=pop, sampler=sampler, gate=opt.make_gate(max_rhat, min_ess),
                        override_convergence=allow_failed_convergence, update_warmup=update_warmup)
            with out.stage(f"fitting the twin of patient {patient} ({len(events.observations)} observations) on "
                           f"population {pop.version}", spinner=not sampler.progress_bar), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                twin.fit(events)
            _gate_verdict(out, f"the twin of patient {patient}", twin.diagnostics_, allow_failed_convergence)
            version = twin_store.commit_twin(twin, expected_parent=head)
            doc = _twin_doc(twin_store, patient, version, twin)
            out.table(f"Twin of patient {patient}, version {version} (population {pop.version})", doc["parameters"])
            out.print(f"committed version [bold]{version}[/] of patient {patient} ({doc['pseudonym']})")
            if out.json:
                out.emit(doc)


def update_cmd(
    patient: opt.PatientOpt, data: DataOpt, store: opt.StoreOpt = None, unit: opt.UnitOpt = None,
    evid_coding: opt.EvidOpt = opt.EvidCoding.nonmem,
    cold: Annotated[bool, typer.Option("--cold", help="Refit with a full warm-up instead of warm-starting.")] = False,
    allow_failed_convergence: opt.AllowFailedOpt = False, actor: opt.ActorOpt = None, json: opt.JsonOpt = False,
) -> None:
    """Add new rows to a patient's history, update the twin (warm start) and commit the next version."""
    out = Output(json)
    with guarded(out, verbose=verbose()):
        new = opt.select_patient(opt.read_events(data, unit, evid_coding), patient, where=str(data))
        with opt.open_store(store, create=False, actor=actor) as twin_store:
            enable_compilation_cache()
            from bayestwin.twin import Twin

            twin = Twin.from_store(twin_store, patient)
            if twin.sampler is not None:  # NumPyro's bars only where someone watches (a cold refit uses them)
                twin.sampler = replace(twin.sampler, progress_bar=opt.progress_bars() and not json)
            parent = twin.stored_version_
            twin.override_convergence = twin.override_convergence or allow_failed_convergence
            before = len(twin.events_.observations)
            how = "cold refit" if cold else f"warm start, {twin.update_warmup} warm-up iterations"
            with out.stage(f"updating the twin of patient {patient} from version {parent} with {len(new.frame)} new "
                           f"rows ({how})"), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                twin.update(new, warm=not cold)
            out.info(f"fitted: {twin.update_mode_}")
            _gate_verdict(out, f"the updated twin of patient {patient}", twin.diagnostics_, allow_failed_convergence)
            version = twin_store.commit_twin(twin, expected_parent=parent)
            doc = _twin_doc(twin_store, patient, version, twin) | {"mode": twin.update_mode_,
                                                                   "new_observations": len(twin.events_.observations)
                                                                   - before}
            out.table(f"Twin of patient {patient}, version {version} (updated from {parent}: {twin.update_mode_})",
                      doc["parameters"])
            out.print(f"committed version [bold]{version}[/] of patient {patient} (parent {parent})")
            if out.json:
                out.emit(doc)


def forecast_cmd(
    patient: opt.PatientOpt,
    times: Annotated[str, typer.Option("--times", help="Times on the patient's clock, in the spec's time unit: "
                                                       "1,2,4,8.")],
    level: Annotated[list[float] | None, typer.Option("--level", help="Interval probability; repeat for several "
                                                                      "(default: 0.8 and 0.95).")] = None,
    version: Annotated[int | None, typer.Option("--version", min=1, help="Twin version (default: the latest).")
                       ] = None,
    store: opt.StoreOpt = None, seed: opt.SeedOpt = None, allow_failed_convergence: opt.AllowFailedOpt = False,
    actor: opt.ActorOpt = None, json: opt.JsonOpt = False,
) -> None:
    """Forecast a patient from a stored twin version and record the forecast with that version."""
    out = Output(json)
    with guarded(out, verbose=verbose()):
        grid = opt.parse_times(times)
        levels = sorted(set(level or [0.8, 0.95]))
        if any(not 0 < p < 1 for p in levels):
            raise InputError(f"--level must be a probability between 0 and 1 (e.g. --level 0.9), got {levels}")
        with opt.open_store(store, create=False, actor=actor) as twin_store:
            enable_compilation_cache()
            from bayestwin.twin import Twin

            twin = Twin.from_store(twin_store, patient, version)
            with out.stage(f"forecasting patient {patient} from version {twin.stored_version_} at {len(grid)} times"):
                fc = twin.forecast(grid, override_convergence=allow_failed_convergence, seed=seed or 0)
            status = fc.metadata["diagnostics"]["status"]
            if status != "ok":
                out.loud("FORECAST FROM A FAILED FIT (--allow-failed-convergence)",
                         f"the twin (or its population) failed its convergence gate; status {status!r} is recorded "
                         "with the forecast. Its intervals may be wrong.")
            record = twin_store.add_forecast(patient, twin.stored_version_, fc.to_json(sorted({0.5, *levels})))
            rows = _forecast_rows(fc, levels)
            out.table(f"Forecast of patient {patient} from version {twin.stored_version_} (new measurements; "
                      f"time in {fc.time_unit})", rows)
            out.print(f"recorded as forecast {record} of version {twin.stored_version_} (status {status})")
            if out.json:
                out.emit({"ok": True, "patient": patient, "version": twin.stored_version_, "record": record,
                          "status": status, "time_unit": fc.time_unit, "levels": levels, "rows": rows,
                          "provenance": fc.metadata["provenance"]})


def _forecast_rows(fc: Any, levels: list[float]) -> list[dict[str, Any]]:
    base = fc.interval(levels[0])
    rows = [{"time": r["time"], "output": r["output"], "median": r["median"]} for r in base.to_dict("records")]
    for p in levels:
        table = fc.interval(p)
        for row, rec in zip(rows, table.to_dict("records"), strict=True):
            row[f"lower_{p:.0%}"] = rec["lower"]
            row[f"upper_{p:.0%}"] = rec["upper"]
    for row, rec in zip(rows, base.to_dict("records"), strict=True):
        row["unit"] = rec["unit"]
    return rows


def register(app: typer.Typer) -> None:
    """Add the fitting commands to `app`."""
    app.command("fit-population")(fit_population_cmd)
    app.command("fit")(fit_cmd)
    app.command("update")(update_cmd)
    app.command("forecast")(forecast_cmd)
