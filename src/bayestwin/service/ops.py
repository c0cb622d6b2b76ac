"""The service's work on the store and the model stack, free of HTTP: read data, fit, forecast, compare.

Routes call these after authorising; fits run as background jobs (:mod:`~bayestwin.service.jobs`), each
opening its own store connection with the caller's subject as the audit actor. JAX and the model stack are
imported here lazily, so the service starts (and answers health checks) in well under a second.

Examples
--------
>>> jsonable({"a": float("nan"), "b": [1.5, float("inf")]})
{'a': None, 'b': [1.5, None]}
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayestwin.exceptions import ConvergenceError, ConvergenceWarning, ServiceApiError, SpecError
from bayestwin.service.schemas import EventRowsIn, FhirIn, GateIn, SamplerIn

if TYPE_CHECKING:  # pragma: no cover
    from bayestwin.data import EventTable
    from bayestwin.service.jobs import JobContext
    from bayestwin.service.settings import ServiceSettings
    from bayestwin.store import TwinStore

__all__ = ["WRITE_LOCK", "jsonable", "load_spec", "load_twin", "open_store", "read_data", "register_spec"]


def jsonable(value: Any) -> Any:
    """`value` with NaN and infinities as ``None`` and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_LOCAL = threading.local()
#: Serialises the service's writes to the store: threads queue here, in Python, instead of spinning in
#: SQLite's busy handler (which under ~50 concurrent writers let a few wait past its 30 s timeout).
WRITE_LOCK = threading.Lock()


@contextmanager
def open_store(settings: ServiceSettings, actor: str) -> Iterator[TwinStore]:
    """The service's store, with `actor` (the token's subject) as the audit actor, for one request or job.

    Each worker thread keeps one open connection and reuses it: opening the store takes SQLite's write
    lock (schema and metadata checks), which under many concurrent requests would queue every request
    behind every other.
    """
    from bayestwin.store import TwinStore

    store = getattr(_LOCAL, "store", None)
    if store is None or store.path != Path(settings.store):
        if store is not None:
            store.close()
        store = _LOCAL.store = TwinStore.open(settings.store, create=False, actor=actor)
    store.actor = actor
    yield store


# --- specs ----------------------------------------------------------------------------------------
def _spec_dir(settings: ServiceSettings) -> Path:
    return Path(settings.store) / "service" / "specs"


def register_spec(settings: ServiceSettings, store: TwinStore, doc: dict[str, Any]) -> Any:
    """Check a spec dict (its structural model must be registered) and keep it under its digest."""
    from bayestwin.models import get_model
    from bayestwin.spec import TwinSpec

    try:
        spec = TwinSpec.from_dict(doc)
        get_model(spec.model)
    except (TypeError, ValueError, KeyError) as err:
        if isinstance(err, SpecError):
            raise
        raise SpecError(f"the spec is malformed: {type(err).__name__}: {err}. Send TwinSpec.to_dict() output "
                        "(name, model, parameters, error, units)") from err
    digest = spec.digest()
    folder = _spec_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest.split(':', 1)[1]}.json"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(spec.to_json(), encoding="utf-8")
        tmp.replace(path)
    with WRITE_LOCK:
        store.log_action("service.register_spec", inputs={"spec": digest})
    return spec


def load_spec(settings: ServiceSettings, spec_id: str) -> Any:
    """The registered spec `spec_id` (``sha256:<hex>``); 404 if none."""
    from bayestwin.spec import TwinSpec

    hexpart = spec_id.split(":", 1)[-1]
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ServiceApiError(422, "invalid spec id", f"spec id {spec_id!r} is not a spec digest (sha256:<64 hex>); "
                              "use the spec_id returned by POST /v1/specs")
    path = _spec_dir(settings) / f"{hexpart}.json"
    if not path.is_file():
        raise ServiceApiError(404, "not found", f"no spec {spec_id!r} is registered; register it with POST /v1/specs")
    return TwinSpec.load(path)


# --- data -----------------------------------------------------------------------------------------
def read_data(data: EventRowsIn | FhirIn, store: TwinStore, settings: ServiceSettings, *,
              patient: str | None, field: str = "body.data") -> EventTable:
    """The checked event table of `data` (see :func:`_read_data`); rule violations as a 422 naming the rows.

    `field` is where `data` sits in the request body (``body.data``, or ``body`` when it is the body).
    """
    from bayestwin.exceptions import DataValidationError
    from bayestwin.service.errors import describe

    try:
        return _read_data(data, store, settings, patient=patient, field=field)
    except DataValidationError as err:
        where = f"{field}.rows" if isinstance(data, EventRowsIn) else f"{field}.bundle (event row)"
        _, body = describe(err, rows_field=where)
        raise ServiceApiError(422, body["error"], body["detail"], errors=body.get("errors")) from err


