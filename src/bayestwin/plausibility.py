"""Plausible ranges of covariates and vital signs, and recognition of covariate column names.

Used by the data validation rules to flag the classic mix-ups (pounds for kilograms, degF for degC, mg/dL for
mmol/L): a value outside its range, converted into the column's unit, is suspicious. Split from
``bayestwin.units``, whose conversions it uses.

Examples
--------
>>> from bayestwin.plausibility import descriptor_for, plausible_range
>>> descriptor_for("WT_KG"), plausible_range("body weight", "g")
('body weight', (200.0, 400000.0))
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

from bayestwin.exceptions import UnitError
from bayestwin.units import _EXAMPLES, convert, kind_of, parse_unit

__all__ = ["MOLAR_MASSES", "PLAUSIBLE_RANGES", "descriptor_for", "plausible_range"]


# descriptor -> (unit, low, high); values outside flag the classic mix-ups (lb for kg, degF for degC, ...).
PLAUSIBLE_RANGES: Mapping[str, tuple[str, float, float]] = MappingProxyType({
    "body weight": ("kg", 0.2, 400.0), "height": ("cm", 20.0, 260.0), "age": ("year", 0.0, 125.0),
    "apgar score": ("dimensionless", 0.0, 10.0), "serum creatinine": ("mg/dL", 0.05, 30.0),
    "creatinine clearance": ("mL/min", 1.0, 300.0), "glucose": ("mg/dL", 10.0, 1500.0),
    "heart rate": ("bpm", 15.0, 350.0), "systolic blood pressure": ("mmHg", 40.0, 300.0),
    "diastolic blood pressure": ("mmHg", 20.0, 200.0), "body temperature": ("degC", 15.0, 45.0),
    "albumin": ("g/dL", 0.5, 8.0), "bilirubin": ("mg/dL", 0.05, 60.0),
})  # fmt: skip
# g/mol, so that these analytes' ranges can be asked for in molar units (mmol/L, umol/L).
MOLAR_MASSES: Mapping[str, float] = MappingProxyType(
    {"glucose": 180.156, "serum creatinine": 113.12, "bilirubin": 584.66}
)
_COLUMNS = {
    "body weight": "WT WEIGHT BW WGT BWT BODYWEIGHT", "height": "HT HEIGHT HGT", "age": "AGE",
    "apgar score": "APGR APGAR", "serum creatinine": "SCR CREAT SCREAT CREATININE",
    "creatinine clearance": "CRCL CLCR", "glucose": "GLU GLUCOSE GL GLUC GLUCOSE_MG_DL",
    "heart rate": "HR HEART_RATE HEARTRATE PULSE", "systolic blood pressure": "SBP SYSBP SYSTOLIC",
    "diastolic blood pressure": "DBP DIABP DIASTOLIC", "body temperature": "TEMP TEMPERATURE",
    "albumin": "ALB ALBUMIN", "bilirubin": "BILI BILIRUBIN TBIL",
}  # fmt: skip
_DESCRIPTOR_BY_COLUMN = {a: d for d, names in _COLUMNS.items() for a in [*names.split(), d.upper().replace(" ", "_")]}
# Trailing column-name tokens that only give a unit or say "baseline": WT_KG, SCR_UMOL_L, HR_BL.
_SUFFIXES = frozenset({
    "KG", "G", "LB", "LBS", "CM", "M", "MM", "IN", "Y", "YR", "YRS", "YEAR", "YEARS", "MO", "MONTHS", "MG",
    "DL", "L", "ML", "MMOL", "UMOL", "GDL", "MGDL", "MMOLL", "UMOLL", "MIN", "MLMIN", "BPM", "MMHG", "C",
    "F", "DEGC", "DEGF", "K", "PER", "BL", "BASE", "BASELINE",
})  # fmt: skip


def descriptor_for(column_name: str) -> str | None:
    """Recognise a covariate column name; return its ``PLAUSIBLE_RANGES`` key or ``None``.

    Matching ignores case and punctuation, and trailing unit or baseline tokens
    (``WT_KG``, ``SCR_UMOL_L``, ``HR_BL``).

    Examples
    --------
    >>> descriptor_for("wt"), descriptor_for("Glucose (mg/dL)"), descriptor_for("DOSE")
    ('body weight', 'glucose', None)
    """
    key = re.sub(r"[^A-Z0-9]+", "_", str(column_name).upper()).strip("_")
    while key not in _DESCRIPTOR_BY_COLUMN and "_" in key:
        key, _, tail = key.rpartition("_")
        if tail not in _SUFFIXES:
            return None
    return _DESCRIPTOR_BY_COLUMN.get(key)


def plausible_range(descriptor: str, unit: str) -> tuple[float, float]:
    """Return the plausible ``(low, high)`` of a quantity, converted into ``unit``.

    ``descriptor`` is a ``PLAUSIBLE_RANGES`` key or a column name that
    ``descriptor_for`` recognises. Molar units work for the analytes in
    ``MOLAR_MASSES`` (glucose, serum creatinine, bilirubin).

    Raises
    ------
    UnitError
        If the descriptor is unknown or ``unit`` is of another kind than the quantity.

    Examples
    --------
    >>> plausible_range("body weight", "g")
    (200.0, 400000.0)
    >>> plausible_range("GLU", "mmol/L")
    (0.555..., 83.26...)
    """
    key = descriptor if descriptor in PLAUSIBLE_RANGES else descriptor_for(descriptor)
    if key is None:
        raise UnitError(f"unknown quantity {descriptor!r}; known: {', '.join(PLAUSIBLE_RANGES)}.")
    base, low, high = PLAUSIBLE_RANGES[key]
    where = f"plausible range of {key!r}"
    parse_unit(unit, where=where)
    try:
        out = convert(np.array([low, high]), base, unit, molar_mass=MOLAR_MASSES.get(key), where=where)
    except UnitError as exc:
        kind = kind_of(base)
        raise UnitError(
            f"{where}: cannot express {low:g}-{high:g} {base} in {unit!r}; {key} needs a {kind} "
            f"unit such as {_EXAMPLES[kind]}."
        ) from exc
    return float(out[0]), float(out[1])
