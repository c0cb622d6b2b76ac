"""Options shared by the store commands, and turning them into bayestwin objects with clear errors.

Every problem with what was given -- no store, a missing file, an unknown patient, a malformed number --
raises ``InputError`` (exit status 2) naming the option and how to fix it.

Examples
--------
>>> parse_times("0.5, 1,2,4")
[0.5, 1.0, 2.0, 4.0]
>>> parse_units(["time=h", "dv = mg/L"])
{'time': 'h', 'dv': 'mg/L'}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bayestwin.exceptions import InputError

if TYPE_CHECKING:  # pragma: no cover
    from bayestwin.data import EventTable
    from bayestwin.diagnostics import ConvergenceGate
    from bayestwin.inference import SamplerConfig
    from bayestwin.store import TwinStore

__all__ = ["load_spec", "make_gate", "make_sampler", "open_store", "parse_times", "parse_units", "read_events",
           "select_patient"]

STORE_ENV = "BAYESTWIN_STORE"


class EvidCoding(StrEnum):
    """EVID coding of a data file (``read_nonmem(evid_coding=...)``)."""

    nonmem = "nonmem"
    rxode2 = "rxode2"


class Init(StrEnum):
    """How chains start (``SamplerConfig.init``)."""

    optimize = "optimize"
    prior = "prior"


# --- option types (typer.Option in Annotated metadata: typed, documented once) ----------------------------
StoreOpt = Annotated[Path | None, typer.Option(
    "--store", envvar=STORE_ENV, show_envvar=True, file_okay=False,
    help="Twin store directory (keys from BAYESTWIN_PSEUDONYM_KEY[_FILE], BAYESTWIN_ENCRYPTION_KEY[_FILE]).")]
PatientOpt = Annotated[str, typer.Option("--patient", help="The patient's own id, as in the data's ID column.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (messages go to stderr).")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Who acts, for the audit trail "
                                                              "(default: BAYESTWIN_ACTOR or the login name).")]
UnitOpt = Annotated[list[str] | None, typer.Option(
    "--unit", metavar="COLUMN=UNIT",
    help="Declare a unit, e.g. --unit time=h --unit amt=mg --unit dv=mg/L (default: the <file>.units.json sidecar).")]
EvidOpt = Annotated[EvidCoding, typer.Option("--evid-coding", help="EVID coding of the file.")]
ChainsOpt = Annotated[int | None, typer.Option("--chains", min=1, help="NUTS chains (default: 4).",
                                               rich_help_panel="Sampler")]
WarmupOpt = Annotated[int | None, typer.Option("--warmup", min=1, help="Warm-up iterations per chain (default: 1000).",
                                               rich_help_panel="Sampler")]
DrawsOpt = Annotated[int | None, typer.Option("--draws", min=1, help="Draws per chain (default: 1000).",
                                              rich_help_panel="Sampler")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (default: 0).", rich_help_panel="Sampler")]
InitOpt = Annotated[Init | None, typer.Option(
    "--init", help="Chain starts: optimised from the prior, or drawn near the prior (default: optimize).",
    rich_help_panel="Sampler")]
MaxRhatOpt = Annotated[float | None, typer.Option("--max-rhat", help="Convergence gate: largest R-hat (default: 1.01).",
                                                  rich_help_panel="Convergence gate")]
MinEssOpt = Annotated[float | None, typer.Option(
    "--min-ess", help="Convergence gate: smallest bulk and tail ESS (default: 400).",
    rich_help_panel="Convergence gate")]
AllowFailedOpt = Annotated[bool, typer.Option(
    "--allow-failed-convergence",
    help="Go on with a fit that failed its convergence gate (committed and marked failed; exit 0) "
         "instead of exiting with status 3.", rich_help_panel="Convergence gate")]


# --- turning options into objects ---------------------------------------------------------------------
def open_store(path: Path | None, *, create: bool = False, actor: str | None = None) -> TwinStore:
    """Open the store at `path` (``--store`` or ``BAYESTWIN_STORE``); ``create`` a new one if missing."""
    if path is None:
        raise InputError(f"no twin store given: pass --store DIR or set {STORE_ENV}=DIR")
    from bayestwin.store import TwinStore

    return TwinStore.open(path, create=create, actor=actor)


def parse_units(pairs: Sequence[str] | None) -> dict[str, str] | None:
    """``["time=h", ...]`` as a mapping; ``None`` when none were given (the reader uses the sidecar)."""
    if not pairs:
        return None
    units: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"--unit expects COLUMN=UNIT (e.g. --unit time=h), got {pair!r}")
        key, value = pair.split("=", 1)
        units[key.strip()] = value.strip()
    return units


def read_events(path: Path, units: Sequence[str] | None, evid_coding: EvidCoding | str = "nonmem") -> EventTable:
    """Read and validate a NONMEM-style CSV (units from `units` or the ``<file>.units.json`` sidecar)."""
    from bayestwin.data import read_nonmem

    if not Path(path).is_file():
        raise InputError(f"data file {path} not found; pass --data with a NONMEM-style CSV file")
    declared = parse_units(units)
    sidecar = Path(str(path) + ".units.json")
    if declared is None and not sidecar.is_file():
        raise InputError(f"no units for {path}: declare them with --unit (e.g. --unit time=h --unit amt=mg "
                         f"--unit dv=mg/L) or put them in the sidecar {sidecar.name}")
    return read_nonmem(path, units=declared, evid_coding=EvidCoding(evid_coding).value)  # type: ignore[arg-type]


def select_patient(table: EventTable, patient: str, *, where: str) -> EventTable:
    """The rows of `patient` (compared as text, as the store does) in `table`."""
    matches = [p for p in table.patients if str(p) == str(patient)]
    if not matches:
        shown = ", ".join(str(p) for p in table.patients[:10]) + (" ..." if table.n_patients > 10 else "")
        raise InputError(f"patient {patient!r} is not in {where} (patients: {shown}); check --patient and the file")
    return table.patient(matches[0])


def load_spec(path: Path) -> Any:
    """The ``spec()`` of a Python spec file; ``InputError`` if it is missing or fails to load."""
    from bayestwin.cli.demo import load_spec_file
    from bayestwin.exceptions import BayestwinError

    if not Path(path).is_file():
        raise InputError(f"spec file {path} not found; pass --spec with a Python file defining spec() "
                         "(e.g. model_specs/theophylline.py)")
    try:
        return load_spec_file(path)
    except BayestwinError:
        raise
    except Exception as err:  # the user's own code: report it as bad input, with its error
        raise InputError(f"could not load the spec from {path}: {type(err).__name__}: {err}. The file must define "
                         "spec() returning a TwinSpec.") from err


def make_sampler(chains: int | None, warmup: int | None, draws: int | None, seed: int | None,
                 init: Init | str | None = None, *, progress: bool = False) -> SamplerConfig:
    """``SamplerConfig.default()`` with the given options changed."""
    from bayestwin.inference import SamplerConfig

    changes = {k: v for k, v in {"chains": chains, "warmup": warmup, "draws": draws, "seed": seed,
                                 "init": None if init is None else Init(init).value}.items() if v is not None}
    return SamplerConfig.default(progress_bar=progress, **changes)


def make_gate(max_rhat: float | None, min_ess: float | None) -> ConvergenceGate | None:
    """The default convergence gate with the given thresholds changed (``None``: all defaults)."""
    if max_rhat is None and min_ess is None:
        return None
    from bayestwin.diagnostics import ConvergenceGate

    changes: dict[str, float] = {}
    if max_rhat is not None:
        changes["max_rhat"] = max_rhat
    if min_ess is not None:
        changes |= {"min_ess_bulk": min_ess, "min_ess_tail": min_ess}
    return ConvergenceGate(**changes)


def parse_times(text: str) -> list[float]:
    """``"1,2,4,8"`` as floats (``InputError`` naming the bad entry)."""
    times = []
    for item in text.split(","):
        try:
            value = float(item.strip())
        except ValueError as err:
            raise InputError(f"--times expects numbers separated by commas (e.g. --times 1,2,4,8), "
                             f"got {item!r}") from err
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(f"--times must be finite numbers, got {item!r}")
        times.append(value)
    return times


def progress_bars() -> bool:
    """Whether to show NumPyro's per-chain sampling bars: when stderr is a terminal (not in logs or pipes)."""
    return os.isatty(2) if hasattr(os, "isatty") else False