def _read_data(data: EventRowsIn | FhirIn, store: TwinStore, settings: ServiceSettings, *,
               patient: str | None, field: str) -> EventTable:
    """The checked event table of `data`; with `patient`, every row must be that patient's.

    FHIR identifiers are pseudonymised at the door: the bundle's own ids never enter the table; a
    bundle's patient matching `patient` (by pseudonym) is filed as `patient`, any other patient as its
    pseudonym (and refused when `patient` is given).
    """
    if isinstance(data, EventRowsIn):
        if len(data.rows) > settings.max_rows:
            raise ServiceApiError(422, "too many rows", f"{field}.rows has {len(data.rows)} rows; at most "
                                  f"{settings.max_rows} per request: split the data into several requests")
        import pandas as pd

        from bayestwin.data import read_nonmem

        table = read_nonmem(pd.DataFrame(data.rows), units=data.units, evid_coding=data.evid_coding)
        where = f"{field}.rows"
    else:
        entries = data.bundle.get("entry") or []
        if not isinstance(entries, list) or len(entries) > settings.max_rows:
            raise ServiceApiError(422, "too many resources", f"{field}.bundle.entry must be a list of at most "
                                  f"{settings.max_rows} resources")
        from bayestwin.data import read_fhir

        target = None if patient is None else store.pseudonym(patient)

        def pseudonymize(raw: str) -> str:
            pseudo = store.pseudonym(raw)
            return patient if target is not None and pseudo == target else pseudo  # type: ignore[return-value]

        kwargs: dict[str, Any] = {} if data.routes is None else {"routes": data.routes}
        table = read_fhir(data.bundle, observations=dict(data.observations), dose_unit=data.dose_unit,
                          pseudonymizer=pseudonymize, **kwargs)
        where = f"{field}.bundle"
    if patient is not None:
        others = [p for p in table.patients if str(p) != str(patient)]
        if others:
            raise ServiceApiError(422, "rows of another patient", f"{where} holds events of {len(others)} patient(s) "
                                  f"other than {patient!r}; send only this patient's events to this patient's twin")
    return table


# --- fitting (background jobs) --------------------------------------------------------------------
def _sampler(s: SamplerIn, settings: ServiceSettings) -> Any:
    for what, n in (("draws", s.draws), ("warmup", s.warmup)):
        if s.chains * n > settings.max_draws:
            raise ServiceApiError(422, f"too many {what}", f"body.sampler: chains x {what} = {s.chains * n} exceeds "
                                  f"the service's limit of {settings.max_draws}; ask for fewer chains or {what}")
    from bayestwin.inference import SamplerConfig

    return SamplerConfig.default(progress_bar=False, chains=s.chains, warmup=s.warmup, draws=s.draws, seed=s.seed,
                                 init=s.init)


def _gate(g: GateIn) -> Any:
    if g.max_rhat is None and g.min_ess is None:
        return None
    from bayestwin.diagnostics import ConvergenceGate

    changes: dict[str, float] = {}
    if g.max_rhat is not None:
        changes["max_rhat"] = g.max_rhat
    if g.min_ess is not None:
        changes |= {"min_ess_bulk": g.min_ess, "min_ess_tail": g.min_ess}
    return ConvergenceGate(**changes)


def population_job(settings: ServiceSettings, actor: str, spec: Any, cohort: EventTable, sampler: SamplerIn,
                   gate: GateIn, allow_failed: bool) -> Any:
    """The work of a population fit job (sampler settings checked now, before queueing)."""
    config, the_gate = _sampler(sampler, settings), _gate(gate)

    def work(ctx: JobContext) -> dict[str, Any]:
        from bayestwin.inference import fit_population

        ctx.progress(0.05, f"fitting {spec.name!r} to {cohort.n_patients} patients")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = fit_population(spec, cohort, sampler=config, gate=the_gate)
        if not fit.ok and not allow_failed:
            raise ConvergenceError(f"the population fit failed its convergence gate; nothing was committed. "
                                   f"{fit.diagnostics.format().splitlines()[0]}. Ask for more warm-up/draws")
        ctx.progress(0.95, "committing")
        ctx.check()
        with open_store(settings, actor) as store, WRITE_LOCK:
            version = store.commit_population(fit)
        return jsonable({"version": version, "spec_id": spec.digest(), "n_patients": fit.n_patients,
                         "converged": bool(fit.ok), "diagnostics": fit.diagnostics.to_dict()})

    return work


