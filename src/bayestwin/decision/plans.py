"""Treatment plans: a dosing regimen, an optional titration schedule, and non-drug interventions.

A ``Plan`` is what a clinician could do from now on: doses (a :class:`~bayestwin.spec.regimen.Regimen`, reused
as is: each dose a time, an amount, an infusion rate and a compartment) and ``Intervention`` s, changes of a
structural parameter (a stent widening a lumen, a dialysis session raising a clearance). Times are on the
patient's own clock (the origin of their data) in ``time_unit``; amounts in ``amt_unit``; both are converted to
the spec's units when plans are compared, as ``Twin.forecast`` does.

Constructors validate their inputs and raise ``SpecError`` naming the field that is wrong:

* ``Plan.repeat``: `dose` every `interval` from `start`, `count` doses or until `stop`; an infusion of
  `duration` (rate = dose / duration) or a bolus (duration 0); `route` a compartment name, an alias
  (``"oral"``: the model's depot, ``"iv"``: its central compartment) or 0 for the model's default.
* ``Plan.titrated``: the same schedule with a deterministic ``Titration``: the dose starts at `start_dose`
  and rises by `step` after every `every` doses, never above `max_dose` (a fixed up-titration such as
  "start at 100 mg, +50 mg every 2 doses, at most 300 mg"). ``Titration.at`` gives the amount of dose ``i``.
* ``Intervention``: ``mode="set"`` gives the parameter `value` (in `unit`, default the spec's), ``"scale"``
  multiplies it by `value`; from `start` on (``None``: over the whole horizon, the case of a change made
  before every time of interest; a finite `start` needs a model with time-varying parameters,
  ``predict_segments``, which the built-in PK models have).

Examples
--------
>>> p = Plan.repeat(dose=300.0, interval=12.0, count=3, start=24.0)
>>> p.name, [d.time for d in p.regimen.doses], p.total_amount
('300 mg q12h x3', [24.0, 36.0, 48.0], 900.0)
>>> Plan.titrated(start_dose=100.0, step=50.0, every=2, max_dose=200.0, interval=24.0, count=6).amounts
(100.0, 100.0, 150.0, 150.0, 200.0, 200.0)
>>> Plan.repeat(dose=-1.0, interval=12.0, count=2)
Traceback (most recent call last):
...
bayestwin.exceptions.SpecError: plan field 'dose' must be a finite number > 0, got -1.0; ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bayestwin.exceptions import SpecError, UnitError
from bayestwin.spec.regimen import Dose, Regimen
from bayestwin.units import parse_unit

__all__ = ["ROUTE_ALIASES", "Intervention", "Plan", "ReactiveRule", "Titration"]

ROUTE_ALIASES = {"oral": "depot", "po": "depot", "sc": "depot", "im": "depot", "iv": "central",
                 "infusion": "central"}


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise SpecError(f"plan field {name!r} must be a finite number {bound}, got {value!r}; "
                        f"give {name} as a plain number in the plan's units")
    return float(value)


def _finite(name: str, value: Any) -> float:
    if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
        raise SpecError(f"plan field {name!r} must be a finite number, got {value!r}")
    return float(value)


def _unit(name: str, value: Any) -> str:
    try:
        parse_unit(str(value), where=f"plan field {name!r}")
    except UnitError as err:
        raise SpecError(f"plan field {name!r}: {err}") from err
    if not isinstance(value, str) or not value:
        raise SpecError(f"plan field {name!r} must be a unit label such as 'h' or 'mg', got {value!r}")
    return value


@dataclass(frozen=True)
class Intervention:
    """A change of one structural parameter: ``set`` it to `value` or ``scale`` it by `value`, from `start` on.

    Examples
    --------
    >>> Intervention("d_lumen", 3.0, unit="mm").describe()
    'd_lumen = 3 mm'
    >>> Intervention("cl", 1.5, mode="scale", start=48.0).describe()
    'cl x 1.5 from 48 h'
    """

    parameter: str
    value: float
    mode: str = "set"
    start: float | None = None
    unit: str | None = None
    time_unit: str = "h"

    def __post_init__(self) -> None:
        if not isinstance(self.parameter, str) or not self.parameter:
            raise SpecError(f"plan field 'parameter' must name a structural parameter, got {self.parameter!r}")
        if self.mode not in ("set", "scale"):
            raise SpecError(f"plan field 'mode' must be 'set' or 'scale', got {self.mode!r}")
        if self.mode == "scale":
            _positive("value", self.value)
            if self.unit is not None:
                raise SpecError("plan field 'unit' must be None for mode='scale' (a factor has no unit)")
        else:
            _finite("value", self.value)
            if self.unit is not None:
                _unit("unit", self.unit)
        if self.start is not None:
            _finite("start", self.start)
        _unit("time_unit", self.time_unit)

    def describe(self) -> str:
        """A short human-readable label."""
        what = (f"{self.parameter} = {self.value:g}" + (f" {self.unit}" if self.unit else "")
                if self.mode == "set" else f"{self.parameter} x {self.value:g}")
        return what + ("" if self.start is None else f" from {self.start:g} {self.time_unit}")

    def to_record(self) -> dict[str, Any]:
        """The intervention as a plain dict (for JSON)."""
        return {"parameter": self.parameter, "value": self.value, "mode": self.mode, "start": self.start,
                "unit": self.unit, "time_unit": self.time_unit}


@dataclass(frozen=True)
class Titration:
    """Deterministic up-titration: dose ``i`` (0-based) is ``min(start_dose + step * (i // every), max_dose)``.

    Examples
    --------
    >>> [Titration(100.0, 50.0, every=1, max_dose=180.0).at(i) for i in range(4)]
    [100.0, 150.0, 180.0, 180.0]
    """

    start_dose: float
    step: float
    every: int = 1
    max_dose: float = math.inf

    def __post_init__(self) -> None:
        _positive("start_dose", self.start_dose)
        _positive("step", self.step, allow_zero=True)
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise SpecError(f"plan field 'every' must be an integer >= 1 (doses per titration step), "
                            f"got {self.every!r}")
        if not (isinstance(self.max_dose, int | float) and self.max_dose >= self.start_dose):
            raise SpecError(f"plan field 'max_dose' must be >= start_dose ({self.start_dose}), got {self.max_dose!r}")

    def at(self, i: int) -> float:
        """Amount of dose `i` (0-based)."""
        return float(min(self.start_dose + self.step * (i // self.every), self.max_dose))

    def describe(self) -> str:
        """A short human-readable label."""
        cap = "" if math.isinf(self.max_dose) else f", max {self.max_dose:g}"
        return f"from {self.start_dose:g}, +{self.step:g} every {self.every} doses{cap}"


@dataclass(frozen=True)
class ReactiveRule:
    """A level-reactive dose adjustment, applied per posterior draw.

    Before each planned dose from dose `first` on (0-based), read the draw's **predicted** (latent)
    concentration of `output` just before that dose; if it is above `threshold` (``direction="above"``; below it
    for ``"below"``), multiply that dose and every later one by `factor` (cumulative: two triggers with 0.75
    give 0.5625). Thresholds are in `unit` (default the output's).

    Examples
    --------
    >>> ReactiveRule(threshold=15.0, factor=0.75).describe()
    'x0.75 from the dose after a predicted trough > 15'
    """

    threshold: float
    factor: float
    direction: str = "above"
    first: int = 1
    output: str | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        _finite("threshold", self.threshold)
        _positive("factor", self.factor)
        if self.direction not in ("above", "below"):
            raise SpecError(f"plan field 'direction' must be 'above' or 'below', got {self.direction!r}")
        if not isinstance(self.first, int) or isinstance(self.first, bool) or self.first < 1:
            raise SpecError(f"plan field 'first' must be an integer >= 1 (the first dose preceded by a check), "
                            f"got {self.first!r}")

    def describe(self) -> str:
        """A short human-readable label."""
        sign = ">" if self.direction == "above" else "<"
        return f"x{self.factor:g} from the dose after a predicted trough {sign} {self.threshold:g}"

    def to_record(self) -> dict[str, Any]:
        """The rule as plain data (for JSON)."""
        return {"threshold": self.threshold, "factor": self.factor, "direction": self.direction, "first": self.first,
                "output": self.output, "unit": self.unit, "description": self.describe()}


def _count(count: Any, start: float, stop: Any, interval: float) -> int:
    if count is None and stop is None:
        raise SpecError("plan field 'count' or 'stop' is needed: how many doses, or until when")
    if stop is not None:
        stop = _finite("stop", stop)
        if stop <= start:
            raise SpecError(f"plan field 'stop' ({stop}) must be after 'start' ({start})")
        n_stop = math.floor((stop - start) / interval + 1e-9) + 1  # doses at start, start + interval, ... <= stop
        count = n_stop if count is None else min(int(count), n_stop)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise SpecError(f"plan field 'count' must be an integer >= 1, got {count!r}")
    return count


@dataclass(frozen=True)
class Plan:
    """A treatment plan: planned doses (or none) and parameter interventions, with a name.

    Parameters
    ----------
    name : str
        Label in tables, plots and recommendations (unique within a comparison).
    regimen : Regimen or None
        The planned doses (``None``: no new doses).
    interventions : tuple of Intervention
        Parameter changes (a stent, a procedure).
    interval : float or None
        Dosing interval of a repeated regimen (plan time unit), for tables.
    titration : Titration or None
        The titration rule that made the amounts, if any (for the record).
    route : str or int
        Route or compartment of the doses, as given.
    duration : float
        Infusion duration (0: bolus).
    reactive : ReactiveRule or None
        A level-reactive dose adjustment evaluated per posterior draw (``Plan.reactive``).
    """

    name: str
    regimen: Regimen | None = None
    interventions: tuple[Intervention, ...] = ()
    interval: float | None = None
    titration: Titration | None = None
    route: str | int = 0
    duration: float = 0.0
    description: str = field(default="", compare=False)
    reactive: ReactiveRule | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SpecError(f"plan field 'name' must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "interventions", tuple(self.interventions))
        for iv in self.interventions:
            if not isinstance(iv, Intervention):
                raise SpecError(f"plan field 'interventions' must hold Intervention objects, got {iv!r}")

    # --- constructors ----------------------------------------------------------------------------
    @classmethod
    def repeat(cls, *, dose: float, interval: float, count: int | None = None, start: float = 0.0,
               stop: float | None = None, duration: float = 0.0, route: str | int = 0, time_unit: str = "h",
               amt_unit: str = "mg", interventions: tuple[Intervention, ...] = (), name: str = "") -> Plan:
        """`dose` every `interval` from `start`: `count` doses, or as many as fit until `stop` (inclusive)."""
        return cls._schedule(amounts=None, dose=dose, interval=interval, count=count, start=start, stop=stop,
                             duration=duration, route=route, time_unit=time_unit, amt_unit=amt_unit,
                             interventions=interventions, name=name, titration=None)

    @classmethod
    def titrated(cls, *, start_dose: float, step: float, every: int = 1, max_dose: float = math.inf,
                 interval: float, count: int | None = None, start: float = 0.0, stop: float | None = None,
                 duration: float = 0.0, route: str | int = 0, time_unit: str = "h", amt_unit: str = "mg",
                 name: str = "") -> Plan:
        """A repeated schedule whose amounts follow a ``Titration`` (see the module docstring)."""
        rule = Titration(start_dose, step, every=every, max_dose=max_dose)
        return cls._schedule(amounts=rule, dose=start_dose, interval=interval, count=count, start=start, stop=stop,
                             duration=duration, route=route, time_unit=time_unit, amt_unit=amt_unit,
                             interventions=(), name=name, titration=rule)

    @classmethod
    def reactive_repeat(cls, *, dose: float, interval: float, rule: ReactiveRule, count: int | None = None,
                        start: float = 0.0, stop: float | None = None, duration: float = 0.0, route: str | int = 0,
                        time_unit: str = "h", amt_unit: str = "mg", name: str = "") -> Plan:
        """`dose` every `interval`, adjusted per draw by the level-reactive `rule` (see ``ReactiveRule``).

        Examples
        --------
        >>> Plan.reactive_repeat(dose=300.0, interval=12.0, count=4, rule=ReactiveRule(15.0, 0.75)).name
        '300 mg q12h x4, x0.75 from the dose after a predicted trough > 15'
        """
        if not isinstance(rule, ReactiveRule):
            raise SpecError(f"plan field 'rule' must be a ReactiveRule, got {rule!r}")
        base = cls.repeat(dose=dose, interval=interval, count=count, start=start, stop=stop, duration=duration,
                          route=route, time_unit=time_unit, amt_unit=amt_unit)
        name = name or f"{base.name}, {rule.describe()}"
        return cls(name, base.regimen, (), interval=base.interval, route=route, duration=duration, reactive=rule)

    @classmethod
    def intervention(cls, name: str, *interventions: Intervention) -> Plan:
        """A plan of parameter changes only (no new doses), e.g. a stent."""
        if not interventions:
            raise SpecError("plan field 'interventions' is empty: give at least one Intervention")
        return cls(name, None, tuple(interventions))

    @classmethod
    def none(cls, name: str = "no new doses") -> Plan:
        """The comparator of doing nothing: past doses only."""
        return cls(name)

    @classmethod
    def _schedule(cls, *, amounts: Titration | None, dose: float, interval: float, count: int | None, start: float,
                  stop: float | None, duration: float, route: str | int, time_unit: str, amt_unit: str,
                  interventions: tuple[Intervention, ...], name: str, titration: Titration | None) -> Plan:
        dose = _positive("dose", dose)
        interval = _positive("interval", interval)
        start = _finite("start", start)
        duration = _positive("duration", duration, allow_zero=True)
        _unit("time_unit", time_unit)
        _unit("amt_unit", amt_unit)
        if not (isinstance(route, str) and route) and not (isinstance(route, int) and route >= 0):
            raise SpecError(f"plan field 'route' must be a compartment name, an alias {sorted(ROUTE_ALIASES)} or a "
                            f"compartment number >= 0, got {route!r}")
        n = _count(count, start, stop, interval)
        cmt = ROUTE_ALIASES.get(route, route) if isinstance(route, str) else route
        amts = [amounts.at(i) if amounts is not None else dose for i in range(n)]
        doses = tuple(Dose(start + i * interval, a, a / duration if duration > 0 else 0.0, cmt)
                      for i, a in enumerate(amts))
        if not name:
            how = f"{dose:g} {amt_unit}" if amounts is None else f"titrated {amounts.describe()} {amt_unit}"
            name = f"{how} q{interval:g}{time_unit} x{n}" + (f" over {duration:g} {time_unit}" if duration else "")
        regimen = Regimen(doses, time_unit=time_unit, amt_unit=amt_unit, name=name)
        return cls(name, regimen, tuple(interventions), interval=interval, titration=titration, route=route,
                   duration=duration)

    # --- properties ----------------------------------------------------------------------------
    @property
    def amounts(self) -> tuple[float, ...]:
        """Amount of each planned dose (plan amount unit)."""
        return () if self.regimen is None else tuple(d.amt for d in self.regimen.doses)

    @property
    def total_amount(self) -> float:
        """Sum of the planned amounts (plan amount unit); the tie-break of ``optimize_regimen``."""
        return float(sum(self.amounts))

    @property
    def time_unit(self) -> str:
        """Unit of the plan's times (its regimen's, or its first intervention's, default h)."""
        if self.regimen is not None:
            return self.regimen.time_unit
        return self.interventions[0].time_unit if self.interventions else "h"

    def last_dose_time(self) -> float | None:
        """Time of the last planned dose (plan time unit), None without doses."""
        return None if self.regimen is None else self.regimen.doses[-1].time

    def to_record(self) -> dict[str, Any]:
        """The plan as plain data (for JSON)."""
        return {"name": self.name, "doses": [] if self.regimen is None else self.regimen.to_records(),
                "interval": self.interval, "duration": self.duration, "route": self.route,
                "titration": None if self.titration is None else self.titration.describe(),
                "interventions": [iv.to_record() for iv in self.interventions],
                "total_amount": self.total_amount,
                "reactive": None if self.reactive is None else self.reactive.to_record(),
                "amt_unit": None if self.regimen is None else self.regimen.amt_unit, "time_unit": self.time_unit}
