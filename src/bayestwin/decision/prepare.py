"""From plans and targets to the padded arrays of one compiled comparison (host side, numpy).

Everything is converted to the spec's units here, as ``Twin`` does for a forecast regimen: plan times and
amounts (``conversion_factor``), target thresholds and times, intervention values. Dose records of all plans
are padded to one bucket size (``bucket_size``) so that every plan shares the compiled program.

Examples
--------
>>> import numpy as np
>>> grid_with([0.0, 1.0], [2.0, 1.0])
(array([0., 1., 2.]), {0.0: 0, 1.0: 1, 2.0: 2})
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayestwin.decision.draws import PosteriorDraws
from bayestwin.decision.plans import Plan
from bayestwin.decision.targets import Target
from bayestwin.dynamics.closed_form import dose_features
from bayestwin.dynamics.events import Doses, bucket_size
from bayestwin.exceptions import InputError, SpecError
from bayestwin.forecast.forecast import forecast_times
from bayestwin.units import conversion_factor

__all__ = ["Prepared", "grid_with", "prepare"]

TROUGH_OFFSET = 1e-6  # a trough is read this long (spec time unit) before the plan's last dose
_MAX_UNIT_VALUES = 60_000_000  # slot x draw x time x output values of the linear path (480 MB in float64)


@dataclass
class Prepared:
    """Arrays (numpy) and labels of one comparison."""

    path: str
    times: np.ndarray  # all evaluation times (spec unit), sorted
    grid: np.ndarray  # the user's grid (spec unit)
    grid_idx: np.ndarray  # position of each grid time in `times`
    plans: dict[str, Any]
    at_idx: np.ndarray  # (plan, target)
    lo: np.ndarray
    hi: np.ndarray
    masks: np.ndarray  # (target, time)
    columns: tuple[int, ...]
    features: frozenset[str] | None
    doses_spec: list[dict[str, np.ndarray]]  # per plan, its new doses in spec units
    target_units: list[str]
    reactive: bool = False  # some plan has a level-reactive rule (linear path: per-draw amounts)


def grid_with(grid: Sequence[float], extra: Sequence[float]) -> tuple[np.ndarray, dict[float, int]]:
    """Sorted union of `grid` and `extra`, and each value's index in it."""
    times = np.unique(np.concatenate([np.asarray(grid, dtype=float), np.asarray(extra, dtype=float)]))
    return times, {float(t): i for i, t in enumerate(times)}


def _plan_doses(plan: Plan, draws: PosteriorDraws, model: Any) -> dict[str, np.ndarray]:
    if plan.regimen is None:
        return {"time": np.zeros(0), "amt": np.zeros(0), "rate": np.zeros(0), "cmt": np.zeros(0, np.int32)}
    r = plan.regimen
    t_fac = conversion_factor(r.time_unit, draws.units["time"], where=f"plan {plan.name!r} time")
    a_fac = conversion_factor(r.amt_unit, draws.units["amt"], where=f"plan {plan.name!r} amount")
    try:
        cmt = [model.compartment_index(d.cmt) for d in r.doses]
    except KeyError as err:
        raise SpecError(f"plan {plan.name!r}: field 'route' {plan.route!r}: {err.args[0]}") from err
    return {"time": np.array([d.time * t_fac for d in r.doses]), "amt": np.array([d.amt * a_fac for d in r.doses]),
            "rate": np.array([d.rate * a_fac / t_fac for d in r.doses]), "cmt": np.array(cmt, dtype=np.int32)}


