"""Unit names: the registry, parsing, canonical labels and kinds (conversions: ``bayestwin.units``).

Every unit label bayestwin writes comes from ``format_unit``; every unit it reads goes through
``parse_unit``, which refuses the capitals pint would read as non-clinical units. The public names
are re-exported by ``bayestwin.units``, the module to import from.

Examples
--------
>>> from bayestwin.unit_names import format_unit, kind_of
>>> format_unit("µg / mL"), kind_of("mmol/L")
('ug/mL', 'molar_concentration')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import pint

from bayestwin.exceptions import UnitError

__all__ = ["KINDS", "UnitLike", "format_unit", "kind_of", "parse_unit", "require_kind", "ureg"]

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
# Clinical symbols that pint reads as something else when written in capitals, and the fix.
_CASE_TRAPS = {"MG": "mg", "PG": "pg", "G": "g", "ML": "mL", "H": "h", "S": "s", "D": "day", "YR": "yr",
               "MM": "mm (millimetre) or mmol/L", "C": "degC", "F": "degF"}  # fmt: skip
_SYMBOLS = {"liter": "L", "hour": "h", "minute": "min", "second": "s", "day": "day", "week": "week",
            "year": "year", "month": "month", "gram": "g", "mole": "mol", "meter": "m", "pascal": "Pa",
            "millimeter_Hg": "mmHg", "beats_per_minute": "bpm", "international_unit": "IU", "kelvin": "K",
            "degree_Celsius": "degC", "degree_Fahrenheit": "degF", "percent": "percent"}  # fmt: skip
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
