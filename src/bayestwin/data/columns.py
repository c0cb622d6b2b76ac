"""Canonical columns of the event table: names, aliases, roles and defaults.

The event table follows NONMEM conventions so that data prepared for NONMEM,
Monolix or nlmixr2 read without edits. Any column that is not listed here is
a covariate.

==========  ===========================================================  ==========
column      meaning                                                      default
==========  ===========================================================  ==========
``id``      patient identifier                                           required
``time``    event time (unit declared by the caller)                     required
``evid``    0 observation, 1 dose, 2 other, 3 reset, 4 reset and dose    derived
``amt``     dose amount (unit declared by the caller)                    0
``rate``    infusion rate (amount/time); -1/-2 mean modelled             0
``dur``     infusion duration (time)                                     0
``cmt``     compartment (number or name); 0 means the model's default    0
``ii``      interdose interval for ADDL and SS doses                     0
``addl``    number of additional doses every II after this one           0
``ss``      steady state: 0 no, 1 SS then reset, 2 SS added              0
``dv``      observed value (unit declared by the caller)                 missing
``mdv``     1 when DV must not enter the likelihood                      derived
``cens``    1 DV holds the LLOQ (below), -1 the ULOQ (above), 0 none     0
``limit``   other end of the censoring interval (M4); missing = none     missing
``lloq``    lower limit of quantification of this sample                 missing
``dvid``    which observed output DV measures (1-based; see below)       1
``dvsd``    known SD of this DV (measurement error), in DV units         missing
==========  ===========================================================  ==========

``DVID`` k says that the row measures the k-th observed output of the model spec (the k-th
``ErrorModel`` of ``TwinSpec.error``), so one table can hold, say, concentrations (DVID 1) and a drug
effect (DVID 2). The unit of DV is ``units["dv"]`` for every DVID unless ``units["dv[k]"]`` gives DVID
k its own (e.g. ``units={"dv": "mg/L", "dv[2]": "%"}``).

``DVSD`` is the known standard deviation of the measurement on its row, in the unit of that row's DV
(LIMIT and LLOQ share it too); the ``known_sd`` error model uses it instead of an estimated residual SD.
Like LLOQ it belongs to its own record: it is never carried forward to later rows.

Examples
--------
>>> canonical_name("Conc"), canonical_name("WT")
('dv', None)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CANONICAL",
    "COLUMN_ORDER",
    "INTEGER_COLUMNS",
    "MISSING_TOKENS",
    "ColumnSpec",
    "canonical_name",
]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """What one canonical column is, how sources may spell it and its default."""

    name: str
    aliases: tuple[str, ...]
    description: str
    integer: bool = False
    default: float | None = None


CANONICAL: dict[str, ColumnSpec] = {
    spec.name: spec
    for spec in (
        ColumnSpec("id", ("ID", "SUBJECT", "SUBJ", "PATIENT", "PATIENT_ID", "PTID", "USUBJID"),
                   "patient identifier"),
        ColumnSpec("time", ("TIME",), "event time"),
        ColumnSpec("evid", ("EVID",), "event type", integer=True),
        ColumnSpec("amt", ("AMT", "AMOUNT"), "dose amount", default=0.0),
        ColumnSpec("rate", ("RATE",), "infusion rate", default=0.0),
        ColumnSpec("dur", ("DUR", "DURATION", "TINF"), "infusion duration", default=0.0),
        ColumnSpec("cmt", ("CMT", "COMPARTMENT", "CMPT"), "compartment", integer=True, default=0.0),
        ColumnSpec("ii", ("II", "TAU"), "interdose interval", default=0.0),
        ColumnSpec("addl", ("ADDL",), "additional doses", integer=True, default=0.0),
        ColumnSpec("ss", ("SS",), "steady-state flag", integer=True, default=0.0),
        ColumnSpec("dv", ("DV", "CONC", "CP", "OBS", "Y"), "observed value"),
        ColumnSpec("mdv", ("MDV",), "missing dependent variable flag", integer=True),
        ColumnSpec("cens", ("CENS", "BLQ", "BQL", "CENSORED"), "censoring flag", integer=True,
                   default=0.0),
        ColumnSpec("limit", ("LIMIT",), "other end of the censoring interval"),
        ColumnSpec("lloq", ("LLOQ", "LOQ"), "lower limit of quantification"),
        ColumnSpec("dvid", ("DVID", "YTYPE", "OUTPUT"), "observed output", integer=True, default=1.0),
        ColumnSpec("dvsd", ("DVSD",), "known SD of the observation (measurement error)"),
    )
}

#: Canonical column order of ``EventTable.frame``; covariates follow.
COLUMN_ORDER: tuple[str, ...] = tuple(CANONICAL)

#: Columns whose values must be whole numbers.
INTEGER_COLUMNS: frozenset[str] = frozenset(n for n, s in CANONICAL.items() if s.integer)

#: Cell contents that mean "missing" in every reader (after stripping blanks).
MISSING_TOKENS: frozenset[str] = frozenset({"", ".", "NA", "N/A", "NaN", "nan", "NAN", "na", "null", "NULL"})

_ALIASES: dict[str, str] = {
    alias.upper(): spec.name for spec in CANONICAL.values() for alias in (spec.name, *spec.aliases)
}


def canonical_name(source_name: str) -> str | None:
    """Canonical column for a source column name, or None for a covariate.

    Matching is case-insensitive and ignores surrounding blanks.

    Examples
    --------
    >>> canonical_name(" amt "), canonical_name("Subject"), canonical_name("APGR")
    ('amt', 'id', None)
    """
    return _ALIASES.get(source_name.strip().upper())