def twin_job(settings: ServiceSettings, actor: str, patient: str, events: EventTable, *, population: str,
             sampler: SamplerIn, gate: GateIn, update_warmup: int, allow_failed: bool) -> Any:
    """The work of fitting a new twin version of `patient` on a stored population."""
    config, the_gate = _sampler(sampler, settings), _gate(gate)

    def work(ctx: JobContext) -> dict[str, Any]:
        from bayestwin.inference import PopulationFit
        from bayestwin.twin import Twin

        with open_store(settings, actor) as store:
            pop = PopulationFit.from_store(store, None if population == "latest" else population)
            head = store.head(patient)
        twin = Twin(pop.spec, population=pop, sampler=config, gate=the_gate, override_convergence=allow_failed,
                    update_warmup=update_warmup)
        ctx.progress(0.1, f"fitting the twin on population {pop.version}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            twin.fit(events)
        return _commit(ctx, settings, actor, patient, twin, head, allow_failed)

    return work


def append_job(settings: ServiceSettings, actor: str, patient: str, new: EventTable, *, cold: bool) -> Any:
    """The work of adding events to `patient`'s twin and updating it (warm start unless `cold`)."""

    def work(ctx: JobContext) -> dict[str, Any]:
        from bayestwin.twin import Twin

        with open_store(settings, actor) as store:
            twin = Twin.from_store(store, patient)
        parent = twin.stored_version_
        ctx.progress(0.1, f"updating from version {parent} with {len(new.frame)} rows")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            twin.update(new, warm=not cold)
        return _commit(ctx, settings, actor, patient, twin, parent, twin.override_convergence) | {
            "mode": twin.update_mode_}

    return work


def _commit(ctx: JobContext, settings: ServiceSettings, actor: str, patient: str, twin: Any, parent: int | None,
            allow_failed: bool) -> dict[str, Any]:
    if not twin.diagnostics_.ok and not allow_failed:
        raise ConvergenceError(f"the twin of patient {patient!r} failed its convergence gate; nothing was "
                               f"committed. {twin.diagnostics_.format().splitlines()[0]}")
    ctx.progress(0.95, "committing")
    ctx.check()
    with open_store(settings, actor) as store, WRITE_LOCK:
        version = store.commit_twin(twin, expected_parent=parent)
    return jsonable({"patient": patient, "version": version, "parent": parent,
                     "population_version": twin.population_version_, "converged": bool(twin.diagnostics_.ok),
                     "observations": len(twin.events_.observations), "diagnostics": twin.diagnostics_.to_dict()})


# --- reading --------------------------------------------------------------------------------------
def require_twin(store: TwinStore, patient: str, version: int | None = None) -> int:
    """The version to use (default the latest); 404 if the patient or version does not exist."""
    head = store.head(patient)
    if head is None:
        raise ServiceApiError(404, "not found", f"patient {patient!r} has no twin; create it with PUT "
                              f"/v1/twins/{patient}")
    if version is not None and not 1 <= version <= head:
        raise ServiceApiError(404, "not found", f"patient {patient!r} has versions 1-{head}, not {version}")
    return head if version is None else version


_TWINS: OrderedDict[tuple[str, str, int], Any] = OrderedDict()
_TWINS_LOCK = threading.Lock()
_BUILDING: dict[tuple[str, str, int], threading.Lock] = {}
_TWINS_KEPT = 32


def load_twin(store: TwinStore, patient: str, version: int | None) -> Any:
    """The fitted twin of a stored version, from a small LRU cache of rebuilt twins.

    Stored versions never change (the store is append-only), so a rebuilt twin is reused by later
    forecasts and comparisons of the same version: rebuilding (posterior, events, population) costs
    ~0.1-0.4 s, the forecast itself ~20 ms.
    """
    from bayestwin.twin import Twin

    chosen = require_twin(store, patient, version)
    key = (store.store_id, store.pseudonym(patient), chosen)
    with _TWINS_LOCK:
        twin = _TWINS.get(key)
        if twin is not None:
            _TWINS.move_to_end(key)
            return twin
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:  # one rebuild per version, however many requests ask for it at once
        with _TWINS_LOCK:
            twin = _TWINS.get(key)
        if twin is None:
            twin = Twin.from_store(store, patient, chosen)
            with _TWINS_LOCK:
                _TWINS[key] = twin
                while len(_TWINS) > _TWINS_KEPT:
                    _TWINS.popitem(last=False)
                _BUILDING.pop(key, None)
    return twin


def forecast(store: TwinStore, patient: str, version: int | None, times: list[float], levels: list[float],
             seed: int, allow_failed: bool) -> dict[str, Any]:
    """Forecast from a stored version; record it with that version (audited)."""
    twin = load_twin(store, patient, version)
    fc = twin.forecast(times, override_convergence=allow_failed, seed=seed)
    text = fc.to_json(sorted({0.5, *levels}))
    with WRITE_LOCK:
        record = store.add_forecast(patient, twin.stored_version_, text)
    return {"patient": patient, "version": twin.stored_version_, "record": record,
            "status": fc.metadata["diagnostics"]["status"], "forecast": jsonable(json.loads(text))}
