"""Entry point of the ``bayestwin`` command (typer + rich); see ``docs/cli.md``.

Commands: ``demo``, ``demo-data``, ``validate``, ``rules`` (data and demos), and on a twin store
``fit-population``, ``fit``, ``update``, ``forecast``, ``history``, ``audit verify``, ``export``; and
``monitor replay`` (a vital-sign stream through a monitoring twin).
Exit codes: 0 ok, 1 unexpected, 2 bad input, 3 failed convergence, 4 store error
(:mod:`bayestwin.cli.errors`). Tests drive it with ``typer.testing.CliRunner(app)`` or :func:`main`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from bayestwin.cli import fitting, monitor, records, serve
from bayestwin.cli.errors import EXIT_CODES_HELP, INTERRUPTED, USAGE_ERRORS, guarded
from bayestwin.cli.inputs import EvidCoding, parse_units
from bayestwin.cli.output import Output
from bayestwin.cli.state import set_verbose, verbose

__all__ = ["app", "main"]

app = typer.Typer(name="bayestwin", help="Bayesian digital twins of patients.", epilog=EXIT_CODES_HELP,
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _show_version(value: bool) -> None:
    if value:
        import bayestwin

        typer.echo(f"bayestwin {bayestwin.__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose_: Annotated[bool, typer.Option("-v", "--verbose", help="Log progress to stderr; tracebacks on errors.")
                        ] = False,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Bayesian digital twins of patients."""
    set_verbose(verbose_)
    logging.basicConfig(level=logging.INFO if verbose_ else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command("demo")
def demo_cmd(
    spec: Annotated[str, typer.Option("--spec", help="Python file defining spec().")] = "model_specs/theophylline.py",
    output: Annotated[str, typer.Option("--output", help="Folder for the demo's files.")] = "demo_output",
) -> None:
    """Run the end-to-end twin demo on the bundled theophylline data."""
    with guarded(Output(), verbose=verbose()):
        from bayestwin.cli.demo import run_demo
        from bayestwin.cli.jaxcache import enable_compilation_cache

        enable_compilation_cache()
        code = run_demo(spec, output=output)
    if code:
        raise typer.Exit(code)


@app.command("demo-data")
def demo_data_cmd(
    output: Annotated[str, typer.Option("--output", help="Folder for the demo's files.")] = "demo_output",
) -> None:
    """The data-foundation demo: readers, validation, round trip."""
    with guarded(Output(), verbose=verbose()):
        from bayestwin.cli.demo_data import run_data_demo

        code = run_data_demo(output=output)
    if code:
        raise typer.Exit(code)


@app.command("validate")
def validate_cmd(
    path: Annotated[str, typer.Argument(help="CSV file (units from --unit or the <file>.units.json sidecar).")],
    unit: Annotated[list[str] | None, typer.Option(
        "--unit", metavar="COLUMN=UNIT", help="Declare a unit, e.g. --unit time=h --unit amt=mg --unit dv=mg/L.")
                    ] = None,
    evid_coding: Annotated[EvidCoding, typer.Option("--evid-coding")] = EvidCoding.nonmem,
    assume_timezone: Annotated[str | None, typer.Option("--assume-timezone",
                                                        help="IANA zone for naive date-times.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many problems.")] = 200,
    json_out: Annotated[bool, typer.Option("--json", help="Print the violations as JSON.")] = False,
) -> None:
    """Check a NONMEM-style CSV and list every problem (exit 1 if it breaks a rule)."""
    with guarded(Output(json_out), verbose=verbose()):
        from bayestwin.data import validate

        report = validate(path, units=parse_units(unit), evid_coding=evid_coding.value,
                          assume_timezone=assume_timezone)
        if json_out:
            print(report.violations.to_json(orient="records", indent=2))
        else:
            print(report.format(limit=limit))
    if not report.ok:
        raise typer.Exit(1)


@app.command("rules")
def rules_cmd(json_out: Annotated[bool, typer.Option("--json", help="Print the rules as JSON.")] = False) -> None:
    """List every validation rule."""
    from bayestwin.data import rule_table

    table = rule_table()
    if json_out:
        print(json.dumps(table.to_dict(orient="records"), indent=2))
        return
    for rec in table.itertuples(index=False):
        print(f"{rec.id}  {rec.severity:<7}  {rec.stage:<5}  {rec.title}")
    print(f"\n{len(table)} rules")


fitting.register(app)
monitor.register(app)
records.register(app)
serve.register(app)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayestwin`` command line; return the exit status (see ``bayestwin --help``).

    Examples
    --------
    >>> main(["rules"])  # doctest: +ELLIPSIS
    C001  error    table  a required covariate has no value for a dose or observation
    ...
    D001  error    table  a dose has an amount <= 0
    ...
    <BLANKLINE>
    ... rules
    0
    >>> main(["history"])  # no --patient: a usage error, exit status 2  # doctest: +SKIP
    2
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="bayestwin", standalone_mode=False)
    except typer.Exit as err:
        return int(err.exit_code)
    except USAGE_ERRORS as err:  # usage errors: unknown command or option, missing option (exit 2)
        err.show()  # type: ignore[attr-defined]
        return int(getattr(err, "exit_code", 2))
    except typer.Abort:
        return INTERRUPTED
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
