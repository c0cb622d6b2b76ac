"""Units: parsing, canonical labels, kinds and exact conversions (plausible ranges: ``bayestwin.plausibility``).

The single home of unit handling in bayestwin: every unit label the package writes comes
from ``format_unit``, every conversion goes through ``convert``. Conversions are
as exact as floating point allows: the factor is an exact rational, an integer factor
``N`` multiplies by ``N`` and a factor ``1/N`` divides by ``N``, so decimal data stay
decimal (2500 ug/L is exactly 2.5 mg/L). Mass <-> molar conversions need a molar mass.

Examples
--------
>>> from bayestwin.units import convert, format_unit
>>> convert(2500.0, "ug/L", "mg/L"), format_unit("µg / mL")
(2.5, 'ug/mL')
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from fractions import Fraction
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pint

from bayestwin.exceptions import UnitError
from bayestwin.unit_names import (
    _EXAMPLES,
    KINDS,
    UnitLike,
    _at,
    _items,
    format_unit,
    kind_of,
    parse_unit,
    require_kind,
    ureg,
)

__all__ = [
    "KINDS", "conversion_factor", "convert", "dose_per_weight_to_amount", "format_unit", "kind_of", "parse_unit",
    "require_kind", "ureg",
]  # fmt: skip

_MOLAR_MASS_DIMS = ureg.get_dimensionality("[mass]/[substance]")
# (mass kind, molar kind) -> the reference units a molar conversion goes through.
_MOLAR_PAIRS = {("mass", "substance"): ("g", "mol"),
                ("mass_concentration", "molar_concentration"): ("g/L", "mol/L")}  # fmt: skip
_NEEDS_MOLAR_MASS = " Mass <-> molar conversions need a molar mass: pass molar_mass='180.156 g/mol'"


def _exact(mag: float) -> Fraction:
    """The exact number that pint's float ``mag`` stands for: a simple fraction or a short decimal."""
    exact = Fraction(mag)
    small = exact.limit_denominator(10**6)  # 1/60 (bpm); 1/1000 (L, which pint computes as 0.1**3)
    if abs(small - exact) <= abs(exact) / 2**51:
        return small
    return Fraction(f"{mag:.15g}")  # decimal definitions: 1e-9, 133.322387415, ...


@cache
def _root_factor(name: str) -> Fraction:
    return _exact(float(ureg.Quantity(1.0, name).to_root_units().magnitude))


@lru_cache(maxsize=1024)
def _unit_factor(unit: UnitLike) -> Fraction:
    f = Fraction(1)
    for name, e in _items(parse_unit(unit)):
        r = _root_factor(name)
        f *= r ** int(e) if float(e).is_integer() else Fraction(float(r) ** e)
    return f


@lru_cache(maxsize=1024)
def _is_offset(unit: pint.Unit) -> bool:
    try:
        return float(ureg.Quantity(0.0, unit).to_root_units().magnitude) != 0.0
    except pint.errors.PintError:
        return True


def _affine(unit: pint.Unit) -> tuple[Fraction, Fraction]:
    """``(scale, offset)`` with ``root = scale * x + offset``, exact (for degC, degF, K)."""
    zero, one = (_exact(float(ureg.Quantity(x, unit).to_root_units().magnitude)) for x in (0.0, 1.0))
    return one - zero, zero


def _incompatible(src: pint.Unit, dst: pint.Unit, where: str, extra: str = "") -> UnitError:
    ks, kd, s = kind_of(src), kind_of(dst), format_unit(src)
    return UnitError(
        f"{_at(where)}cannot convert '{s}' ({ks}) to '{format_unit(dst)}' ({kd}).{extra} Units "
        f"compatible with '{s}' are {ks} units such as {_EXAMPLES[ks]}."
    )


def _molar_pair(src: pint.Unit, dst: pint.Unit) -> tuple[str, str, bool] | None:
    ks, kd = kind_of(src), kind_of(dst)
    for (mass_kind, mol_kind), (g_ref, mol_ref) in _MOLAR_PAIRS.items():
        if (ks, kd) in ((mass_kind, mol_kind), (mol_kind, mass_kind)):
            return g_ref, mol_ref, ks == mass_kind
    return None


def _molar_mass(value: Any, where: str) -> Fraction:
    """Molar mass as an exact Fraction in g/mol; a float is read as its shortest decimal."""
    bad = UnitError(
        f"{_at(where)}molar_mass={value!r} is not a molar mass; give a positive number in g/mol "
        "or a string such as '180.156 g/mol' (glucose)."
    )
    try:
        q, factor = (ureg.Quantity(value) if isinstance(value, str) else value), Fraction(1)
        if isinstance(q, pint.Quantity):
            if not q.dimensionless:
                if q.dimensionality != _MOLAR_MASS_DIMS:
                    raise bad
                factor = _unit_factor(q.units) / _unit_factor("g/mol")
            q = q.magnitude
        m = float(q)
    except (UnitError, pint.errors.PintError, TypeError, ValueError) as exc:
        raise bad from exc
    if isinstance(value, bool) or not math.isfinite(m) or m <= 0:
        raise bad
    return Fraction(repr(m)) * factor


def _factor(src: pint.Unit, dst: pint.Unit, where: str, molar_mass: Any = None) -> Fraction:
    if kind_of(src) == kind_of(dst) and src.dimensionality == dst.dimensionality:
        return _unit_factor(src) / _unit_factor(dst)
    pair = _molar_pair(src, dst)
    if pair is None:
        raise _incompatible(src, dst, where)
    if molar_mass is None:
        raise _incompatible(src, dst, where, _NEEDS_MOLAR_MASS + " (glucose) or a float in g/mol.")
    g_ref, mol_ref, from_mass = pair
    m = _molar_mass(molar_mass, where)
    if from_mass:
        return _unit_factor(src) / _unit_factor(g_ref) / m * _unit_factor(mol_ref) / _unit_factor(dst)
    return _unit_factor(src) / _unit_factor(mol_ref) * m * _unit_factor(g_ref) / _unit_factor(dst)


