"""What the store keeps of a fitted Twin, as plain values (no JAX import here).

The store's core API takes plain values so that it does not depend on the
modelling layers; this module reads them off a fitted :class:`~bayestwin.twin.Twin`
by attribute (``idata_``, ``diagnostics_``, ``events_``, ``spec``, ``population_version_``: the
version of the population the twin was conditioned on).

A real twin also leaves what is needed to rebuild and warm-start it later
(``Twin.from_store``), in the version's diagnostics JSON:

- ``settings``: its sampler settings, convergence gate, number of population components,
  ``override_convergence`` and ``update_warmup``;
- ``sampler_state``: each chain's final unconstrained position, adapted step size and inverse
  mass matrix (``twin.warm_``), as ``{"dtype", "shape", "values"}`` (values exact: floats are
  written with the shortest text that reads back to the same number);
- ``fit_mode``: how the version was fitted (``"cold"``, ``"warm"``, or why a warm fit fell back to cold).

Examples
--------
>>> from types import SimpleNamespace as NS
>>> twin = NS(idata_="<idata>", patient_id_="P1", events_=NS(digest=lambda: "sha256:d"),
...           spec=NS(digest=lambda: "sha256:s"), population_version_="pop-0123456789abcdef",
...           diagnostics_=NS(to_dict=lambda: {"ok": True}), population_overridden_=False)
>>> sorted(twin_fields(twin))
['data_hash', 'diagnostics', 'patient', 'population_version', 'posterior', 'spec_hash']
>>> array_to_json([[1.5, 2.0]])
{'dtype': 'float64', 'shape': [1, 2], 'values': [1.5, 2.0]}
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayestwin.exceptions import NotFittedError

if TYPE_CHECKING:  # pragma: no cover - types only; the store must not import the twin layer
    from bayestwin.data.event_table import EventTable
    from bayestwin.twin import Twin

__all__ = ["array_from_json", "array_to_json", "twin_fields"]


def twin_fields(twin: Twin, events: EventTable | None = None) -> dict[str, Any]:
    """Keyword arguments of ``TwinStore.commit_version`` for a fitted twin (all but ``expected_parent``).

    `events` is the patient's canonical event table; by default the one the twin was fitted on. When
    it is an ``EventTable`` it is returned under ``"events"`` too (``commit_twin`` stores a snapshot of it).
    """
    if getattr(twin, "idata_", None) is None:
        raise NotFittedError("this Twin is not fitted yet; call twin.fit(events) before storing it")
    table = events if events is not None else twin.events_
    diagnostics: dict[str, Any] = {"twin": twin.diagnostics_.to_dict(),
                                   "population_overridden": bool(getattr(twin, "population_overridden_", False))}
    if hasattr(twin, "n_components"):  # a real Twin (stand-ins in tests may carry only the fitted state)
        diagnostics["settings"] = {
            "sampler": _plain(twin.sampler), "gate": _plain(twin.gate), "n_components": int(twin.n_components),
            "override_convergence": bool(twin.override_convergence), "update_warmup": int(twin.update_warmup)}
        diagnostics["fit_mode"] = str(getattr(twin, "update_mode_", None) or getattr(twin, "rebase_mode_", None)
                                      or "cold")
    warm = getattr(twin, "warm_", None)
    if warm is not None:
        diagnostics["sampler_state"] = {
            "positions": {str(k): array_to_json(v) for k, v in warm.positions.items()},
            "step_size": array_to_json(warm.step_size),
            "inverse_mass_matrix": array_to_json(warm.inverse_mass_matrix)}
    fields = {"patient": twin.patient_id_, "posterior": twin.idata_, "data_hash": table.digest(),
              "spec_hash": twin.spec.digest(), "population_version": getattr(twin, "population_version_", None),
              "diagnostics": diagnostics}
    if hasattr(table, "frame") and hasattr(table, "units"):
        fields["events"] = table
    return fields


def array_to_json(value: Any) -> dict[str, Any]:
    """An array as ``{"dtype", "shape", "values"}`` (values flattened, as plain Python numbers)."""
    arr = np.asarray(value)
    return {"dtype": str(arr.dtype), "shape": list(arr.shape), "values": arr.ravel().tolist()}


def array_from_json(doc: dict[str, Any]) -> np.ndarray:
    """The array written by :func:`array_to_json`, with its dtype and shape.

    Examples
    --------
    >>> a = np.float32([[0.1, 2.5e-8]])
    >>> bool((array_from_json(array_to_json(a)) == a).all()), array_from_json(array_to_json(a)).dtype
    (True, dtype('float32'))
    """
    return np.asarray(doc["values"], dtype=doc["dtype"]).reshape(doc["shape"])


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
