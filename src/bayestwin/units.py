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
import re
import sys
from collections.abc import Callable, Iterable
from fractions import Fraction
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pint

from bayestwin.exceptions import UnitError

__all__ = [
    "KINDS", "conversion_factor", "convert", "dose_per_weight_to_amount", "format_unit", "kind_of", "parse_unit",
    "require_kind", "ureg",
]  # fmt: skip

UnitLike = str | pint.Unit

# pint already knows ug/µg/μg/mcg, h/hr/hour(s), min, d/day(s), L/l, mL, year/yr, cm, mmHg and degC.
ureg = pint.UnitRegistry()
ureg.define("international_unit = [international_unit] = IU")
ureg.define("beats_per_minute = 1 / minute = bpm")

# kind -> example units for hints; the keys, in this order, are KINDS.
_EXAMPLES = {
    "time": "h, min, day, week", "mass": "mg, ug, ng, g, kg", "substance": "mol, mmol, umol",
    "volume": "L, mL, dL", "mass_concentration": "mg/L, ug/L, ng/mL, mg/dL, g/dL",
    "molar_concentration": "mmol/L, umol/L, nmol/L", "mass_per_mass": "mg/kg, ug/kg",
    "mass_rate": "mg/h, ug/min", "volume_rate": "L/h, mL/min", "rate_constant": "1/h, 1/min, 1/day, bpm",
    "length": "cm, m", "dimensionless": "dimensionless, percent", "international_unit": "IU, mIU",
    "temperature": "degC, degF, K", "pressure": "mmHg, kPa", "other": "any other unit",
}  # fmt: skip
KINDS: tuple[str, ...] = tuple(_EXAMPLES)
_KIND_BY_DIMS = {
    ureg.get_dimensionality(dims): kind
    for dims, kind in {
        "[time]": "time", "[mass]": "mass", "[substance]": "substance", "[length]**3": "volume",
        "[mass]/[length]**3": "mass_concentration", "[substance]/[length]**3": "molar_concentration",
        "[mass]/[time]": "mass_rate", "[length]**3/[time]": "volume_rate", "1/[time]": "rate_constant",
        "[length]": "length", "[international_unit]": "international_unit",
        "[temperature]": "temperature", "[mass]/[length]/[time]**2": "pressure",
    }.items()
}  # fmt: skip
# Order of the factors in a label: "mg/kg/h", "L/kg/h", "umol/L".
_ORDER = [ureg.get_dimensionality(d) for d in ("[mass]", "[substance]", "[length]**3", "[length]", "[time]")]
_MOLAR_MASS_DIMS = ureg.get_dimensionality("[mass]/[substance]")
# (mass kind, molar kind) -> the reference units a molar conversion goes through.
_MOLAR_PAIRS = {("mass", "substance"): ("g", "mol"),
                ("mass_concentration", "molar_concentration"): ("g/L", "mol/L")}  # fmt: skip
# Clinical symbols that pint reads as something else when written in capitals, and the fix.
_CASE_TRAPS = {"MG": "mg", "PG": "pg", "G": "g", "ML": "mL", "H": "h", "S": "s", "D": "day", "YR": "yr",
               "MM": "mm (millimetre) or mmol/L", "C": "degC", "F": "degF"}  # fmt: skip
_SYMBOLS = {"liter": "L", "hour": "h", "minute": "min", "second": "s", "day": "day", "week": "week",
            "year": "year", "month": "month", "gram": "g", "mole": "mol", "meter": "m", "pascal": "Pa",
            "millimeter_Hg": "mmHg", "beats_per_minute": "bpm", "international_unit": "IU", "kelvin": "K",
            "degree_Celsius": "degC", "degree_Fahrenheit": "degF", "percent": "percent"}  # fmt: skip
_NEEDS_MOLAR_MASS = " Mass <-> molar conversions need a molar mass: pass molar_mass='180.156 g/mol'"
_HINT = (
    "Accepted spellings include mg, ug (µg, mcg), ng, g, kg; mg/L, ug/L, ng/mL, mg/dL, mmol/L; "
    "h (hr, hour), min, day (d), week, year (yr); L (l), mL; 1/h, L/h, mg/kg; IU; bpm; mmHg; degC. "
    "Unit symbols are case-sensitive; use '/' for division and '^' for powers, e.g. 'mg/kg/h'."
)


def _at(where: str) -> str:
    return f"{where}: " if where else ""


@lru_cache(maxsize=1024)
def _pint_unit(text: str) -> pint.Unit:
    return ureg.Unit(text)