def _apply(arr: np.ndarray, f: Fraction) -> np.ndarray:
    """Multiply by an exact factor with as few roundings as possible."""
    p, q, big = f.numerator, f.denominator, 2**53
    with np.errstate(over="ignore", under="ignore"):
        if q == 1 and p <= big:
            return arr * float(p)
        if p == 1 and q <= big:
            return arr / float(q)
        if p > big or q > big:
            return arr * float(f)
        out = arr * float(p) / float(q)
        overflow = np.isinf(out) & np.isfinite(arr)  # arr * p overflowed although the result is finite
        return np.where(overflow, arr * float(f), out) if overflow.any() else out


def _to_array(values: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    pd = sys.modules.get("pandas")  # a Series exists only once pandas is imported; never import it here
    if pd is not None and isinstance(values, pd.Series):
        arr = values.to_numpy(dtype=float, na_value=np.nan)
        return arr, lambda out: pd.Series(out, index=values.index, name=values.name)
    arr = np.asarray(values, dtype=float)
    return arr, (lambda out: float(out)) if arr.ndim == 0 else (lambda out: out)


def conversion_factor(from_unit: UnitLike, to_unit: UnitLike, *, where: str = "") -> float:
    """Return ``f`` such that ``value_in_to = value_in_from * f`` (correctly rounded).

    Mass <-> molar is refused (it needs a molar mass: use ``convert`` with
    ``molar_mass``), as are offset units such as ``degC`` -> ``degF``.

    Raises
    ------
    UnitError
        If the units are of different kinds or no single factor exists.

    Examples
    --------
    >>> conversion_factor("ng/mL", "mg/L"), conversion_factor("day", "h")
    (0.001, 24.0)
    """
    src, dst = parse_unit(from_unit, where=where), parse_unit(to_unit, where=where)
    if (_is_offset(src) or _is_offset(dst)) and src != dst:
        raise UnitError(
            f"{_at(where)}'{format_unit(src)}' -> '{format_unit(dst)}' is not a single factor "
            "(the scales have different zeros); use convert() for temperatures."
        )
    if _molar_pair(src, dst) is not None:
        raise _incompatible(src, dst, where, _NEEDS_MOLAR_MASS + " to convert(), not conversion_factor().")
    return float(_factor(src, dst, where))


def convert(
    values: Any,
    from_unit: UnitLike,
    to_unit: UnitLike,
    *,
    molar_mass: str | float | None = None,
    where: str = "",
) -> Any:
    """Convert values between units, as exactly as floating point allows.

    The exact rational factor is applied with one rounding where possible (integer factors
    multiply, ``1/N`` factors divide): 1.7 mg is 1700.0 ug and back 1.7 mg. Multiplying rounds
    the product of the stored binary value, so a few short decimals land one ulp off the decimal
    result (4.02 mg -> 4019.9999999999995 ug); dividing an exact value never does. NaN stays NaN;
    finite input never becomes NaN. ``molar_mass`` (``"180.156 g/mol"`` or a float in g/mol)
    is needed for mass <-> molar conversions; ``where`` names the source in errors.

    Returns
    -------
    float, numpy.ndarray or pandas.Series
        A float for a scalar, a Series (same index and name) for a Series, else an array.

    Raises
    ------
    UnitError
        If the units are unknown or incompatible, or a needed molar mass is missing.

    Examples
    --------
    >>> convert([90.0, 30.0], "min", "h")
    array([1.5, 0.5])
    >>> convert(180.156, "mg/dL", "mmol/L", molar_mass="180.156 g/mol")
    10.0
    """
    src, dst = parse_unit(from_unit, where=where), parse_unit(to_unit, where=where)
    arr, wrap = _to_array(values)
    if _is_offset(src) or _is_offset(dst):
        if kind_of(src) != kind_of(dst):
            raise _incompatible(src, dst, where)
        (a_src, b_src), (a_dst, b_dst) = _affine(src), _affine(dst)
        return wrap(_apply(arr, a_src / a_dst) + float((b_src - b_dst) / a_dst))
    return wrap(_apply(arr, _factor(src, dst, where, molar_mass)))


def dose_per_weight_to_amount(
    dose: Any, dose_unit: str, weight: Any, weight_unit: str, *, to: str = "mg", where: str = ""
) -> Any:
    """Turn weight-normalised doses (``dose_unit`` such as mg/kg) into amounts in ``to``.

    ``dose`` and ``weight`` broadcast. The unit factor is exact, but the product
    ``dose * weight`` is ordinary floating point (one rounding): compare with a tolerance.
    Returns an array, or a float when both inputs are scalars.

    Raises
    ------
    UnitError
        If ``dose_unit`` is not mass_per_mass, or ``weight_unit`` or ``to`` is not a mass unit.

    Examples
    --------
    >>> dose_per_weight_to_amount([4.0, 10.0], "ug/kg", 3500.0, "g", to="mg")
    array([0.014, 0.035])
    """
    d = require_kind(dose_unit, "mass_per_mass", where=where)
    w = require_kind(weight_unit, "mass", where=f"{where} (weight unit)".strip())
    t = require_kind(to, "mass", where=f"{where} (target unit)".strip())
    with np.errstate(over="ignore"):
        product = _to_array(dose)[0] * _to_array(weight)[0]
    out = _apply(product, _unit_factor(d) * _unit_factor(w) / _unit_factor(t))
    return float(out) if np.ndim(out) == 0 else out
