"""``append_events`` (used by ``Twin.update``): new events join the history in the history's units.

Every value is converted: times, amounts, DV output by output (DVID), and covariates with a unit;
no row is lost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayestwin.data import read_nonmem
from bayestwin.twin import append_events


def test_new_events_are_converted_output_by_output() -> None:
    history = read_nonmem(pd.DataFrame({
        "ID": [7, 7, 7], "TIME": [0.0, 1.0, 1.0], "EVID": [1, 0, 0], "AMT": [100.0, 0.0, 0.0],
        "DV": [".", 4.0, 30.0], "DVID": [1, 1, 2], "WT": [70.0, 70.0, 70.0]}),
        units={"time": "h", "amt": "mg", "dv": "mg/L", "dv[2]": "%", "WT": "kg"})
    new = read_nonmem(pd.DataFrame({
        "ID": [7, 7, 7], "TIME": [120.0, 180.0, 180.0], "EVID": [1, 0, 0], "AMT": [0.05, 0.0, 0.0],
        "DV": [".", 2500.0, 0.25], "DVID": [1, 1, 2], "WT": [176.37, 176.37, 176.37]}),
        units={"time": "min", "amt": "g", "dv": "ng/mL", "dv[2]": "dimensionless", "WT": "lb"})
    both = append_events(history, new)
    f = both.frame
    assert len(f) == 6 and dict(both.units) == dict(history.units)
    np.testing.assert_allclose(f["time"], [0.0, 1.0, 1.0, 2.0, 3.0, 3.0])
    np.testing.assert_allclose(f.loc[f["evid"] == 1, "amt"], [100.0, 50.0])
    obs = f[f["evid"] == 0]
    np.testing.assert_allclose(obs["dv"], [4.0, 30.0, 2.5, 25.0])  # 2500 ng/mL = 2.5 mg/L; 0.25 = 25 %
    assert obs["dvid"].tolist() == [1, 2, 1, 2]
    assert f["WT"].iloc[-1] == pytest.approx(80.0, rel=1e-4)  # 176.37 lb


def test_known_sds_are_converted_with_their_dv() -> None:
    history = read_nonmem(pd.DataFrame({"ID": [3, 3], "TIME": [0.0, 1.0], "DV": [4.0, 3.5], "DVSD": [0.5, 0.4]}),
                          units={"time": "h", "dv": "mg/L"})
    new = read_nonmem(pd.DataFrame({"ID": [3], "TIME": [2.0], "DV": [3000.0], "DVSD": [250.0]}),
                      units={"time": "h", "dv": "ng/mL"})
    f = append_events(history, new).frame
    np.testing.assert_allclose(f["dv"], [4.0, 3.5, 3.0])
    np.testing.assert_allclose(f["dvsd"], [0.5, 0.4, 0.25])  # 250 ng/mL = 0.25 mg/L: scaled, never shifted