def parse_unit(text: UnitLike, *, where: str = "") -> pint.Unit:
    """Parse a unit string (or a ``pint.Unit``) into a unit of ``ureg``.

    Whitespace is stripped; ``µ`` (U+00B5), ``μ`` (U+03BC), ``u`` and ``mc`` all mean micro.
    Case is kept as written, and capitals that pint reads as non-clinical units
    (``MG`` megagauss, ``ML`` megalitre, ``H`` henry, ``D`` debye, ...) are refused.
    ``where`` (e.g. ``"column AMT"``) names the source in error messages.

    Raises
    ------
    UnitError
        If ``text`` is empty, ``None``, unknown, has a numeric factor, or is such a capital.

    Examples
    --------
    >>> parse_unit(" mcg/mL ")
    <Unit('microgram / milliliter')>
    >>> parse_unit("hr") == parse_unit("h") == parse_unit("hours")
    True
    """
    if isinstance(text, ureg.Unit):
        return text
    if isinstance(text, pint.Unit):  # from another registry
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        what = "no unit given" if text is None or isinstance(text, str) else "a unit must be a string"
        raise UnitError(f"{_at(where)}{what} (got {text!r}). {_HINT}")
    s = text.strip().replace("\u03bc", "\u00b5")
    traps = [tok for tok in re.findall(r"[A-Za-z]+", s) if tok in _CASE_TRAPS]
    if traps:
        means = ", ".join(f"'{t}' means {_pint_unit(t)}" for t in traps)
        fixes = ", ".join(f"'{_CASE_TRAPS[t]}' for '{t}'" for t in traps)
        raise UnitError(
            f"{_at(where)}unit {text!r} is ambiguous: unit symbols are case-sensitive and {means}. Write {fixes}."
        )
    try:
        return _pint_unit(s)
    except Exception as exc:  # pint raises several error types for malformed expressions
        try:
            guess = f" Did you mean '{format_unit(_pint_unit(s.lower()))}'?"
        except Exception:
            guess = ""
        why = "a unit cannot contain a numeric factor" if "scaling factor" in str(exc) else "unknown unit"
        raise UnitError(f"{_at(where)}{why}: {text!r}.{guess} {_HINT}") from exc


def _items(unit: pint.Unit) -> list[tuple[str, float]]:
    return list(ureg.Quantity(1, unit).unit_items())


def _symbol(name: str) -> str:
    if name in _SYMBOLS:
        return _SYMBOLS[name]
    for prefix, base, suffix in ureg.parse_unit_name(name):
        if base in _SYMBOLS and not suffix:  # pint has no public prefix-symbol lookup: read it off "<p>g"
            pre = ureg.get_symbol(prefix + "gram")[:-1] if prefix else ""
            return pre.replace("µ", "u") + _SYMBOLS[base]
    return ureg.get_symbol(name).replace("µ", "u")


def _rank(name: str) -> int:
    dims = ureg.get_dimensionality(name)
    return _ORDER.index(dims) if dims in _ORDER else len(_ORDER)


def _power(symbol: str, e: float) -> str:
    e = abs(e)
    return symbol if e == 1 else f"{symbol}^{int(e) if float(e).is_integer() else float(e)!r}"


def format_unit(unit: UnitLike) -> str:
    """Return the canonical ASCII label of a unit, as used everywhere in bayestwin.

    Micro is ``u``, litre ``L``, hour ``h``, day ``day``, year ``year``; ``"dimensionless"``
    for no unit. The label parses back to the same unit, so
    ``format_unit(parse_unit(format_unit(u))) == format_unit(u)``.

    Examples
    --------
    >>> [format_unit(u) for u in ["µg/l", "hours", "d", "1/hr", "milligram/kilogram", "1"]]
    ['ug/L', 'h', 'day', '1/h', 'mg/kg', 'dimensionless']
    """
    return _label(parse_unit(unit))


@lru_cache(maxsize=1024)
def _label(unit: pint.Unit) -> str:
    items = sorted(_items(unit), key=lambda item: _rank(item[0]))
    num = [_power(_symbol(n), e) for n, e in items if e > 0]
    den = [_power(_symbol(n), e) for n, e in items if e < 0]
    if not num and not den:
        return "dimensionless"
    return ("*".join(num) or "1") + "".join("/" + d for d in den)


def kind_of(unit: UnitLike) -> str:
    """Classify a unit into one of ``KINDS`` (``"other"`` when none fits).

    ``mg/kg`` is ``"mass_per_mass"`` although its dimension cancels, while ``mg/kg/h`` is
    ``"other"``, not a rate constant; every ``1/time`` (``1/h``, ``1/min``, ``bpm``) is
    ``"rate_constant"``.

    Examples
    --------
    >>> [kind_of(u) for u in ["mg/dL", "mmol/L", "mg/kg", "L/h", "bpm", "IU/L"]]
    ['mass_concentration', 'molar_concentration', 'mass_per_mass', 'volume_rate', 'rate_constant', 'other']
    """
    return _kind(parse_unit(unit))


@lru_cache(maxsize=1024)
def _kind(u: pint.Unit) -> str:
    num: set[str] = set()  # base dimensions of the numerator and the denominator, before cancelling
    den: set[str] = set()
    for name, e in _items(u):
        for dim, d in ureg.get_dimensionality(name).items():
            (num if d * e > 0 else den).add(dim)
    cancelled = num & den
    if not u.dimensionality:
        return "mass_per_mass" if "[mass]" in cancelled else "dimensionless"
    return "other" if cancelled else _KIND_BY_DIMS.get(u.dimensionality, "other")


def require_kind(unit: UnitLike, kinds: str | Iterable[str], *, where: str) -> pint.Unit:
    """Parse ``unit`` and check that its kind is one of ``kinds`` (names from ``KINDS``).

    Raises
    ------
    UnitError
        If the unit does not parse or is of another kind (or a kind name is unknown).

    Examples
    --------
    >>> require_kind("mg", ["mass", "substance"], where="column AMT")
    <Unit('milligram')>
    """
    wanted = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if not wanted or any(k not in KINDS for k in wanted):
        raise UnitError(f"{_at(where)}unknown unit kind in {wanted}; known kinds: {', '.join(KINDS)}.")
    u = parse_unit(unit, where=where)
    kind = kind_of(u)
    if kind not in wanted:
        examples = "; ".join(f"{k}: {_EXAMPLES[k]}" for k in wanted)
        raise UnitError(
            f"{_at(where)}unit '{format_unit(u)}' is a {kind} unit, but a {' or '.join(wanted)} "
            f"unit is needed. Use e.g. {examples}."
        )
    return u


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
