"""Twins from a fleet fit: one patient's ``fit_fleet`` result as a fitted ``Twin``, without refitting.

The twin gets the patient's posterior (``FleetFit.patient_posterior``: the layout ``Twin.fit`` makes), its
convergence report (``check_convergence`` with the fleet's gate, on that posterior), its events and padded
arrays, and the final sampler state of its chains (``warm_``), so ``forecast``, the decision functions and a
warm ``update`` work as on a twin fitted by ``Twin.fit``.

Examples
--------
>>> fleet = fit_fleet(spec, population, cohort)  # doctest: +SKIP
>>> twin = fleet_twin(fleet, 12)  # doctest: +SKIP
>>> twin.forecast([24.0, 48.0])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from bayestwin.diagnostics.convergence import check_convergence
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.fleet import FleetFit
from bayestwin.inference.kernels import WarmState
from bayestwin.models.registry import get_model
from bayestwin.twin import Twin

__all__ = ["fleet_twin", "fleet_twins"]


def fleet_twin(fleet: FleetFit, patient: Any) -> Twin:
    """The fitted ``Twin`` of `patient` from `fleet` (raises ``InputError`` for a patient not in it).

    Parameters
    ----------
    fleet : FleetFit
        The result of ``fit_fleet``.
    patient : object
        A patient id of the fleet's cohort.

    Returns
    -------
    Twin
        Fitted: ``idata_``, ``diagnostics_`` (this patient's gate), ``events_``, ``arrays_``, ``warm_``,
        ``patient_id_``, ``population_version_``; its settings are the fleet's (``update`` then runs the
        twin's own warm program).
    """
    i = fleet._index(patient)
    spec = fleet.spec
    twin = Twin(spec, population=fleet.population, sampler=fleet.sampler, gate=fleet.gate,
                n_components=fleet.n_components, override_convergence=fleet.population_overridden)
    twin.idata_ = fleet.patient_posterior(patient)
    twin.diagnostics_ = check_convergence(twin.idata_, var_names=list(spec.bsv_parameters), gate=fleet.gate)
    events = fleet.cohort.patient(fleet.patients[i])
    twin.events_ = events
    twin.arrays_ = cohort_arrays(events, spec, get_model(spec.model))
    pid = fleet.patients[i]
    twin.patient_id_ = pid.item() if hasattr(pid, "item") else pid
    twin.population_overridden_ = fleet.population_overridden
    twin.population_version_ = fleet.population.version
    twin.wall_time_s_ = fleet.wall_time_s / len(fleet.patients)
    warm = fleet.warm
    twin.warm_ = WarmState(positions={"z": jnp.asarray(warm["positions"][i])},
                           step_size=jnp.asarray(warm["step_size"][i]),
                           inverse_mass_matrix=jnp.asarray(warm["inverse_mass_matrix"][i]))
    return twin


def fleet_twins(fleet: FleetFit, *, include_failed: bool = False) -> dict[Any, Twin]:
    """Every patient's ``Twin`` (by default only those that passed the gate; ``fleet.failed`` lists the rest)."""
    failed = set(fleet.failed)
    return {pid: fleet_twin(fleet, pid) for pid in fleet.patients if include_failed or pid not in failed}
