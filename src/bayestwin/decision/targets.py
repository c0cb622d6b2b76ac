"""Decision targets: what a plan should achieve (a therapeutic window) or avoid (a toxic level).

Every target is an event "the output is in ``[lo, hi]``" looked at in one of four ways, each giving one
number per posterior draw, averaged over the draws into a probability (or a mean fraction):

========================  =====================================================  ==================
target                    per draw                                               kind
========================  =====================================================  ==================
``InWindow(at=t)``        1 if ``lo <= y(t) <= hi``                              ``at``
``InWindow(at="trough")`` the same just before the plan's last dose              ``at``
``Exceeds(at=t)``         1 if ``y(t) > threshold``                              ``at``
``Exceeds(within=...)``   1 if ``y > threshold`` at any grid time in the window  ``any``
``TimeInRange``           fraction of the grid times in the window with y in     ``fraction``
                          ``[lo, hi]`` (its mean is the expected time in range)
``TimeToThreshold``       first grid time at which y reaches (``up``) or falls   ``first``
                          to (``down``) the threshold; +inf if it does not
                          within the window (censored at the horizon)
========================  =====================================================  ==================

``y`` is the latent concentration (``quantity="ipred"``, the default: what the patient's blood holds) or a
new measurement (``"pred"``: IPRED plus residual error). "Any" and "first" look at the comparison's time grid
only: a peak between grid times is missed, so use a grid fine enough for the question. Thresholds are in
`unit` (default: the output's unit in the spec), times in `time_unit`.

Examples
--------
>>> InWindow("trough in window", lo=5.0, hi=15.0, at="trough").describe()
'P(5 <= conc <= 15 at trough)'
>>> Exceeds("toxic peak", threshold=20.0, within=(0.0, 72.0)).describe()
'P(conc > 20 at any time in [0, 72] h)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bayestwin.exceptions import SpecError

__all__ = ["Exceeds", "InWindow", "Target", "TimeInRange", "TimeToThreshold"]


@dataclass(frozen=True)
class Target:
    """Base of the decision targets (see the module docstring); not used directly."""

    name: str
    output: str | None = None
    quantity: str = "ipred"
    unit: str | None = None
    time_unit: str = "h"

    kind = "abstract"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SpecError(f"target field 'name' must be a non-empty string, got {self.name!r}")
        if self.quantity not in ("ipred", "pred"):
            raise SpecError(f"target {self.name!r}: field 'quantity' must be 'ipred' (latent) or 'pred' (a new "
                            f"measurement), got {self.quantity!r}")

    @property
    def bounds(self) -> tuple[float, float]:
        """The event ``lo <= y <= hi`` in the target's unit."""
        raise NotImplementedError

    @property
    def at(self) -> float | str | None:
        """The evaluation time of an ``at`` target (or ``"trough"``)."""
        return None

    @property
    def window(self) -> tuple[float, float] | None:
        """Time window of an ``any``/``fraction``/``first`` target (None: the whole grid)."""
        return None

    def describe(self) -> str:
        """Readable statement of the target."""
        raise NotImplementedError

    def to_record(self) -> dict[str, Any]:
        """The target as plain data (for JSON)."""
        lo, hi = self.bounds
        return {"name": self.name, "type": type(self).__name__, "kind": self.kind, "lo": lo, "hi": hi,
                "at": self.at, "window": self.window, "output": self.output, "quantity": self.quantity,
                "unit": self.unit, "time_unit": self.time_unit, "description": self.describe()}


