"""Appending new events to a patient's history: one validated table, in the history's units.

Used by ``Twin.update`` (new lab values, new doses) and by ``bayestwin update`` on the command line.

Examples
--------
>>> import pandas as pd
>>> from bayestwin.data import read_nonmem
>>> old = read_nonmem(pd.DataFrame({"ID": [7, 7], "TIME": [0.0, 1.0], "EVID": [1, 0], "AMT": [100.0, 0.0],
...                                 "DV": [".", 4.0]}), units={"time": "h", "amt": "mg", "dv": "mg/L"})
>>> new = read_nonmem(pd.DataFrame({"ID": [7], "TIME": [120.0], "EVID": [0], "AMT": [0.0], "DV": [2500.0]}),
...                   units={"time": "min", "amt": "mg", "dv": "ng/mL"})
>>> append_events(old, new).observations[["time", "dv"]].to_numpy().tolist()
[[1.0, 4.0], [2.0, 2.5]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayestwin.data.columns import COLUMN_ORDER
from bayestwin.data.event_table import EventTable
from bayestwin.data.ingest.nonmem import read_nonmem
from bayestwin.units import conversion_factor, convert

__all__ = ["append_events"]


def append_events(table: EventTable, new: EventTable) -> EventTable:
    """One validated table holding `table`'s events followed by `new`'s (units converted to `table`'s).

    DV, LIMIT and LLOQ are converted DVID by DVID (each output may have its own unit), and covariates
    with a unit to the unit `table` declares for them. Rows are sorted by time (stable: at equal times
    the history's rows come first) and the result is validated again, so rules that span both (e.g.
    duplicate records) are checked.

    Parameters
    ----------
    table : EventTable
        The history.
    new : EventTable
        The rows to add, in any compatible units.

    Returns
    -------
    EventTable
        The combined history (index: row numbers of the combined table).
    """
    frame = new.frame.copy()
    for col, unit_col in (("time", "time"), ("dur", "time"), ("ii", "time")):
        frame[col] = convert(frame[col].to_numpy(dtype=float), new.unit(unit_col), table.unit(unit_col))
    if "amt" in new.units or "amt" in table.units:  # observation-only data (no doses) declare no amount unit
        frame["amt"] = convert(frame["amt"].to_numpy(dtype=float), new.unit("amt"), table.unit("amt"))
        frame["rate"] = convert(frame["rate"].to_numpy(dtype=float), new.unit("rate"), table.unit("rate"))
    for k in sorted(set(frame["dvid"].tolist())):
        rows = (frame["dvid"] == k).to_numpy()
        for col in ("dv", "limit", "lloq"):
            frame.loc[rows, col] = convert(frame.loc[rows, col].to_numpy(dtype=float), new.dv_unit(k),
                                           table.dv_unit(k), where=f"column {col.upper()} (DVID {k})")
        sd = frame.loc[rows, "dvsd"].to_numpy(dtype=float)
        if np.isfinite(sd).any():  # an SD scales with DV but is never shifted: refuse offset units (degC)
            conversion_factor(new.dv_unit(k), table.dv_unit(k), where=f"column DVSD (DVID {k})")
            frame.loc[rows, "dvsd"] = convert(sd, new.dv_unit(k), table.dv_unit(k), where=f"column DVSD (DVID {k})")
    for c in new.covariates:
        if c in new.units and c in table.units:
            frame[c] = convert(frame[c].to_numpy(dtype=float), new.units[c], table.units[c], where=f"covariate {c}")
    both = pd.concat([table.frame, frame], ignore_index=True)
    both = both.sort_values("time", kind="stable")
    units = {k: v for k, v in table.units.items() if k in ("time", "amt", "dv") or k.startswith("dv[")}
    units |= {c: table.units[c] for c in table.covariates if c in table.units}
    if "amt" not in units and not (both["amt"] != 0).any():  # observation-only: no amounts to give a unit
        both = both.drop(columns=["amt", "rate"])
    return read_nonmem(both.rename(columns={c: c.upper() for c in COLUMN_ORDER}).reset_index(drop=True), units=units)
