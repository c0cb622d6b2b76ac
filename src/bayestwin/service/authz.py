"""Authorisation: which role may do which action, on which patient. Deny by default.

Every route names its :class:`Action`; :func:`authorize` decides from the principal alone (role and patient
list) before anything is read, parsed further or fitted. A token limited to patients (``patients`` claim)
never reaches another patient's twin, whatever its role (OWASP API1, broken object-level authorisation):
the route's patient is compared with the claim both as given and as its store pseudonym.

Examples
--------
>>> from bayestwin.service.auth import Principal
>>> authorize(Principal("dr.a", "clinician", frozenset({"12"})), Action.FORECAST, patient="12")
>>> authorize(Principal("dr.a", "clinician", frozenset({"12"})), Action.FORECAST, patient="13")
Traceback (most recent call last):
...
bayestwin.exceptions.ServiceForbiddenError: this token is not allowed to forecast patient '13' (it is limited to ...
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from bayestwin.exceptions import ServiceForbiddenError
from bayestwin.service.auth import Principal

__all__ = ["POLICY", "Action", "authorize"]


class Action(StrEnum):
    """What a request does; the policy table is keyed by it."""

    REGISTER_SPEC = "register a model spec"
    READ_SPEC = "read a model spec"
    FIT_POPULATION = "fit a population"
    READ_POPULATION = "read a population"
    CHECK_EVENTS = "check event data of"
    CREATE_TWIN = "create the twin of"
    APPEND_DATA = "add data to the twin of"
    FORECAST = "forecast"
    COMPARE = "compare plans for"
    READ_RECOMMENDATION = "read the recommendations of"
    READ_HISTORY = "read the history of"
    READ_JOB = "read a job"


#: action -> roles allowed. Anything not listed is denied.
POLICY: dict[Action, frozenset[str]] = {
    Action.REGISTER_SPEC: frozenset({"modeler"}),
    Action.READ_SPEC: frozenset({"modeler", "clinician", "service"}),
    Action.FIT_POPULATION: frozenset({"modeler"}),
    Action.READ_POPULATION: frozenset({"modeler", "clinician", "service"}),
    Action.CHECK_EVENTS: frozenset({"clinician", "service"}),
    Action.CREATE_TWIN: frozenset({"clinician", "service"}),
    Action.APPEND_DATA: frozenset({"clinician", "service"}),
    Action.FORECAST: frozenset({"clinician", "service"}),
    Action.COMPARE: frozenset({"clinician"}),
    Action.READ_RECOMMENDATION: frozenset({"clinician"}),
    Action.READ_HISTORY: frozenset({"clinician", "service"}),
    Action.READ_JOB: frozenset({"modeler", "clinician", "service"}),
}


def authorize(principal: Principal, action: Action, *, patient: str | None = None,
              pseudonym: Callable[[str], str] | None = None) -> None:
    """Return if `principal` may do `action` (on `patient`), else raise :class:`ServiceForbiddenError`.

    `pseudonym` maps a patient id to its store pseudonym, so that a claim may list either form.

    Examples
    --------
    >>> from bayestwin.service.auth import Principal
    >>> authorize(Principal("m", "modeler"), Action.FORECAST, patient="12")
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.ServiceForbiddenError: role 'modeler' may not forecast patients (allowed: clinician, service)
    """
    roles = POLICY.get(action, frozenset())
    what = f"{action.value} patients" if action in _PATIENT_ACTIONS else action.value
    if principal.role not in roles:
        allowed = ", ".join(sorted(roles)) or "nobody"
        raise ServiceForbiddenError(f"role {principal.role!r} may not {what} (allowed: {allowed})")
    if action in _PATIENT_ACTIONS and patient is None:
        raise ServiceForbiddenError(f"{action.value} needs a patient")  # a route bug: deny rather than allow
    if patient is None or principal.patients is None:
        return
    if patient in principal.patients or (pseudonym is not None and pseudonym(patient) in principal.patients):
        return
    raise ServiceForbiddenError(f"this token is not allowed to {action.value} patient {patient!r} (it is limited to "
                                "other patients)")


_PATIENT_ACTIONS = frozenset({Action.CHECK_EVENTS, Action.CREATE_TWIN, Action.APPEND_DATA, Action.FORECAST,
                              Action.COMPARE, Action.READ_RECOMMENDATION, Action.READ_HISTORY})
