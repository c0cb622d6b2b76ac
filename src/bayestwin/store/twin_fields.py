"""What the store keeps of a fitted Twin, as plain values (no JAX import here).

The store's core API takes plain values so that it does not depend on the
modelling layers; this module reads them off a fitted :class:`~bayestwin.twin.Twin`
by attribute (``idata_``, ``diagnostics_``, ``events_``, ``spec``, ``population_version_``: the
version of the population the twin was conditioned on).

Examples
--------
>>> from types import SimpleNamespace as NS
>>> twin = NS(idata_="<idata>", patient_id_="P1", events_=NS(digest=lambda: "sha256:d"),
...           spec=NS(digest=lambda: "sha256:s"), population_version_="pop-0123456789abcdef",
...           diagnostics_=NS(to_dict=lambda: {"ok": True}), population_overridden_=False)
>>> sorted(twin_fields(twin))
['data_hash', 'diagnostics', 'patient', 'population_version', 'posterior', 'spec_hash']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bayestwin.exceptions import NotFittedError

if TYPE_CHECKING:  # pragma: no cover - types only; the store must not import the twin layer
    from bayestwin.data.event_table import EventTable
    from bayestwin.twin import Twin

__all__ = ["twin_fields"]


def twin_fields(twin: Twin, events: EventTable | None = None) -> dict[str, Any]:
    """Keyword arguments of ``TwinStore.commit_version`` for a fitted twin (all but ``expected_parent``).

    `events` is the patient's canonical event table; by default the one the twin was fitted on.
    """
    if getattr(twin, "idata_", None) is None:
        raise NotFittedError("this Twin is not fitted yet; call twin.fit(events) before storing it")
    table = events if events is not None else twin.events_
    diagnostics = {"twin": twin.diagnostics_.to_dict(),
                   "population_overridden": bool(getattr(twin, "population_overridden_", False))}
    return {"patient": twin.patient_id_, "posterior": twin.idata_, "data_hash": table.digest(),
            "spec_hash": twin.spec.digest(), "population_version": getattr(twin, "population_version_", None),
            "diagnostics": diagnostics}
