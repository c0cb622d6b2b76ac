"""Radon in Minnesota homes: posteriordb ``radon_mn-radon_hierarchical_intercept_noncentered``.

The Stan model (``tests/data/posteriordb_radon/model.stan``) in bayestwin's spec language: 919 houses in 85
counties, log radon y_n = alpha_county + beta_1 log_uppm + beta_2 floor_n + e_n. Each county is a patient
and its houses are its observations; the county intercept is the ``longitudinal.level`` parameter ``level`` on
the identity scale with additive normal random effects (non-centred as in Stan): typical value
mu_alpha ~ Normal(0, 10) (site ``tv_level``), between-county SD sigma_alpha ~ HalfNormal(1)
(``omega_level``; Stan's ``normal(0, 1)`` on ``real<lower=0>``), and two additive linear covariate effects,
beta_1 on the county's log uranium (``beta_level_log_uppm``) and beta_2 on the floor of the measurement
(``beta_level_floor``), both ~ Normal(0, 10) with reference 0; residual SD sigma_y ~ HalfNormal(1)
(``sigma_add``). Stan's county intercept alpha_j = mu_alpha + sigma_alpha alpha_raw_j is ``tv_level + eta_j``.

Why the houses sit at times 0, 1, 2, ... within their county: the floor is a property of each measurement,
not of the county, so it must vary between a county's observations. The spec language already has exactly
that, covariates that change between a patient's records (the time-varying covariate machinery: last value
carried forward, parameters piecewise constant, ``predict_segments``); giving each house its own record time
lets the floor recorded on its row act on that house alone, with no new concept in the spec language. The
time axis means nothing else here (``longitudinal.level`` is constant in time), and the county's uranium
level is constant within each county.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bayestwin.data import EventTable, read_nonmem
from bayestwin.spec import CovariateEffect, ErrorModel, Parameter, Prior, TwinSpec


def spec() -> TwinSpec:
    """The posteriordb radon spec (hierarchical intercept, non-centred)."""
    wide = Prior("Normal", mu=0.0, sigma=10.0)
    return TwinSpec(
        name="posteriordb.radon_hierarchical_intercept_noncentered",
        model="longitudinal.level",
        description=__doc__,
        parameters=(Parameter(
            "level", unit="dimensionless", typical=wide, bsv=Prior("HalfNormal", sigma=1.0), scale="identity",
            covariates=(CovariateEffect("log_uppm", form="linear", reference=0.0, prior=wide),
                        CovariateEffect("floor", form="linear", reference=0.0, prior=wide))),),
        error=(ErrorModel("additive", output="value", priors=(("sigma_add", Prior("HalfNormal", sigma=1.0)),)),),
        centered=False,
        units=(("time", "h"), ("amt", "mg"), ("value", "dimensionless")),
    )


def events(data: Mapping[str, Any]) -> EventTable:
    """The posteriordb ``data.json`` as an event table: county = patient, its houses at times 0, 1, 2, ..."""
    frame = pd.DataFrame({"ID": data["county_idx"], "DV": data["log_radon"], "log_uppm": data["log_uppm"],
                          "floor": data["floor_measure"]})
    frame = frame.sort_values("ID", kind="stable").reset_index(drop=True)  # houses keep their order
    frame.insert(1, "TIME", frame.groupby("ID").cumcount().astype(float))
    return read_nonmem(frame, units={"time": "h", "dv": "dimensionless", "log_uppm": "dimensionless",
                                     "floor": "dimensionless"})
