"""Dosing regimens: future (or hypothetical) doses to forecast under.

Times are on the patient's own clock (the same origin as their data), in
`time_unit`; amounts in `amt_unit`. Both are converted to the spec's units
when a forecast is made.

Examples
--------
>>> r = Regimen.repeat(amt=300.0, every=12.0, count=3, start=24.0)
>>> [d.time for d in r.doses]
[24.0, 36.0, 48.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bayestwin.exceptions import SpecError

__all__ = ["Dose", "Regimen"]


@dataclass(frozen=True, slots=True)
class Dose:
    """One planned dose: time, amount, infusion rate (0 = bolus), compartment (0 = model default)."""

    time: float
    amt: float
    rate: float = 0.0
    cmt: int | str = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.time):
            raise SpecError(f"a planned dose needs a finite time, got {self.time} (amount {self.amt})")
        if not (self.amt > 0 and math.isfinite(self.amt)):
            raise SpecError(f"a planned dose needs a finite amount > 0, got {self.amt} (at time {self.time})")
        if not (self.rate >= 0 and math.isfinite(self.rate)):
            raise SpecError(f"a planned infusion rate must be finite and >= 0, got {self.rate} (at time {self.time})")


@dataclass(frozen=True)
class Regimen:
    """A sequence of planned doses with explicit units."""

    doses: tuple[Dose, ...]
    time_unit: str = "h"
    amt_unit: str = "mg"
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "doses", tuple(sorted(self.doses, key=lambda d: d.time)))
        if not self.doses:
            raise SpecError("a regimen needs at least one dose")

    @classmethod
    def repeat(cls, *, amt: float, every: float, count: int, start: float = 0.0, rate: float = 0.0,
               cmt: int | str = 0, time_unit: str = "h", amt_unit: str = "mg", name: str = "") -> Regimen:
        """`count` doses of `amt` every `every` time units from `start`."""
        if count < 1 or not (every > 0 and math.isfinite(every)) or not math.isfinite(start):
            raise SpecError(f"repeat needs count >= 1, a finite every > 0 and a finite start, got count={count}, "
                            f"every={every}, start={start}")
        doses = tuple(Dose(start + i * every, amt, rate, cmt) for i in range(count))
        return cls(doses, time_unit=time_unit, amt_unit=amt_unit,
                   name=name or f"{amt:g} {amt_unit} every {every:g} {time_unit} x {count}")

    def to_records(self) -> list[dict[str, Any]]:
        """The doses as plain dicts (for JSON)."""
        return [{"time": d.time, "amt": d.amt, "rate": d.rate, "cmt": d.cmt, "time_unit": self.time_unit,
                 "amt_unit": self.amt_unit} for d in self.doses]
