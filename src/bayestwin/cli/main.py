"""Entry point of the ``bayestwin`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from bayestwin.exceptions import BayestwinError

__all__ = ["main"]


def _units(pairs: Sequence[str]) -> dict[str, str]:
    units: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--unit expects COLUMN=UNIT (e.g. --unit time=h), got {pair!r}")
        key, value = pair.split("=", 1)
        units[key.strip()] = value.strip()
    return units


def _cmd_validate(args: argparse.Namespace) -> int:
    from bayestwin.data import validate

    units: dict[str, str] | str | None = _units(args.unit) if args.unit else None
    report = validate(args.path, units=units, evid_coding=args.evid_coding,
                      assume_timezone=args.assume_timezone)
    if args.json:
        print(report.violations.to_json(orient="records", indent=2))
    else:
        print(report.format(limit=args.limit))
    return 0 if report.ok else 1


def _cmd_rules(args: argparse.Namespace) -> int:
    from bayestwin.data import rule_table

    table = rule_table()
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2))
    else:
        for rec in table.itertuples(index=False):
            print(f"{rec.id}  {rec.severity:<7}  {rec.stage:<5}  {rec.title}")
        print(f"\n{len(table)} rules")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from bayestwin.cli.demo import run_demo

    return run_demo(args.spec, output=args.output)


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from bayestwin.cli.demo_data import run_data_demo

    return run_data_demo(output=args.output)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayestwin`` command."""
    parser = argparse.ArgumentParser(prog="bayestwin", description="Bayesian digital twins of patients.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the end-to-end twin demo on the bundled theophylline data")
    demo.add_argument("--spec", default="model_specs/theophylline.py", help="Python file defining spec()")
    demo.add_argument("--output", default="demo_output", help="folder for the demo's files")
    demo.set_defaults(func=_cmd_demo)

    demo_data = sub.add_parser("demo-data", help="the data-foundation demo: readers, validation, round trip")
    demo_data.add_argument("--output", default="demo_output", help="folder for the demo's files")
    demo_data.set_defaults(func=_cmd_demo_data)

    val = sub.add_parser("validate", help="check a NONMEM-style CSV and list every problem")
    val.add_argument("path", help="CSV file (units from --unit or the <file>.units.json sidecar)")
    val.add_argument("--unit", action="append", default=[], metavar="COLUMN=UNIT",
                     help="declare a unit, e.g. --unit time=h --unit amt=mg --unit dv=mg/L")
    val.add_argument("--evid-coding", choices=["nonmem", "rxode2"], default="nonmem")
    val.add_argument("--assume-timezone", default=None, help="IANA zone for naive date-times")
    val.add_argument("--limit", type=int, default=200, help="show at most this many problems")
    val.add_argument("--json", action="store_true", help="print the violations as JSON")
    val.set_defaults(func=_cmd_validate)

    rules = sub.add_parser("rules", help="list every validation rule")
    rules.add_argument("--json", action="store_true")
    rules.set_defaults(func=_cmd_rules)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bayestwin`` command line; return the exit status.

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
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except BayestwinError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
