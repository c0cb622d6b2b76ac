"""Vital signs the monitor knows: LOINC codes, canonical UCUM units, accepted units and physiological limits.

Every stream row is mapped to one canonical signal (``heart_rate``, ``sbp``, ``dbp``, ``spo2``, ``resp_rate``,
``temperature``, ``weight``, ``glucose``) whose value is stored in one canonical UCUM unit. Incoming UCUM codes
(and the common plain spellings devices write) are translated to pint spellings and converted exactly through
``bayestwin.units.convert``; a unit not accepted for the signal is a unit error, never a guess.

The limits in ``SIGNALS`` are *physiologically impossible* bounds (outside them a reading is a device or entry
error), not clinical alarm thresholds: an SpO2 of 85 % is alarming but possible, 130 % is impossible.

Examples
--------
>>> from bayestwin.monitor.loinc import signal_for_loinc, to_canonical
>>> signal_for_loinc("8867-4"), SIGNALS["heart_rate"].unit
('heart_rate', '/min')
>>> float(to_canonical(98.6, "[degF]", "temperature")[0])
37.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from bayestwin.exceptions import InputError, UnitError
from bayestwin.ucum import UCUM_TO_PINT as _UCUM
from bayestwin.units import convert

__all__ = ["LOINC", "SIGNALS", "Signal", "accepted_units", "signal_for_loinc", "to_canonical", "ucum_to_pint"]


@dataclass(frozen=True)
class Signal:
    """One canonical vital sign.

    Attributes
    ----------
    name : str
        Canonical name, e.g. ``"heart_rate"``.
    unit : str
        Canonical UCUM unit of the stored value, e.g. ``"/min"``.
    low, high : float
        Physiologically possible range in ``unit`` (inclusive); outside it a value is flagged ``implausible``.
    label : str
        Human-readable name for reports and plots.
    units : tuple of str
        UCUM codes (and plain spellings) accepted on input; each converts exactly to ``unit``.
    """

    name: str
    unit: str
    low: float
    high: float
    label: str
    units: tuple[str, ...]


# Limits: survivable extremes reported in the clinical literature, widened; a value outside is a device or entry
# error (HR 20-300 /min, SBP 40-300 mm[Hg], DBP 15-200, SpO2 50-100 %, RR 2-80 /min, 25-45 Cel, 0.3-400 kg,
# glucose 10-1500 mg/dL, as in bayestwin.plausibility where both define one).
SIGNALS: Mapping[str, Signal] = MappingProxyType({
    "heart_rate": Signal("heart_rate", "/min", 20.0, 300.0, "heart rate",
                         ("/min", "{beats}/min", "{beat}/min", "beats/min", "bpm", "1/min")),
    "sbp": Signal("sbp", "mm[Hg]", 40.0, 300.0, "systolic blood pressure", ("mm[Hg]", "mmHg", "kPa")),
    "dbp": Signal("dbp", "mm[Hg]", 15.0, 200.0, "diastolic blood pressure", ("mm[Hg]", "mmHg", "kPa")),
    "spo2": Signal("spo2", "%", 50.0, 100.0, "oxygen saturation", ("%", "percent")),
    "resp_rate": Signal("resp_rate", "/min", 2.0, 80.0, "respiratory rate",
                        ("/min", "{breaths}/min", "{breath}/min", "breaths/min", "1/min")),
    "temperature": Signal("temperature", "Cel", 25.0, 45.0, "body temperature",
                          ("Cel", "[degF]", "degC", "degF", "K")),
    "weight": Signal("weight", "kg", 0.3, 400.0, "body weight", ("kg", "g", "[lb_av]", "lb")),
    "glucose": Signal("glucose", "mg/dL", 10.0, 1500.0, "glucose", ("mg/dL", "mmol/L")),
})  # fmt: skip

#: LOINC code -> canonical signal (the codes of issue 8 and common equivalents).
LOINC: Mapping[str, str] = MappingProxyType({
    "8867-4": "heart_rate",    # Heart rate
    "8889-8": "heart_rate",    # Heart rate by Pulse oximetry
    "8480-6": "sbp",           # Systolic blood pressure
    "8459-0": "sbp",           # Systolic blood pressure--sitting
    "8462-4": "dbp",           # Diastolic blood pressure
    "8453-3": "dbp",           # Diastolic blood pressure--sitting
    "59408-5": "spo2",         # Oxygen saturation in Arterial blood by Pulse oximetry
    "2708-6": "spo2",          # Oxygen saturation in Arterial blood
    "9279-1": "resp_rate",     # Respiratory rate
    "8310-5": "temperature",   # Body temperature
    "8331-1": "temperature",   # Oral temperature
    "29463-7": "weight",       # Body weight
    "3141-9": "weight",        # Body weight Measured
    "2339-0": "glucose",       # Glucose [Mass/volume] in Blood
    "2345-7": "glucose",       # Glucose [Mass/volume] in Serum or Plasma
    "41653-7": "glucose",      # Glucose [Mass/volume] in Capillary blood by Glucometer
    "15074-8": "glucose",      # Glucose [Moles/volume] in Blood
    "14749-6": "glucose",      # Glucose [Moles/volume] in Serum or Plasma
})  # fmt: skip

_GLUCOSE_MOLAR_MASS = "180.156 g/mol"


def signal_for_loinc(code: str, *, where: str = "") -> str:
    """Canonical signal of a LOINC code.

    Raises
    ------
    InputError
        If the code is not one the monitor knows; the message lists the known codes.

    Examples
    --------
    >>> signal_for_loinc("59408-5")
    'spo2'
    """
    key = str(code).strip()
    if key not in LOINC:
        at = f"{where}: " if where else ""
        known = ", ".join(f"{c} ({s})" for c, s in LOINC.items())
        raise InputError(f"{at}LOINC code {code!r} is not a vital sign the monitor knows. Known codes: {known}. "
                         "Map it with a `signal` column, or drop the observation before ingest.")
    return LOINC[key]


def accepted_units(signal: str) -> tuple[str, ...]:
    """Units accepted on input for ``signal`` (UCUM codes first).

    Examples
    --------
    >>> accepted_units("weight")
    ('kg', 'g', '[lb_av]', 'lb')
    """
    return _signal(signal).units


def ucum_to_pint(unit: str) -> str:
    """The ``bayestwin.units`` spelling of a UCUM code (``"mm[Hg]"`` -> ``"mmHg"``).

    Raises
    ------
    UnitError
        If the code is not one the monitor accepts.

    Examples
    --------
    >>> ucum_to_pint("Cel"), ucum_to_pint("[lb_av]")
    ('degC', 'lb')
    """
    key = str(unit).strip()
    if key not in _UCUM:
        raise UnitError(f"unit {unit!r} is not a UCUM code the monitor accepts; use one of {sorted(_UCUM)}.")
    return _UCUM[key]


def _signal(signal: str) -> Signal:
    if signal not in SIGNALS:
        raise InputError(f"unknown signal {signal!r}; use one of {sorted(SIGNALS)}.")
    return SIGNALS[signal]


def to_canonical(values: object, unit: str, signal: str, *, where: str = "") -> np.ndarray:
    """Convert ``values`` given in ``unit`` into the canonical unit of ``signal`` (float64 array).

    Conversions are exact where the factor is rational (``bayestwin.units.convert``); glucose in
    ``mmol/L`` uses a molar mass of 180.156 g/mol.

    Raises
    ------
    UnitError
        If ``unit`` is not accepted for ``signal``; the message names ``where`` and the accepted units.

    Examples
    --------
    >>> to_canonical([12.0], "kPa", "sbp").round(2).tolist()
    [90.01]
    >>> to_canonical([5.5], "mmol/L", "glucose").round(3).tolist()
    [99.086]
    """
    sig = _signal(signal)
    key = str(unit).strip()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if key not in sig.units:
        at = f"{where}: " if where else ""
        raise UnitError(f"{at}unit {unit!r} is not a unit of {sig.label} ({signal}); use one of "
                        f"{list(sig.units)} (canonical {sig.unit!r}).")
    src, dst = _UCUM[key], _UCUM[sig.unit]
    if src == dst:
        return arr.copy()
    molar = _GLUCOSE_MOLAR_MASS if signal == "glucose" else None
    return np.asarray(convert(arr, src, dst, molar_mass=molar, where=where), dtype=np.float64)
