"""Plan comparison and recommendation records for the service: request plans/targets -> decision objects.

Examples
--------
>>> from bayestwin.service.schemas import PlanIn
>>> make_plans([PlanIn(name="q12", dose=300, interval=12, count=2)], time_unit="h", amt_unit="mg")[0].name
'q12'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bayestwin.exceptions import ServiceApiError
from bayestwin.service.ops import WRITE_LOCK, jsonable, load_twin, require_twin
from bayestwin.service.schemas import CompareIn, PlanIn, TargetIn

if TYPE_CHECKING:  # pragma: no cover
    from bayestwin.store import TwinStore

__all__ = ["compare", "make_plans", "make_targets", "recommendations"]


def make_plans(plans: list[PlanIn], *, time_unit: str, amt_unit: str) -> list[Any]:
    """``Plan`` objects for the request's plans (``body.plans[i]`` named in errors)."""
    from bayestwin.decision import Plan

    out = []
    for i, p in enumerate(plans):
        if p.kind == "none":
            out.append(Plan.none(p.name))
            continue
        if p.dose is None or p.interval is None or p.count is None:
            raise ServiceApiError(422, "invalid plan", f"body.plans[{i}] ({p.name!r}): a 'repeat' plan needs dose, "
                                  "interval and count")
        out.append(Plan.repeat(dose=p.dose, interval=p.interval, count=p.count, start=p.start, duration=p.duration,
                               route=p.route, time_unit=time_unit, amt_unit=amt_unit, name=p.name))
    return out


def make_targets(targets: list[TargetIn], *, time_unit: str) -> list[Any]:
    """``Target`` objects for the request's targets (``body.targets[i]`` named in errors)."""
    from bayestwin.decision import Exceeds, InWindow

    out = []
    for i, t in enumerate(targets):
        if t.kind == "in_window":
            lo = -math.inf if t.lo is None else t.lo
            hi = math.inf if t.hi is None else t.hi
            out.append(InWindow(t.name, lo=lo, hi=hi, at="trough" if t.at is None else t.at, output=t.output,
                                time_unit=time_unit))
        else:
            if t.threshold is None:
                raise ServiceApiError(422, "invalid target", f"body.targets[{i}] ({t.name!r}): an 'exceeds' target "
                                      "needs a threshold")
            at = None if t.at in (None, "trough") else float(t.at)  # type: ignore[arg-type]
            out.append(Exceeds(t.name, threshold=t.threshold, at=at, output=t.output, time_unit=time_unit))
    return out


def compare(store: TwinStore, patient: str, body: CompareIn, *, max_draws: int) -> dict[str, Any]:
    """Compare the plans on a stored twin version; record a recommendation when asked."""
    from bayestwin.decision import Recommendation, compare_plans, record_recommendation
    if body.interval_draws > max_draws:
        raise ServiceApiError(422, "too many draws", f"body.interval_draws is {body.interval_draws}; at most "
                              f"{max_draws}")
    names = [p.name for p in body.plans]
    if body.recommend is not None and body.recommend.chosen is not None and body.recommend.chosen not in names:
        raise ServiceApiError(422, "invalid recommendation", f"body.recommend.chosen {body.recommend.chosen!r} is "
                              f"not one of the plans {names}")
    twin = load_twin(store, patient, body.version)
    tu, au = twin.spec.unit("time"), twin.spec.unit("amt")
    comparison = compare_plans(twin, make_plans(body.plans, time_unit=tu, amt_unit=au),
                               make_targets(body.targets, time_unit=tu), times=body.times,
                               interval_probs=sorted(set(body.levels)), interval_draws=body.interval_draws,
                               seed=body.seed)
    record = None
    if body.recommend is not None:
        rec = Recommendation.from_comparison(comparison, body.recommend.chosen, body.recommend.rule)
        with WRITE_LOCK:
            record_recommendation(store, rec, patient=patient, version=twin.stored_version_)
        record = len(store.load_version(patient, twin.stored_version_).records) - 1
    doc = comparison.to_dict() | {"patient": patient}
    return {"patient": patient, "version": twin.stored_version_, "comparison": jsonable(doc),
            "recommendation_record": record}


def recommendations(store: TwinStore, patient: str, version: int | None) -> dict[str, Any]:
    """The recommendation records of a twin version (default the latest)."""
    chosen = require_twin(store, patient, version)
    stored = store.load_version(patient, chosen)
    records = [jsonable(r) for r in stored.records if r["kind"] == "recommendation"]
    return {"patient": patient, "version": chosen, "records": records}