def _stack_doses(past: dict[str, np.ndarray], new: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Past + each plan's doses, padded to one bucket size: fields (plan, dose)."""
    rows = []
    for d in new:
        n = len(d["time"])
        rows.append({k: np.concatenate([past[k], d[k] if k in d else np.zeros(n, past[k].dtype)]).astype(past[k].dtype)
                     for k in past})
        rows[-1]["mask"] = np.concatenate([past["mask"], np.ones(n, bool)])
    size = bucket_size(max(len(r["time"]) for r in rows), minimum=1)
    pad = {"time": np.inf, "amt": 0.0, "rate": 0.0, "cmt": 0, "ii": 0.0, "ss": 0, "reset": False, "mask": False}
    return {k: np.stack([np.concatenate([r[k], np.full(size - len(r[k]), pad[k], dtype=r[k].dtype)]) for r in rows])
            for k in Doses._fields}


def _interventions(plan: Plan, draws: PosteriorDraws, names: list[str]) -> list[tuple[str, float, str, float]]:
    """(parameter, value in spec units, mode, start in spec time) for each of the plan's interventions."""
    out = []
    for iv in plan.interventions:
        if iv.parameter not in names:
            raise SpecError(f"plan {plan.name!r}: intervention on {iv.parameter!r}, which spec "
                            f"{draws.spec.name!r} does not have; its parameters are {names}")
        value = iv.value
        if iv.mode == "set" and iv.unit is not None:
            value = value * conversion_factor(iv.unit, draws.spec.parameter(iv.parameter).unit,
                                              where=f"plan {plan.name!r} intervention on {iv.parameter}")
        start = -math.inf if iv.start is None else iv.start * conversion_factor(
            iv.time_unit, draws.units["time"], where=f"plan {plan.name!r} intervention time")
        out.append((iv.parameter, float(value), iv.mode, float(start)))
    return out


def _segments(draws: PosteriorDraws, changes: list[list[tuple[str, float, str, float]]], names: list[str]
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-plan segment parameters {name: (plan, draw, segment)} and starts (plan, segment)."""
    theta, _ = draws.flat()
    base_starts = np.asarray(draws.starts, dtype=float) if draws.starts is not None else np.array([-np.inf])
    per_plan = []
    for ch in changes:
        starts = np.unique(np.concatenate([base_starts, [c[3] for c in ch if math.isfinite(c[3])]]))
        per_plan.append(starts)
    n_seg = max(len(s) for s in per_plan)
    out = {n: np.empty((len(changes), len(theta[names[0]]), n_seg)) for n in names}
    starts_all = np.full((len(changes), n_seg), np.inf)
    for p, (ch, starts) in enumerate(zip(changes, per_plan, strict=True)):
        starts_all[p, :len(starts)] = starts
        base_seg = np.clip(np.searchsorted(base_starts, starts, side="right") - 1, 0, len(base_starts) - 1)
        for n in names:
            v = theta[n] if theta[n].ndim == 2 else theta[n][:, None]
            cols = v[:, base_seg if v.shape[1] > 1 else np.zeros(len(starts), int)].copy()
            for param, value, mode, start in ch:
                if param == n:
                    active = starts >= start
                    cols[:, active] = value if mode == "set" else cols[:, active] * value
            out[n][p, :, :len(starts)] = cols
            out[n][p, :, len(starts):] = cols[:, -1:]
    return out, starts_all


def _rule(plan: Plan, doses: dict[str, np.ndarray], draws: PosteriorDraws, outputs: list[str]
          ) -> dict[str, Any] | None:
    """A reactive plan's rule in spec units: check times (just before each checked dose), threshold, column."""
    r = plan.reactive
    if r is None:
        return None
    out = r.output or outputs[0]
    if out not in outputs:
        raise SpecError(f"plan {plan.name!r}: reactive rule output {out!r} is not observed; choose one of {outputs}")
    fac = conversion_factor(r.unit or draws.units[out], draws.units[out], where=f"plan {plan.name!r} rule threshold")
    times = doses["time"]
    checks = [float(t) - TROUGH_OFFSET for t in times[r.first:]]
    return {"checks": checks, "first": r.first, "threshold": r.threshold * fac, "factor": r.factor,
            "sign": 1.0 if r.direction == "above" else -1.0, "column": outputs.index(out)}


def _reactive_arrays(rules: list[dict[str, Any] | None], new: list[dict[str, np.ndarray]],
                     pos: dict[tuple[float, int, float], int], index: dict[float, int]) -> dict[str, np.ndarray]:
    """Per plan and planned dose (time order): slot, amount, check time index and whether it is checked."""
    n = max(1, max(len(d["time"]) for d in new))
    out = {"slot": np.zeros((len(new), n), np.int32), "amt": np.zeros((len(new), n)),
           "check": np.zeros((len(new), n), np.int32), "checked": np.zeros((len(new), n), bool),
           "threshold": np.zeros(len(new)), "factor": np.ones(len(new)), "sign": np.ones(len(new)),
           "column": np.zeros(len(new), np.int32)}
    for p, (d, r) in enumerate(zip(new, rules, strict=True)):
        order = np.argsort(d["time"], kind="stable")
        for i, j in enumerate(order):
            t, a, rate, c = d["time"][j], d["amt"][j], d["rate"][j], d["cmt"][j]
            out["slot"][p, i] = pos[(float(t), int(c), float(a / rate) if rate > 0 else 0.0)]
            out["amt"][p, i] = a
            if r is not None and i >= r["first"]:
                out["check"][p, i] = index[float(t) - TROUGH_OFFSET]
                out["checked"][p, i] = True
        if r is not None:
            out["threshold"][p], out["factor"][p] = r["threshold"], r["factor"]
            out["sign"][p], out["column"][p] = r["sign"], r["column"]
    return out


def prepare(draws: PosteriorDraws, plans: Sequence[Plan], targets: Sequence[Target], grid: Sequence[float], *,
            time_unit: str, batch: int, path: str | None = None) -> Prepared:
    """Lower plans and targets to arrays (see ``bayestwin.decision.kernel``); `path` forces a path (tests)."""
    model, spec = draws.model, draws.spec
    t_fac = conversion_factor(time_unit, draws.units["time"], where="comparison time grid")
    grid_s = forecast_times(grid, what="compare_plans times") * t_fac
    new = [_plan_doses(p, draws, model) for p in plans]
    outputs = list(spec.observed_outputs)
    # target times and thresholds in spec units
    extra: list[float] = []
    troughs = [None if len(d["time"]) == 0 else float(d["time"][-1]) - TROUGH_OFFSET for d in new]
    tgt_at: list[Any] = []
    lo, hi, cols, units = [], [], [], []
    for tg in targets:
        out = tg.output or outputs[0]
        if out not in outputs:
            raise SpecError(f"target {tg.name!r}: output {out!r} is not observed by spec {spec.name!r}; "
                            f"choose one of {outputs}")
        cols.append(outputs.index(out))
        unit = tg.unit or draws.units[out]
        fac = conversion_factor(unit, draws.units[out], where=f"target {tg.name!r} threshold")
        a, b = tg.bounds
        lo.append(a * fac)
        hi.append(b * fac)
        units.append(draws.units[out])
        tf = conversion_factor(tg.time_unit, draws.units["time"], where=f"target {tg.name!r} time")
        if tg.kind == "at":
            if tg.at == "trough":
                missing = [p.name for p, t in zip(plans, troughs, strict=True) if t is None]
                if missing:
                    raise InputError(f"target {tg.name!r} reads the trough before a plan's last dose, but plans "
                                     f"{missing} have no planned doses; give at=<time> instead")
                extra += troughs  # type: ignore[arg-type]
                tgt_at.append("trough")
            else:
                extra.append(float(tg.at) * tf)  # type: ignore[arg-type]
                tgt_at.append(float(tg.at) * tf)  # type: ignore[arg-type]
        else:
            tgt_at.append(None)
    rules = [_rule(p, d, draws, outputs) for p, d in zip(plans, new, strict=True)]
    extra += [t for r in rules if r is not None for t in r["checks"]]
    times, index = grid_with(grid_s, extra)
    at_idx = np.zeros((len(plans), len(targets)), dtype=np.int32)
    masks = np.zeros((len(targets), len(times)), dtype=bool)
    grid_mask = np.isin(times, grid_s)
    for k, (tg, at) in enumerate(zip(targets, tgt_at, strict=True)):
        if at == "trough":
            at_idx[:, k] = [index[t] for t in troughs]
        elif at is not None:
            at_idx[:, k] = index[at]
        w = tg.window
        tf = conversion_factor(tg.time_unit, draws.units["time"], where=f"target {tg.name!r} window")
        masks[k] = grid_mask if w is None else grid_mask & (times >= w[0] * tf) & (times <= w[1] * tf)
    names = sorted(spec.parameter_names)
    changes = [_interventions(p, draws, names) for p in plans]
    time_varying = draws.starts is not None or any(math.isfinite(c[3]) for ch in changes for c in ch)
    same_changes = all(ch == changes[0] for ch in changes)
    if path is None:
        path = "segments" if time_varying else ("linear" if model.linear and same_changes else "generic")
        n_slots = len({(float(t), int(c), float(r)) for d in new for t, c, r in zip(d["time"], d["cmt"], d["rate"],
                                                                                     strict=True)})
        n_draws = draws.n_chains * draws.n_draws
        if path == "linear" and n_slots * n_draws * len(times) * len(outputs) > _MAX_UNIT_VALUES:
            path = "generic"  # the unit responses would not fit in memory
    reactive = any(r is not None for r in rules)
    if reactive and path != "linear":
        raise InputError(f"level-reactive plans ({[p.name for p, r in zip(plans, rules, strict=True) if r]}) are "
                         f"evaluated on the linear path only: a model linear in the doses ({model.name} is "
                         f"{'' if model.linear else 'not '}), no time-varying parameters, the same interventions in "
                         "every plan, and few enough dose slots x draws x times to fit in memory")
    if path == "linear" and (not model.linear or not same_changes or time_varying):
        raise InputError("the linear path needs a linear model and the same interventions in every plan")
    stacked = _stack_doses(draws.past, new)
    features = dose_features(Doses(**{k: v.reshape(-1) for k, v in stacked.items()}))
    plan_arrays: dict[str, Any] = {}
    if path == "linear":
        slots = sorted({(float(t), int(c), float(a / r) if r > 0 else 0.0)
                        for d in new for t, a, r, c in zip(d["time"], d["amt"], d["rate"], d["cmt"], strict=True)})
        slots = slots or [(0.0, 0, 0.0)]
        pos = {s: i for i, s in enumerate(slots)}
        amounts = np.zeros((len(plans), len(slots)))
        for p, d in enumerate(new):
            for t, a, r, c in zip(d["time"], d["amt"], d["rate"], d["cmt"], strict=True):
                amounts[p, pos[(float(t), int(c), float(a / r) if r > 0 else 0.0)]] += a
        one = lambda t, c, dur: {"time": [t], "amt": [1.0], "rate": [1.0 / dur if dur > 0 else 0.0],  # noqa: E731
                                 "cmt": [c]}
        plan_arrays["slots"] = _stack_doses({k: np.zeros(0, v.dtype) for k, v in draws.past.items()},
                                            [{k: np.asarray(v) for k, v in one(*s).items()} for s in slots])
        past_only = _stack_doses(draws.past, [_plan_doses(Plan.none(), draws, model)])
        plan_arrays["past"] = {k: v[0] for k, v in past_only.items()}
        plan_arrays["amounts"] = amounts
        if reactive:
            plan_arrays["reactive"] = _reactive_arrays(rules, new, pos, index)
        if changes[0]:  # the same interventions in every plan: apply them to the draws once
            plan_arrays["theta_changes"] = changes[0]
    elif path == "generic":
        scale = np.ones((len(plans), len(names)))
        value = np.zeros((len(plans), len(names)))
        is_set = np.zeros((len(plans), len(names)), dtype=bool)
        for p, ch in enumerate(changes):
            for param, v, mode, _start in ch:
                j = names.index(param)
                if mode == "set":
                    is_set[p, j], value[p, j] = True, v
                else:
                    scale[p, j] *= v
        plan_arrays.update(doses=stacked, scale=scale, value=value, is_set=is_set)
    else:
        seg_theta, starts = _segments(draws, changes, names)
        plan_arrays.update(doses=stacked, seg_theta=seg_theta, starts=starts)
    return Prepared(reactive=reactive,
                    path=path, times=times, grid=grid_s, grid_idx=np.searchsorted(times, grid_s), plans=plan_arrays,
                    at_idx=at_idx, lo=np.asarray(lo, float), hi=np.asarray(hi, float), masks=masks,
                    columns=tuple(cols), features=features, doses_spec=new, target_units=units)
