"""Twins to and from a twin store: rebuild a committed version as a fitted ``Twin``, ready to update.

``TwinStore.commit_twin`` keeps, per version, the posterior, the event snapshot (the patient's events,
id replaced by the pseudonym), the twin's settings and the final state of its chains (see
:mod:`bayestwin.store.twin_fields`). :func:`load_twin` (also ``Twin.from_store``) puts them back
together:

- the population the version was conditioned on, from the store (``PopulationFit.from_store``), whose
  spec must hash to the version's ``spec_hash``;
- the events, whose ``EventTable.digest()`` must equal the version's ``data_hash``;
- the posterior exactly as committed, its convergence report recomputed with the stored gate;
- the warm state (``twin.warm_``: each chain's last unconstrained position, adapted step size and
  inverse mass matrix) exactly as it was, so that ``twin.update(new_events)`` warm-starts as it
  would have in the process that made the version.

Examples
--------
>>> twin = Twin.from_store(store, "MRN-1")  # doctest: +SKIP
>>> twin.update(new_rows)  # doctest: +SKIP
>>> store.commit_twin(twin, expected_parent=twin.stored_version_)  # doctest: +SKIP
2
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

import jax.numpy as jnp

from bayestwin.data.snapshot import events_from_bytes
from bayestwin.diagnostics.convergence import ConvergenceGate, check_convergence
from bayestwin.exceptions import InputError, StoreError, StoreIntegrityError
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.fit import PopulationFit, load_population
from bayestwin.inference.kernels import WarmState
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.models.registry import get_model
from bayestwin.store.twin_fields import array_from_json
from bayestwin.twin import Twin

if TYPE_CHECKING:  # pragma: no cover - types only
    from bayestwin.store import TwinStore

__all__ = ["load_twin"]


def load_twin(store: TwinStore, patient: object, version: int | None = None, *,
              population: PopulationFit | None = None) -> Twin:
    """The fitted twin of `patient`'s `version` (default: the latest) in `store`.

    Parameters
    ----------
    store : TwinStore
        An open store.
    patient : object
        The patient's own identifier (as given when the twin was committed; compared as text).
    version : int, optional
        The version to load; default the latest.
    population : PopulationFit, optional
        The population the version was conditioned on, if already loaded (its version must match).

    Returns
    -------
    Twin
        Fitted (``idata_``, ``diagnostics_``, ``events_``, ``warm_``, ...), with ``stored_version_`` set
        to the loaded version number: pass it as ``expected_parent`` when committing an update.

    Raises
    ------
    StoreError
        If the patient or version is not in the store, or the version was committed without its events
        or settings (by ``commit_version`` directly, or by an older bayestwin).
    StoreIntegrityError
        If the stored spec or events do not reproduce the version's hashes.
    """
    stored = store.load_version(patient, version)
    where = f"version {stored.version} of patient {stored.patient} in {store.path}"
    settings = stored.diagnostics.get("settings")
    if stored.population_version is None or settings is None:
        raise StoreError(f"{where} was committed without its population version or twin settings, so it cannot "
                         "be rebuilt. Fit the twin again from the patient's data (bayestwin fit ...) and commit it.")
    if population is not None and population.version != stored.population_version:
        raise InputError(f"{where} was conditioned on population {stored.population_version}, not on the given "
                         f"{population.version}; pass population=None to load the right one")
    pop = population if population is not None else load_population(store, stored.population_version)
    spec = pop.spec
    if spec.digest() != stored.spec_hash:
        raise StoreIntegrityError(f"{where}: its population's spec hashes to {spec.digest()}, not the version's "
                                  f"{stored.spec_hash}; the store was altered. Restore it from a backup, or refit.")
    events = events_from_bytes(store.load_events(patient, stored.version), patient=patient,
                               source=f"event snapshot of {where}")
    if events.digest() != stored.data_hash:
        raise StoreIntegrityError(f"{where}: its event snapshot hashes to {events.digest()}, not the version's data "
                                  f"hash {stored.data_hash}; the store was altered (or the snapshot format changed). "
                                  "Restore the store from a backup, or fit the twin again from the data.")
    gate = ConvergenceGate(**settings["gate"]) if settings.get("gate") else None
    twin = Twin(spec, population=pop, sampler=_sampler(settings.get("sampler")), gate=gate,
                n_components=int(settings["n_components"]),
                override_convergence=bool(settings["override_convergence"]),
                update_warmup=int(settings["update_warmup"]))
    twin.idata_ = stored.posterior
    twin.diagnostics_ = check_convergence(stored.posterior, var_names=list(spec.bsv_parameters), gate=gate)
    twin.events_ = events
    twin.arrays_ = cohort_arrays(events, spec, get_model(spec.model))
    pid = events.patients[0]
    twin.patient_id_ = pid.item() if hasattr(pid, "item") else pid
    twin.population_overridden_ = bool(stored.diagnostics.get("population_overridden", False))
    twin.population_version_ = pop.version
    twin.stored_version_ = stored.version
    state = stored.diagnostics.get("sampler_state")
    if state is not None:
        twin.warm_ = WarmState(positions={k: jnp.asarray(array_from_json(v)) for k, v in state["positions"].items()},
                               step_size=jnp.asarray(array_from_json(state["step_size"])),
                               inverse_mass_matrix=jnp.asarray(array_from_json(state["inverse_mass_matrix"])))
    return twin


def _sampler(stored: dict[str, Any] | None) -> SamplerConfig | None:
    if stored is None:
        return None
    known = {f.name for f in fields(SamplerConfig)}
    return SamplerConfig(**{k: v for k, v in stored.items() if k in known})
