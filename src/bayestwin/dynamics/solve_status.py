"""Outcome codes of the ODE engine (``bayestwin.dynamics.ode``) and the messages that explain them.

A solve never raises inside jit: it returns one ``SolveStatus`` code per patient, and the layer that
knows the patients turns codes into messages with ``status_messages`` and decides what to raise.

Examples
--------
>>> SolveStatus(1).name
'MAX_STEPS_REACHED'
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import numpy as np
from jax import Array

from bayestwin.exceptions import SpecError

__all__ = ["SolveStatus", "status_messages"]


class SolveStatus(enum.IntEnum):
    """Outcome of ``solve_amounts``, one code per patient; ``.message`` says what went wrong and what to try."""

    OK = 0
    MAX_STEPS_REACHED = 1
    STEADY_STATE_NOT_CONVERGED = 2
    NONFINITE = 3
    SOLVER_FAILED = 4
    UNSUPPORTED_DOSE = 5

    @property
    def message(self) -> str:
        """What the code means and how to fix it."""
        return _MESSAGES[self]


_MESSAGES = {
    SolveStatus.OK: "solved",
    SolveStatus.MAX_STEPS_REACHED: (
        "the ODE solver used max_steps steps in one interval between events without reaching its end; the model "
        "may be stiff (use solver='kvaerno5') or the interval long (raise max_steps)"),
    SolveStatus.STEADY_STATE_NOT_CONVERGED: (
        "the steady state of an ss dose did not converge in ss_iterations Newton steps; raise ss_iterations, and "
        "check that every compartment is eliminated (an accumulating compartment has no steady state)"),
    SolveStatus.NONFINITE: (
        "amounts or their derivatives became NaN or infinite; check theta, y0 and dose amounts for NaN, inf or "
        "values that make the right-hand side blow up"),
    SolveStatus.SOLVER_FAILED: (
        "the ODE solver failed (step size underflow or a non-converging implicit step); try solver='kvaerno5' "
        "or looser rtol/atol"),
    SolveStatus.UNSUPPORTED_DOSE: (
        "a dose record cannot be applied: its cmt is outside the model's compartments, or a steady-state record "
        "has ii <= 0 or an infusion longer than ii, or steady state is off (ss_iterations=0); fix the record"),
}


def status_messages(status: Array | np.ndarray | int, patient_ids: Sequence[Any] | None = None) -> list[str]:
    """One message per patient whose status is not OK; an empty list when all solved.

    No existing ``bayestwin.exceptions`` class fits a failed ODE solve, so this
    returns the messages and the caller raises what suits its layer.

    Parameters
    ----------
    status : int or array of int
        The status from ``solve_amounts``, scalar or one per patient (``vmap``).
    patient_ids : sequence, optional
        Labels for the messages, in the order of ``status``; positions by default.

    Examples
    --------
    >>> status_messages([0, 1], ["P1", "P2"])[0].split(": ")[:2]
    ['patient P2', 'max_steps_reached']
    >>> status_messages(0)
    []
    """
    codes = np.atleast_1d(np.asarray(status)).ravel()
    ids = list(range(codes.size)) if patient_ids is None else list(patient_ids)
    if len(ids) != codes.size:
        raise SpecError(f"status_messages got {codes.size} status codes but {len(ids)} patient ids; pass one id "
                        "per patient, in the order of the status array")
    return [f"patient {pid}: {SolveStatus(int(c)).name.lower()}: {SolveStatus(int(c)).message}"
            for pid, c in zip(ids, codes, strict=True) if int(c) != SolveStatus.OK]
