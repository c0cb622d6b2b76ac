"""The documented recommendation: a versioned JSON record of what was compared, what was chosen and why.

JSON schema ``bayestwin.recommendation/1``
------------------------------------------
::

    {
      "schema": "bayestwin.recommendation/1",
      "created": "<ISO 8601 UTC>",
      "patient": "<id>  (a store replaces it by the patient's pseudonym)",
      "model": {"spec_name": ..., "spec_digest": "sha256:..."},
      "population_version": "<version>" or null,
      "data": {"first_time", "last_time", "n_observations", "time_unit", "data_digest"} or null,
      "diagnostics": {"status": "ok" | "failed-overridden", "population": {...}, "twin": {...}} or null,
      "time_unit": "h", "units": {"time": "h", "amt": "mg", "<output>": "mg/L"},
      "targets": [{"name", "type", "kind", "lo", "hi", "at", "window", "output", "quantity", "unit",
                   "time_unit", "description"}],
      "plans": [{"name", "doses": [...], "interval", "duration", "route", "titration", "interventions",
                 "total_amount", "amt_unit", "time_unit",
                 "estimates": [{"target", "estimate", "mcse", "ess", "censored", "median_time"}],
                 "intervals": [{"time", "output", "prob", "lower", "median", "upper", "unit"}]}],
      "chosen": "<plan name>" or null,
      "rule": "<the rule that chose it, in words>",
      "ties": ["<plan name>", ...],
      "point_estimate_choices": {"mean": {"chosen": ..., "differs": bool}, ...},
      "warnings": ["<sentence>", ...],
      "software": {"bayestwin": ..., "jax": ..., "numpyro": ..., "arviz": ...}
    }

``record_recommendation`` stores it as a record of the patient's twin version through any store with the
``RecordSink`` methods (``TwinStore`` has them): the store replaces the patient identifier by the pseudonym
and appends an audit record. ``to_markdown`` and ``to_html`` are the readable reports; ``record_recommendation_html``
stores the HTML page through the same interface.

Examples
--------
>>> rec = Recommendation(patient="P1", plans=[{"name": "A", "estimates": []}], chosen="A", rule="by hand")
>>> Recommendation.from_json(rec.to_json()) == rec
True
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

from bayestwin.config import software_versions
from bayestwin.exceptions import InputError

__all__ = ["RECOMMENDATION_SCHEMA", "Recommendation", "RecordSink", "record_recommendation",
           "record_recommendation_html"]

RECOMMENDATION_SCHEMA = "bayestwin.recommendation/1"


class RecordSink(Protocol):
    """What ``record_recommendation`` needs from a store (``bayestwin.store.TwinStore`` provides it)."""

    def head(self, patient: object) -> int | None:
        """Latest version of the patient's twin, None if none."""

    def add_record(self, patient: object, version: int, kind: str, payload: Any) -> int:
        """Append a JSON record to a version (audited); return its id."""


@dataclass
class Recommendation:
    """A recommendation record (see the module docstring for the fields)."""

    patient: str
    plans: list[dict[str, Any]]
    chosen: str | None
    rule: str
    model: dict[str, Any] = field(default_factory=dict)
    population_version: str | None = None
    data: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    time_unit: str = "h"
    units: dict[str, str] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)
    point_estimate_choices: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    software: dict[str, str] = field(default_factory=dict)
    created: str = ""
    schema: str = RECOMMENDATION_SCHEMA

    def __post_init__(self) -> None:
        if not self.created:
            self.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        names = [p.get("name") for p in self.plans]
        if self.chosen is not None and self.chosen not in names:
            raise InputError(f"the chosen plan {self.chosen!r} is not among the compared plans {names}")

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    def from_comparison(cls, comparison: Any, chosen: str | None, rule: str, *, ties: list[str] | None = None,
                        point_estimate_choices: dict[str, Any] | None = None) -> Recommendation:
        """Document a ``PlanComparison`` and the plan chosen from it by `rule`."""
        meta = comparison.meta
        summary = comparison.summary()
        tu = comparison.time_unit
        intervals = comparison.intervals()
        plans = []
        for plan in comparison.plans:
            rec = plan.to_record()
            rows = summary[summary["plan"] == plan.name]
            rec["estimates"] = [{"target": r["target"], "estimate": r["estimate"], "mcse": r["mcse"], "ess": r["ess"],
                                 "censored": _num(r["censored"]), "median_time": _num(r[f"median time ({tu})"])}
                                for r in rows.to_dict(orient="records")]
            iv = intervals[intervals["plan"] == plan.name]
            rec["intervals"] = [{"time": r[f"time ({tu})"], "output": r["output"], "prob": r["prob"],
                                 "lower": r["lower"], "median": r["median"], "upper": r["upper"], "unit": r["unit"]}
                                for r in iv.to_dict(orient="records")]
            plans.append(rec)
        prov = meta.get("provenance") or {}
        window = meta.get("data_window")
        return cls(patient=str(meta.get("patient")), plans=plans, chosen=chosen, rule=rule,
                   model={"spec_name": prov.get("spec_name"), "spec_digest": prov.get("spec_digest")},
                   population_version=prov.get("population_version"), data=window,
                   diagnostics=meta.get("diagnostics"), time_unit=tu, units=dict(meta.get("units", {})),
                   targets=[t.to_record() for t in comparison.targets], ties=list(ties or []),
                   point_estimate_choices=dict(point_estimate_choices or {}), warnings=list(comparison.warnings),
                   software=prov.get("software") or software_versions())

    @classmethod
    def from_choice(cls, choice: Any) -> Recommendation:
        """Document a ``RegimenChoice`` (``optimize_regimen``): its comparison, choice, rule, ties, point choices."""
        mine = None if choice.chosen is None else choice.chosen.name
        points = {k: {"chosen": v["chosen"], "differs": v["chosen"] != mine} for k, v in choice.point_estimates.items()}
        return cls.from_comparison(choice.comparison, mine, choice.rule, ties=choice.ties,
                                   point_estimate_choices=points)

    # --- documents --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The record as plain data, ``schema`` first."""
        d = asdict(self)
        return {"schema": d.pop("schema"), **d}

    def to_json(self, *, indent: int | None = 2) -> str:
        """The ``bayestwin.recommendation/1`` JSON document (non-finite numbers as null)."""
        return json.dumps(_finite(self.to_dict()), indent=indent)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> Recommendation:
        """Read a document written by ``to_json`` (or its dict); ``InputError`` for another schema."""
        d = json.loads(text) if isinstance(text, str) else dict(text)
        if d.get("schema") != RECOMMENDATION_SCHEMA:
            raise InputError(f"not a {RECOMMENDATION_SCHEMA} document (schema {d.get('schema')!r}); a recommendation "
                             "must be read with the version of bayestwin that wrote its schema")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"recommendation document has unknown fields {unknown} for schema {RECOMMENDATION_SCHEMA}")
        return cls(**d)

    def to_markdown(self) -> str:
        """A readable report (see ``bayestwin.decision.report``)."""
        from bayestwin.decision.report import recommendation_markdown

        return recommendation_markdown(self)

    def to_html(self) -> str:
        """A self-contained HTML page (inline style, no scripts or external assets, text escaped); see ``report``."""
        from bayestwin.decision.report import recommendation_html

        return recommendation_html(self)


