"""Event expansion and derived time columns.

Rules stated once, here:

* **ADDL/II expansion.** A dose with ``ADDL = n`` and ``II = τ`` stands for
  ``n + 1`` doses at ``t, t + τ, …, t + nτ``. Expansion writes the implied doses
  as explicit rows (``ADDL = 0``, ``II = 0``, ``SS = 0``; amount, rate, duration
  and compartment copied; the parent keeps its II for steady-state use). An
  implied dose at the same time as a recorded event is placed *after* it, so a
  sample recorded at a dose time is a pre-dose (trough) sample. Implied rows keep
  the source row of the dose that implied them.
* **Covariates, last observation carried forward (LOCF).** Within a patient a
  missing covariate value takes the last value recorded at or before that row,
  in row order. Values are never carried backwards; a row with no earlier value
  stays missing and is reported (rules C001/C002).
* **Time after dose** is the time since the most recent dose (EVID 1 or 4) at or
  before the row, ADDL doses included; it is missing (NaN) before a patient's
  first dose and after a reset without a dose (EVID 3) until the next dose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from bayestwin.data.event_table import DOSE_EVIDS, EventTable

__all__ = ["carry_forward", "expand_addl", "time_after_dose"]


def expand_addl(table: EventTable) -> EventTable:
    """Return `table` with every ADDL dose written out as its own row.

    Total dose and dose times are preserved exactly (times are ``t + k * II``).

    Examples
    --------
    >>> import pandas as pd
    >>> from bayestwin.data import read_nonmem
    >>> t = read_nonmem(pd.DataFrame({"ID": [1, 1], "TIME": [0.0, 30.0], "AMT": [100.0, 0.0],
    ...                               "II": [12.0, 0.0], "ADDL": [2, 0], "DV": [".", "3.1"]}),
    ...                 units={"time": "h", "amt": "mg", "dv": "mg/L"})
    >>> expand_addl(t).doses["time"].tolist()
    [0.0, 12.0, 24.0]
    """
    f = table.frame
    has_addl = f["evid"].isin(DOSE_EVIDS) & (f["addl"] > 0)
    if not has_addl.any():
        return table
    parents = f[has_addl]
    counts = parents["addl"].astype(np.int64).to_numpy()
    rep = parents.loc[parents.index.repeat(counts)] if parents.index.is_unique else parents.iloc[
        np.repeat(np.arange(len(parents)), counts)]
    k = np.concatenate([np.arange(1, c + 1) for c in counts]).astype(float)
    implied = rep.copy()
    implied["time"] = rep["time"].to_numpy() + k * rep["ii"].to_numpy()
    implied["addl"] = 0.0
    implied["ii"] = 0.0
    implied["ss"] = 0.0
    implied["evid"] = 1.0  # EVID 4 resets only once, at the recorded dose
    if table.covariates:
        implied[list(table.covariates)] = np.nan
    base = f.copy()
    base.loc[has_addl, "addl"] = 0.0
    # A reset (EVID 3/4) starts a new segment whose clock may restart; implied doses stay in
    # the segment of the dose that implied them.
    segment = f["evid"].isin((3, 4)).groupby(f["id"], sort=False).cumsum().to_numpy()
    base = base.assign(_order=np.arange(len(base)), _implied=0, _seg=segment)
    implied = implied.assign(_order=-1, _implied=1, _seg=np.repeat(segment[has_addl.to_numpy()], counts))
    both = pd.concat([base, implied])
    both["_pat"] = pd.Categorical(both["id"], categories=pd.unique(f["id"]), ordered=True)
    # Within a patient and segment: by time, recorded rows before implied doses at the same
    # time, recorded rows in their source order.
    both = both.sort_values(["_pat", "_seg", "time", "_implied", "_order"], kind="stable")
    both = both.drop(columns=["_order", "_implied", "_pat", "_seg"])
    if table.covariates:
        both = carry_forward(both, table.covariates)
    both = both.astype({c: f[c].dtype for c in f.columns if c not in table.covariates})
    return replace(table, frame=both)


def carry_forward(frame: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Fill missing covariate values by LOCF within each patient (row order).

    Examples
    --------
    >>> f = pd.DataFrame({"id": [1, 1, 1, 2], "WT": [None, 70.0, None, None]})
    >>> carry_forward(f, ["WT"])["WT"].tolist()
    [nan, 70.0, 70.0, nan]
    """
    out = frame.copy()
    cols = list(covariates)
    out[cols] = out.groupby("id", sort=False)[cols].ffill()
    return out


def time_after_dose(table: EventTable) -> pd.Series:
    """Time since the latest dose at or before each row (ADDL doses included).

    The result is indexed like ``expand_addl(table).frame`` and is NaN before a
    patient's first dose.

    Examples
    --------
    >>> from bayestwin.data import load_dataset
    >>> tad = time_after_dose(load_dataset("theo_sd"))
    >>> float(tad.iloc[2])
    0.25
    """
    f = expand_addl(table).frame
    # a dose marks its time; a reset without a dose (EVID 3) marks "no dose since" (-inf)
    marker = f["time"].where(f["evid"].isin(DOSE_EVIDS)).mask(f["evid"] == 3, -np.inf)
    last = marker.groupby(f["id"], sort=False).ffill().replace(-np.inf, np.nan)
    tad = f["time"] - last
    tad.name = f"time_after_dose [{table.units['time']}]"
    return tad
