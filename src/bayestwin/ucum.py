"""UCUM unit codes (and the plain spellings devices write) translated to the spellings ``bayestwin.units`` reads.

FHIR resources and device streams carry UCUM codes (``"mm[Hg]"``, ``"Cel"``, ``"[lb_av]"``, ``"/min"``); pint
reads most UCUM codes as they are but not these. One table serves every reader (FHIR import, vital-sign streams)
so that a code means the same thing everywhere.

Examples
--------
>>> from bayestwin.ucum import to_pint
>>> to_pint("mm[Hg]"), to_pint("Cel"), to_pint("mg/L")
('mmHg', 'degC', 'mg/L')
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["UCUM_TO_PINT", "to_pint"]

#: UCUM code (or a plain spelling devices write) -> the spelling ``bayestwin.units`` (pint) reads. Codes pint
#: reads unchanged are listed only where a reader needs to know them as accepted (the vital-sign units).
UCUM_TO_PINT: Mapping[str, str] = MappingProxyType({
    # rates
    "/min": "1/min", "{beats}/min": "1/min", "{beat}/min": "1/min", "beats/min": "1/min", "bpm": "1/min",
    "{breaths}/min": "1/min", "{breath}/min": "1/min", "breaths/min": "1/min", "1/min": "1/min",
    # pressure, fractions
    "mm[Hg]": "mmHg", "mmHg": "mmHg", "kPa": "kPa", "%": "percent", "percent": "percent",
    # temperature
    "Cel": "degC", "degC": "degC", "[degF]": "degF", "degF": "degF", "K": "K",
    # mass, length, concentration
    "kg": "kg", "g": "g", "[lb_av]": "lb", "lb": "lb", "[in_i]": "inch", "mg/dL": "mg/dL", "mmol/L": "mmol/L",
    # time (ages, durations)
    "a": "year", "wk": "week", "mo": "month",
})  # fmt: skip


def to_pint(code: str) -> str:
    """The ``bayestwin.units`` spelling of a UCUM code; a code not in `UCUM_TO_PINT` is returned stripped, as is.

    Parameters
    ----------
    code : str
        A UCUM code such as ``"[lb_av]"`` or ``"mg/L"``.

    Returns
    -------
    str
        A unit string `bayestwin.units.parse_unit` reads (it still raises on a code it does not know).

    Examples
    --------
    >>> to_pint("[lb_av]"), to_pint(" a "), to_pint("ng/mL")
    ('lb', 'year', 'ng/mL')
    """
    key = str(code).strip()
    return UCUM_TO_PINT.get(key, key)