def record_recommendation(store: RecordSink, recommendation: Recommendation, *, patient: object = None,
                          version: int | None = None) -> int:
    """Store `recommendation` as a ``"recommendation"`` record of the patient's twin version; return the record id.

    `patient` is the identifier the store knows the patient by (default ``recommendation.patient``);
    `version` defaults to the patient's latest version. The store pseudonymises and audits the record.

    Examples
    --------
    >>> import tempfile, numpy as np, arviz as az
    >>> from bayestwin.store import TwinStore
    >>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
    >>> post = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 4))}, attrs={}))
    >>> _ = store.commit_version("P1", posterior=post, data_hash="d", spec_hash="s", population_version=None,
    ...                          diagnostics={}, expected_parent=None)
    >>> rec = Recommendation(patient="P1", plans=[{"name": "A"}], chosen="A", rule="by hand")
    >>> record_recommendation(store, rec)
    1
    >>> store.load_version("P1").records[0]["payload"]["patient"] == store.pseudonym("P1")
    True
    """
    who, v = _target(store, recommendation, patient, version)
    doc = recommendation.to_dict()
    doc["patient"] = str(who)
    return store.add_record(who, v, "recommendation", json.loads(json.dumps(_finite(doc))))


def record_recommendation_html(store: RecordSink, recommendation: Recommendation, *, patient: object = None,
                               version: int | None = None) -> int:
    """Store the HTML page of `recommendation` as a ``"recommendation_html"`` record; return the record id.

    The same store interface as ``record_recommendation`` (``head``, ``add_record``: audited). The page is
    rendered with the patient's pseudonym (``store.pseudonym``), never the identifier; the payload holds
    ``schema``, ``created`` (of the recommendation, to pair it with its JSON record) and ``html``.

    Examples
    --------
    >>> import tempfile, numpy as np, arviz as az
    >>> from bayestwin.store import TwinStore
    >>> store = TwinStore.open(tempfile.mkdtemp(), key="k" * 32)
    >>> post = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 4))}, attrs={}))
    >>> _ = store.commit_version("P1", posterior=post, data_hash="d", spec_hash="s", population_version=None,
    ...                          diagnostics={}, expected_parent=None)
    >>> rec = Recommendation(patient="P1", plans=[{"name": "A"}], chosen="A", rule="by hand")
    >>> record_recommendation_html(store, rec)
    1
    >>> page = store.load_version("P1").records[0]["payload"]["html"]
    >>> store.pseudonym("P1") in page and "P1" not in page
    True
    """
    who, v = _target(store, recommendation, patient, version)
    pseudonym = getattr(store, "pseudonym", None)
    if pseudonym is None:
        raise InputError("record_recommendation_html needs a store with pseudonym() (TwinStore): the page must show "
                         "the patient's pseudonym, not the identifier")
    page = dataclasses.replace(recommendation, patient=pseudonym(who)).to_html()
    return store.add_record(who, v, "recommendation_html", {"patient": str(who), "schema": recommendation.schema,
                                                            "created": recommendation.created, "html": page})


def _target(store: RecordSink, recommendation: Recommendation, patient: object,
            version: int | None) -> tuple[object, int]:
    """The patient identifier and twin version a recommendation record goes to (latest version by default)."""
    who = recommendation.patient if patient is None else patient
    v = store.head(who) if version is None else version
    if v is None:
        raise InputError(f"patient {who!r} has no twin version in the store; commit the twin (store.commit_twin) "
                         "before recording a recommendation made from it")
    return who, v


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if f == f and abs(f) != float("inf") else None


def _finite(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively (JSON has no such numbers)."""
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        return _finite(value.item())
    return value
