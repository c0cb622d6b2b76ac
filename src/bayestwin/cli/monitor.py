"""``bayestwin monitor replay FILE``: replay a vital-sign stream through a monitoring twin, live.

The stream (CSV/tidy table read by ``monitor.streams.read_streams``, or a FHIR R4 bundle ``*.json`` read by
``monitor.fhir.read_fhir_streams``) is split at ``--fit-hours``: each signal's state-space model is fitted
by NUTS on the readings before it under the declared fit policy (``monitor.fit_policy``: one refit of a
fit that fails its gate), then the rest is fed to ``MonitorTwin.observe`` in batches of ``--batch-hours``
**in order of arrival** (``received_h``: a late reading arrives in a later batch and makes the twin refilter).
A live rich display shows, per patient and signal, the last reading, its 90 % predictive band, the filtered
level and the largest alert probability, with the latest alerts underneath. At the end: a table of the
alerts, the flagged rows (never dropped: listed), alert rates per patient-day, and optionally the alert
records as JSON lines (``--alerts-out``) and one plot per patient (``--plot-dir``).

A signal whose fit still fails its convergence gate stops the replay with exit status 3 unless
``--allow-failed-convergence`` (then every alert from it says so). The JAX persistent compilation cache is on.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from bayestwin.cli.errors import guarded
from bayestwin.cli.jaxcache import enable_compilation_cache
from bayestwin.cli.output import Output, fmt
from bayestwin.cli.state import verbose
from bayestwin.exceptions import ConvergenceError, ConvergenceWarning, InputError

__all__ = ["parse_threshold", "register", "replay_cmd"]

_THRESHOLD = re.compile(r"^\s*([a-z_0-9]+)\s*([<>])\s*([-+0-9.eE]+)\s*$")


def parse_threshold(text: str, horizon_h: float = 6.0) -> Any:
    """``"glucose<70"`` -> ``Crossing("glucose", 70.0, above=False, horizon_h)`` (an extra crossing alert).

    Examples
    --------
    >>> parse_threshold("sbp > 160")
    Crossing(signal='sbp', threshold=160.0, above=True, horizon_h=6.0)
    """
    from bayestwin.monitor.scoring import Crossing

    match = _THRESHOLD.match(text)
    if not match:
        raise InputError(f"--threshold {text!r}: write SIGNAL<VALUE or SIGNAL>VALUE, e.g. glucose<70 or sbp>180")
    return Crossing(match[1], float(match[3]), above=match[2] == ">", horizon_h=horizon_h)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such file; give a CSV of observations or a FHIR R4 bundle (.json)")
    if path.suffix.lower() == ".json":
        from bayestwin.monitor.fhir import read_fhir_streams

        return read_fhir_streams(path)
    from bayestwin.monitor.streams import read_streams

    return read_streams(path)


def _latest(scores: Any) -> list[dict[str, Any]]:
    """One row per (patient, signal): the last scored reading and the largest probability at that time."""
    if scores.empty:
        return []
    last = scores.sort_values("time_h", kind="stable").groupby(["patient", "signal"], sort=True).tail(1)
    top = scores.merge(last[["patient", "signal", "time_h"]], on=["patient", "signal", "time_h"])
    best = top.groupby(["patient", "signal"])["probability"].max()
    return [{"patient": r.patient, "signal": r.signal, "time_h": r.time_h, "reading": r.value,
             "band_90": f"{r.pred_lower:.4g} - {r.pred_upper:.4g}", "level": r.now,
             "P_max": best.get((r.patient, r.signal))} for r in last.sort_values(["patient", "signal"]).itertuples()]


def _view(rows: list[dict[str, Any]], alerts: list[str], clock: float, done: int, total: int) -> Any:
    from rich.console import Group
    from rich.table import Table

    table = Table(title=f"replay at t = {clock:.1f} h ({done}/{total} readings)", expand=False)
    for col in ("patient", "signal", "time_h", "reading", "band_90", "level", "P_max"):
        table.add_column(col, justify="left" if col in ("patient", "signal", "band_90") else "right")
    for r in rows:
        p = r["P_max"]
        style = "bold red" if p is not None and p >= 0.8 else ("yellow" if p is not None and p >= 0.5 else "")
        table.add_row(*(fmt(r[c]) for c in ("patient", "signal", "time_h", "reading", "band_90", "level", "P_max")),
                      style=style)
    recent = Table(title="latest alerts", show_header=False, expand=False)
    recent.add_column("alert")
    for line in alerts[-8:] or ["(none yet)"]:
        recent.add_row(line)
    return Group(table, recent)


def replay_cmd(
    file: Annotated[Path, typer.Argument(help="Observations: CSV (patient, timestamp, signal or loinc, value, unit; "
                                              "optional device, received) or a FHIR R4 bundle (.json).")],
    signal: Annotated[list[str] | None, typer.Option("--signal", help="Signal to model (repeat; default: all).")
                      ] = None,
    fit_hours: Annotated[float, typer.Option("--fit-hours", min=1.0, help="Fit the models on the first H hours.")
                         ] = 48.0,
    batch_hours: Annotated[float, typer.Option("--batch-hours", min=0.01, help="Replay in batches of H hours of "
                                                                                "arrival time.")] = 6.0,
    level: Annotated[float, typer.Option("--level", min=0.0, max=1.0, help="Alert when a probability reaches it.")
                     ] = 0.8,
    dedup_hours: Annotated[float, typer.Option("--dedup-hours", min=0.0, help="No repeat alert within H hours.")
                           ] = 12.0,
    threshold: Annotated[list[str] | None, typer.Option(
        "--threshold", help="Extra crossing alert, e.g. glucose<70 (repeat).")] = None,
    chains: Annotated[int, typer.Option("--chains", min=1, rich_help_panel="Sampler")] = 4,
    warmup: Annotated[int, typer.Option("--warmup", min=1, rich_help_panel="Sampler")] = 500,
    draws: Annotated[int, typer.Option("--draws", min=1, rich_help_panel="Sampler")] = 750,
    refit: Annotated[bool, typer.Option("--refit/--no-refit", rich_help_panel="Sampler",
                                        help="Refit a failing fit once at twice the length (the fit policy).")] = True,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel="Sampler")] = 0,
    allow_failed_convergence: Annotated[bool, typer.Option("--allow-failed-convergence", help="Replay even if a "
                                                           "fit failed its gate; its alerts say so.")] = False,
    alerts_out: Annotated[Path | None, typer.Option("--alerts-out", help="Write the alert records (JSON lines).")
                          ] = None,
    plot_dir: Annotated[Path | None, typer.Option("--plot-dir", help="One PNG per patient: signals, bands, "
                                                  "flags, alerts (needs the plot extra).")] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Live display (default: on a terminal).")] = True,
    delay: Annotated[float, typer.Option("--delay", min=0.0, help="Seconds to pause between batches.")] = 0.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
) -> None:
    """Replay a vital-sign stream through a monitoring twin with a live display of signals, bands and alerts."""
    out = Output(json_out)
    with guarded(out, verbose=verbose()):
        enable_compilation_cache()
        from bayestwin.inference.sampler import SamplerConfig
        from bayestwin.monitor.alerts import AlertPolicy
        from bayestwin.monitor.fit_policy import FitPolicy, fit_cohort
        from bayestwin.monitor.scoring import DEFAULT_CROSSINGS
        from bayestwin.monitor.streams import flag_report, usable
        from bayestwin.monitor.twin import MonitorTwin

        frame = _read(file)
        extra = tuple(parse_threshold(t) for t in threshold or ())
        ok = usable(frame)
        signals = tuple(signal) if signal else tuple(sorted(ok["signal"].unique()))
        unknown = sorted(set(signals) - set(ok["signal"]))
        if unknown:
            raise InputError(f"--signal {unknown}: not in {file} (usable signals: {sorted(ok['signal'].unique())})")
        history = ok[ok["time_h"] < fit_hours]
        lacking = [s for s in signals if (history["signal"] == s).sum() == 0]
        if lacking:
            raise InputError(f"no usable {lacking} readings in the first {fit_hours:g} h of {file}: nothing to fit "
                             "on; raise --fit-hours or leave those signals out (--signal)")
        first = SamplerConfig(chains=chains, warmup=warmup, draws=draws, seed=seed, init="prior")
        policy = FitPolicy(first=first, retry=(SamplerConfig(chains=chains, warmup=2 * warmup, draws=2 * draws,
                                                             seed=seed, init="prior") if refit else None))
        with out.stage(f"fitting {len(signals)} signal model(s) on the first {fit_hours:g} h "
                       f"({history['patient'].nunique()} patients; {policy.describe()})"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported below
            fits = fit_cohort(history, signals, policy)
        for a in fits.attempts:
            mark = "[green]✓[/]" if a.ok else "[red]✗[/]"
            out.info(f"{mark} {a.signal} (attempt {a.attempt}): max R-hat {a.max_rhat:.3f}, min ESS {a.min_ess:.0f}, "
                     f"{a.divergences} divergences, {a.wall_time_s:.0f} s")
        if not fits.valid:
            failed = ", ".join(fits.failed)
            if not allow_failed_convergence:
                raise ConvergenceError(f"the model(s) of {failed} FAILED their convergence gate under the fit "
                                       f"policy ({policy.describe()}); no alerts were computed. Rerun with more "
                                       "--warmup/--draws, or pass --allow-failed-convergence to replay anyway "
                                       "(every alert from those models then says so).")
            out.loud("FAILED CONVERGENCE -- replaying anyway (--allow-failed-convergence)",
                     f"the model(s) of {failed} failed their gate: their probabilities may be wrong with confident "
                     "intervals; every alert from them is marked.")
        twin = MonitorTwin(signals, crossings=DEFAULT_CROSSINGS + extra,
                           policy=AlertPolicy(level, level / 2, dedup_hours), seed=seed, bands=True)
        with out.stage("filtering the fit window"):
            twin.fit(history, fits=fits.fits)
        rest = ok[(ok["time_h"] >= fit_hours) & ok["signal"].isin(signals)]
        arrival = rest["received_h"].where(rest["received_h"].notna(), rest["time_h"])
        lines: list[str] = []
        started, done = time.perf_counter(), 0
        edges = list(_batch_edges(float(arrival.min()) if len(rest) else fit_hours, float(arrival.max()) if len(rest)
                                  else fit_hours, batch_hours))

        def step(lo: float, hi: float) -> None:
            nonlocal done
            batch = rest[(arrival >= lo) & (arrival < hi)]
            if len(batch):
                raised = twin.observe(batch)
                done += len(batch)
                for r in raised.itertuples():
                    lines.append(f"t={r.time_h:.1f} h  {r.patient}  {r.signal} {r.kind}  P={r.probability:.2f}")

        use_live = live and not json_out and out.err.is_terminal
        if use_live:
            from rich.live import Live

            with Live(_view([], lines, fit_hours, 0, len(rest)), console=out.err, refresh_per_second=4) as view:
                for lo, hi in edges:
                    step(lo, hi)
                    view.update(_view(_latest(twin.scores_), lines, hi, done, len(rest)))
                    time.sleep(delay)
        else:
            for lo, hi in edges:
                step(lo, hi)
                time.sleep(delay)
            out.info(f"replayed {done} readings in {len(edges)} batches ({time.perf_counter() - started:.1f} s)")
        _report(out, frame, twin, fits, history, rest, alerts_out, plot_dir, file, flag_report(frame), fit_hours)


def _batch_edges(start: float, stop: float, width: float) -> list[tuple[float, float]]:
    """Half-open arrival windows [lo, hi) of `width` hours covering [start, stop] (the last one closed)."""
    n = max(1, int((stop - start) // width) + 1)
    return [(start + i * width, start + (i + 1) * width if i < n - 1 else float("inf")) for i in range(n)]


def _report(out: Output, frame: Any, twin: Any, fits: Any, history: Any, rest: Any, alerts_out: Path | None,
            plot_dir: Path | None, file: Path, flags: Any, fit_hours: float) -> None:
    alerts = twin.alerts()
    records = [a.to_dict() for a in twin.alert_records()]
    days = float(rest.groupby("patient")["time_h"].agg(lambda t: t.max() - t.min()).sum() / 24.0) if len(rest) else 0.0
    rate = len(alerts) / days if days > 0 else float("nan")
    out.table(f"Alerts ({len(alerts)}; {rate:.3g} per patient-day over {days:.1f} patient-days replayed)",
              [{k: r[k] for k in ("patient", "signal", "kind", "time_h", "probability", "lower", "upper",
                                  "fit_ok")} | {"explanation": r["explanation"]} for r in records])
    counts = flags["status"].value_counts().to_dict() if len(flags) else {}
    out.table(f"Flagged rows ({len(flags)} of {len(frame)}: kept in the record, not used by the models)",
              [{"source": r.source, "signal": r.signal, "status": r.status, "reason": r.reason}
               for r in flags.head(50).itertuples()])
    if alerts_out is not None:
        alerts_out.write_text("".join(json.dumps(r, default=str) + "\n" for r in records))
        out.info(f"wrote {len(records)} alert records to {alerts_out}")
    plots = []
    if plot_dir is not None:
        from bayestwin.plotting.monitor import plot_monitor

        plot_dir.mkdir(parents=True, exist_ok=True)
        scores = twin.scores()
        for patient in sorted(scores["patient"].astype(str).unique()):
            path = plot_dir / f"monitor_{re.sub(r'[^A-Za-z0-9_.-]', '_', patient)}.png"
            plot_monitor(scores, patient, stream=frame, alerts=alerts, fit_hours=fit_hours, path=path)
            plots.append(str(path))
        out.info(f"wrote {len(plots)} plots to {plot_dir}")
    if out.json:
        out.emit({"ok": True, "file": str(file), "rows": len(frame), "fit_rows": len(history),
                  "replayed_rows": len(rest), "flagged": counts, "fits_valid": fits.valid,
                  "fits": [{"signal": a.signal, "attempt": a.attempt, "ok": a.ok, "max_rhat": a.max_rhat,
                            "min_ess": a.min_ess, "divergences": a.divergences} for a in fits.attempts],
                  "patient_days": days, "alerts_per_patient_day": rate, "alerts": records, "plots": plots})


def register(app: typer.Typer) -> None:
    """Add the ``monitor`` command group (``monitor replay``) to `app`.

    Examples
    --------
    >>> demo = typer.Typer()
    >>> register(demo)
    >>> [g.name for g in demo.registered_groups]
    ['monitor']
    """
    group = typer.Typer(name="monitor", help="Remote monitoring: replay vital-sign streams through a twin.",
                        no_args_is_help=True)
    group.command("replay")(replay_cmd)
    app.add_typer(group, name="monitor")
