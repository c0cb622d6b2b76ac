"""Eight schools, non-centred: posteriordb ``eight_schools-eight_schools_noncentered``.

The Stan model (``tests/data/posteriordb_eight_schools/model.stan``) in bayestwin's spec language: each school
is a patient with one observation, its estimated treatment effect ``y_j`` (DV), measured with the known
standard error ``sigma_j`` (column DVSD, ``ErrorModel("known_sd")``). The school's true effect is the
``longitudinal.level`` parameter ``level`` on the identity scale, ``theta_j = mu + eta_j``,
``eta_j ~ Normal(0, tau)``: typical value ``mu ~ Normal(0, 5)`` (site ``tv_level``), between-school SD
``tau ~ HalfCauchy(5)`` (site ``omega_level``; Stan's ``cauchy(0, 5)`` on ``real<lower=0>``), non-centred
(``theta_trans`` is bayestwin's ``eta_z``). Scores have no unit; the time axis is unused (every school at 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bayestwin.data import EventTable, read_nonmem
from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The posteriordb eight-schools spec (non-centred)."""
    return TwinSpec(
        name="posteriordb.eight_schools_noncentered",
        model="longitudinal.level",
        description=__doc__,
        parameters=(Parameter("level", unit="dimensionless", typical=Prior("Normal", mu=0.0, sigma=5.0),
                              bsv=Prior("HalfCauchy", sigma=5.0), scale="identity"),),
        error=(ErrorModel("known_sd", output="value"),),
        centered=False,
        units=(("time", "h"), ("amt", "mg"), ("value", "dimensionless")),
    )


def events(data: Mapping[str, Any]) -> EventTable:
    """The posteriordb ``data.json`` (J, y, sigma) as an event table: one observation per school."""
    frame = pd.DataFrame({"ID": range(1, data["J"] + 1), "TIME": 0.0, "DV": data["y"], "DVSD": data["sigma"]})
    return read_nonmem(frame, units={"time": "h", "dv": "dimensionless"})