def _number(target: str, field: str, value: Any, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or (
            math.isinf(value) and not allow_inf):
        raise SpecError(f"target {target!r}: field {field!r} must be a finite number, got {value!r}")
    return float(value)


def _check_window(name: str, window: tuple[float, float] | None) -> None:
    if window is None:
        return
    if len(window) != 2:
        raise SpecError(f"target {name!r}: field 'within' must be a (start, end) pair, got {window!r}")
    a, b = (_number(name, "within", w) for w in window)
    if not b > a:
        raise SpecError(f"target {name!r}: field 'within' must have end > start, got {window!r}")


def _fmt_window(w: tuple[float, float] | None, unit: str) -> str:
    return "on the whole grid" if w is None else f"in [{w[0]:g}, {w[1]:g}] {unit}"


@dataclass(frozen=True)
class InWindow(Target):
    """P(``lo <= y <= hi``) at one time (or at the plan's trough: just before its last dose)."""

    lo: float = -math.inf
    hi: float = math.inf
    at_time: float | str = "trough"

    kind = "at"

    def __init__(self, name: str, *, lo: float = -math.inf, hi: float = math.inf, at: float | str = "trough",
                 output: str | None = None, quantity: str = "ipred", unit: str | None = None,
                 time_unit: str = "h") -> None:
        for k, v in dict(name=name, output=output, quantity=quantity, unit=unit, time_unit=time_unit, lo=lo, hi=hi,
                         at_time=at).items():
            object.__setattr__(self, k, v)
        self.__post_init__()
        _number(name, "lo", lo, allow_inf=True)
        _number(name, "hi", hi, allow_inf=True)
        if not hi > lo:
            raise SpecError(f"target {name!r}: field 'hi' ({hi}) must be above 'lo' ({lo})")
        if at != "trough":
            _number(name, "at", at)

    @property
    def bounds(self) -> tuple[float, float]:  # noqa: D102
        return (self.lo, self.hi)

    @property
    def at(self) -> float | str:  # noqa: D102
        return self.at_time

    def describe(self) -> str:  # noqa: D102
        when = "at trough" if self.at_time == "trough" else f"at {self.at_time:g} {self.time_unit}"
        out = self.output or "conc"
        if math.isinf(self.hi):
            return f"P({out} >= {self.lo:g} {when})"
        if math.isinf(self.lo):
            return f"P({out} <= {self.hi:g} {when})"
        return f"P({self.lo:g} <= {out} <= {self.hi:g} {when})"


@dataclass(frozen=True)
class Exceeds(Target):
    """P(``y > threshold``) at one time (`at`) or at any grid time within `within` (default: the whole grid)."""

    threshold: float = math.inf
    at_time: float | None = None
    within: tuple[float, float] | None = None

    def __init__(self, name: str, *, threshold: float, at: float | None = None,
                 within: tuple[float, float] | None = None, output: str | None = None, quantity: str = "ipred",
                 unit: str | None = None, time_unit: str = "h") -> None:
        for k, v in dict(name=name, output=output, quantity=quantity, unit=unit, time_unit=time_unit,
                         threshold=threshold, at_time=at, within=None if within is None else tuple(within)).items():
            object.__setattr__(self, k, v)
        self.__post_init__()
        _number(name, "threshold", threshold)
        if at is not None:
            _number(name, "at", at)
            if within is not None:
                raise SpecError(f"target {name!r}: give 'at' (one time) or 'within' (a window), not both")
        _check_window(name, self.within)

    @property
    def kind(self) -> str:  # type: ignore[override]  # noqa: D102
        return "at" if self.at_time is not None else "any"

    @property
    def bounds(self) -> tuple[float, float]:  # noqa: D102
        return (self.threshold, math.inf)

    @property
    def at(self) -> float | None:  # noqa: D102
        return self.at_time

    @property
    def window(self) -> tuple[float, float] | None:  # noqa: D102
        return self.within

    def describe(self) -> str:  # noqa: D102
        out = self.output or "conc"
        if self.at_time is not None:
            return f"P({out} > {self.threshold:g} at {self.at_time:g} {self.time_unit})"
        where = "on the whole grid" if self.within is None else _fmt_window(self.within, self.time_unit)
        return f"P({out} > {self.threshold:g} at any time {where})"


@dataclass(frozen=True)
class TimeInRange(Target):
    """Expected fraction of the grid times in `within` at which ``lo <= y <= hi``."""

    lo: float = -math.inf
    hi: float = math.inf
    within: tuple[float, float] | None = None

    kind = "fraction"

    def __init__(self, name: str, *, lo: float = -math.inf, hi: float = math.inf,
                 within: tuple[float, float] | None = None, output: str | None = None, quantity: str = "ipred",
                 unit: str | None = None, time_unit: str = "h") -> None:
        for k, v in dict(name=name, output=output, quantity=quantity, unit=unit, time_unit=time_unit, lo=lo, hi=hi,
                         within=None if within is None else tuple(within)).items():
            object.__setattr__(self, k, v)
        self.__post_init__()
        _number(name, "lo", lo, allow_inf=True)
        _number(name, "hi", hi, allow_inf=True)
        if not hi > lo:
            raise SpecError(f"target {name!r}: field 'hi' ({hi}) must be above 'lo' ({lo})")
        _check_window(name, self.within)

    @property
    def bounds(self) -> tuple[float, float]:  # noqa: D102
        return (self.lo, self.hi)

    @property
    def window(self) -> tuple[float, float] | None:  # noqa: D102
        return self.within

    def describe(self) -> str:  # noqa: D102
        return f"time in range [{self.lo:g}, {self.hi:g}] {_fmt_window(self.within, self.time_unit)}"


@dataclass(frozen=True)
class TimeToThreshold(Target):
    """First grid time in `within` at which y reaches the threshold (``up``) or falls to it (``down``)."""

    threshold: float = 0.0
    direction: str = "up"
    within: tuple[float, float] | None = None

    kind = "first"

    def __init__(self, name: str, *, threshold: float, direction: str = "up",
                 within: tuple[float, float] | None = None, output: str | None = None, quantity: str = "ipred",
                 unit: str | None = None, time_unit: str = "h") -> None:
        for k, v in dict(name=name, output=output, quantity=quantity, unit=unit, time_unit=time_unit,
                         threshold=threshold, direction=direction,
                         within=None if within is None else tuple(within)).items():
            object.__setattr__(self, k, v)
        self.__post_init__()
        _number(name, "threshold", threshold)
        if direction not in ("up", "down"):
            raise SpecError(f"target {name!r}: field 'direction' must be 'up' (reach) or 'down' (fall to), "
                            f"got {direction!r}")
        _check_window(name, self.within)

    @property
    def bounds(self) -> tuple[float, float]:  # noqa: D102
        return (self.threshold, math.inf) if self.direction == "up" else (-math.inf, self.threshold)

    @property
    def window(self) -> tuple[float, float] | None:  # noqa: D102
        return self.within

    def describe(self) -> str:  # noqa: D102
        verb = "reach" if self.direction == "up" else "fall to"
        return f"time to {verb} {self.threshold:g} {_fmt_window(self.within, self.time_unit)}"
