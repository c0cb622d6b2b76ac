"""Rats growth curves: posteriordb ``rats_data-rats_model`` (the BUGS "rats" example, Stan version).

The Stan model (``tests/data/posteriordb_rats/model.stan``) in bayestwin's spec language: 30 rats weighed at
ages x = 8, 15, 22, 29, 36 days; each rat is a patient with its own straight line
(``longitudinal.linear``): weight = alpha_i + beta_i (x - xbar), xbar = 22 days (``time_ref``, fixed).
Intercepts and slopes are identity-scale parameters with additive normal random effects, centred as in Stan
(``alpha ~ normal(mu_alpha, sigma_alpha)``): typical values mu_alpha, mu_beta ~ Normal(0, 100) (sites
``tv_intercept``, ``tv_slope``), between-rat SDs sigma_alpha, sigma_beta (``omega_intercept``,
``omega_slope``) and the residual SD sigma_y (``sigma_add``, additive error) with Stan's implicit flat prior
on (0, inf): ``Prior("HalfFlat")``. The generated quantity alpha0 = mu_alpha - xbar mu_beta (weight at birth)
is computed from the draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bayestwin.data import EventTable, read_nonmem
from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec

XBAR = 22.0  #: days; data.json's xbar, the centring age


def spec(xbar: float = XBAR) -> TwinSpec:
    """The posteriordb rats spec (centred, flat priors on the three SDs)."""
    flat_sd = Prior("HalfFlat")
    wide = Prior("Normal", mu=0.0, sigma=100.0)
    return TwinSpec(
        name="posteriordb.rats_model",
        model="longitudinal.linear",
        description=__doc__,
        parameters=(
            Parameter("intercept", unit="g", typical=wide, bsv=flat_sd, scale="identity"),
            Parameter("slope", unit="g/day", typical=wide, bsv=flat_sd, scale="identity"),
            Parameter("time_ref", unit="day", fixed=xbar, scale="identity"),
        ),
        error=(ErrorModel("additive", output="value", priors=(("sigma_add", flat_sd),)),),
        centered=True,
        units=(("time", "day"), ("amt", "mg"), ("value", "g")),
    )


def events(data: Mapping[str, Any]) -> EventTable:
    """The posteriordb ``data.json`` (rat, x, y) as an event table: rat i's weights at ages x (days)."""
    frame = pd.DataFrame({"ID": data["rat"], "TIME": data["x"], "DV": data["y"]})
    frame = frame.sort_values(["ID", "TIME"], kind="stable").reset_index(drop=True)
    return read_nonmem(frame, units={"time": "day", "dv": "g"})
