"""Bundled real data sets, read through the same validated readers as user data.

Each loader states its unit reading and any recoding, so the numbers a test or
demo relies on are visible here, not hidden in a file.

========================  ====================================================================
name                      data
========================  ====================================================================
``theoph``                theophylline, 12 subjects; dose built from ``Dose`` (mg/kg) x ``Wt``
``theo_sd``               the same in event format (AMT mg, rxode2 EVID 101 decoded)
``pheno_sd``              phenobarbital, 59 newborns, multiple IV doses (AMT mg, DV mg/L)
``oral_1cpt``             simulated 1-cmt oral PK, 120 subjects, true CL/V/KA (AMT µg, DV µg/L)
``pbcseq``                primary biliary cirrhosis, 312 patients, 1,945 visits; DV = ln(bilirubin in mg/dL)
``cgm_hall2018``          CGM glucose (mg/dL, time in min), 3 adults, with their standardized breakfasts as doses
========================  ====================================================================

Examples
--------
>>> sorted(list_datasets())
['cgm_hall2018', 'oral_1cpt', 'pbcseq', 'pheno_sd', 'theo_sd', 'theoph']
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pandas as pd

from bayestwin.data.event_table import EventTable
from bayestwin.data.ingest.nonmem import read_nonmem
from bayestwin.data.ingest.tidy import read_tidy

__all__ = ["dataset_path", "list_datasets", "load_dataset"]

_FILES = {
    "theoph": "theoph.csv",
    "theo_sd": "nlmixr2data_theo_sd.csv",
    "pheno_sd": "nlmixr2data_pheno_sd.csv",
    "oral_1cpt": "nlmixr2data_Oral_1CPT.csv",
    "pbcseq": "pbcseq.csv",
    "cgm_hall2018": "cgm_iglu_hall2018_glucose.csv",
    "cgm_hall2018_meals": "cgm_iglu_hall2018_meals.csv",
    "hr_nsrdb": "hr_rr_pyhrv_nsrdb.csv",  # RR intervals; read by bayestwin.monitor.recordings (not an EventTable)
}


def dataset_path(name: str) -> Path:
    """Path of a bundled CSV file (see ``PROVENANCE.md`` beside it).

    Examples
    --------
    >>> dataset_path("theo_sd").name
    'nlmixr2data_theo_sd.csv'
    """
    if name not in _FILES:
        raise KeyError(f"no bundled data set {name!r}; choose one of {sorted(_FILES)}")
    return Path(str(resources.files("bayestwin.datasets").joinpath(_FILES[name])))


def _theoph() -> EventTable:
    obs = pd.read_csv(dataset_path("theoph"))
    first = obs.groupby("Subject", sort=False).first().reset_index()
    doses = pd.DataFrame({"Subject": first["Subject"], "Time": 0.0, "Dose": first["Dose"], "Wt": first["Wt"]})
    # Each subject got Dose (mg/kg) x Wt (kg) by mouth at time 0, into the gut (CMT 1); the
    # concentrations are in the central compartment (CMT 2), as in theo_sd.
    return read_tidy(
        obs, doses, id="Subject", time="Time", dv="conc", amt="Dose", obs_cmt=2, dose_cmt=1,
        drop=["rownames", "Dose"], units={"time": "h", "amt": "mg/kg", "dv": "mg/L", "Wt": "kg"},
    )


def _theo_sd() -> EventTable:
    return read_nonmem(dataset_path("theo_sd"), evid_coding="rxode2",
                       units={"time": "h", "amt": "mg", "dv": "mg/L", "WT": "kg"})


def _pheno_sd() -> EventTable:
    # Published NONMEM reading: AMT is the amount given in mg, DV mg/L (see PROVENANCE.md).
    return read_nonmem(dataset_path("pheno_sd"), units={"time": "h", "amt": "mg", "dv": "mg/L", "WT": "kg"})


def _oral_1cpt() -> EventTable:
    return read_nonmem(
        dataset_path("oral_1cpt"), ss_map={99: 0},
        units={"time": "h", "amt": "ug", "dv": "ug/L", "DOSE": "ug", "V": "L", "CL": "L/h", "KA": "1/h"},
    )


def _pbcseq(source: str | Path | None = None) -> EventTable:
    """Mayo PBC trial visits: DV = ln(bili), bilirubin in mg/dL; TIME = ``day`` since registration.

    Covariates: ``trt`` (1 D-penicillamine, 0 placebo, as in the file) and ``age`` (years at
    registration); the other columns are dropped. Rows keep their file line numbers (header = line 1), so
    a bad value is reported at its line; a bilirubin that is not a positive number raises ``InputError``
    (its log is undefined) naming line, patient and value.
    """
    import numpy as np

    from bayestwin.exceptions import InputError

    raw = pd.read_csv(source or dataset_path("pbcseq"), dtype=str, keep_default_na=False)
    raw.index = raw.index + 2  # line number in the file, the header being line 1
    bili = pd.to_numeric(raw["bili"], errors="coerce")
    bad = raw.index[~(bili > 0)]
    if len(bad):
        rows = "; ".join(f"line {i} (patient {raw.at[i, 'id']}): {raw.at[i, 'bili']!r}" for i in bad[:10])
        raise InputError(f"{len(bad)} row(s) of column bili are not a positive number (mg/dL), so their log is "
                         f"undefined: {rows}. Fix or remove these rows.")
    frame = raw[["id", "day", "trt", "age"]].assign(log_bili=np.log(bili.to_numpy()))
    return read_tidy(frame, id="id", time="day", dv="log_bili",
                     units={"time": "day", "dv": "dimensionless", "age": "year"})


#: Nominal carbohydrate (g) of each breakfast record of ``cgm_hall2018``: NOT the meals' stated content.
HALL2018_NOMINAL_MEAL_G = 50.0


def _cgm_hall2018(source: str | Path | None = None, meals: str | Path | None = None) -> EventTable:
    """CGM glucose of 3 adults of Hall et al. (2018) and their standardized breakfasts as dose records.

    TIME = minutes since the subject's first reading (``time_s / 60``); DV = glucose, mg/dL (Dexcom G4, 40-400).
    Each breakfast is a dose of ``HALL2018_NOMINAL_MEAL_G`` (50 g) into CMT 1 (the gut of
    ``metabolic.bergman_meal``): the files give the food, not its carbohydrate, so the amount is a nominal unit
    and a model must estimate the relative meal size (``f``). The food is in the ``cgm_hall2018_meals`` file
    (``dataset_path``). Rows keep their file line numbers (header = line 1); a glucose or time that is not a
    number raises ``InputError`` naming the file, line, subject and value.
    """
    import numpy as np

    from bayestwin.exceptions import InputError

    def read(path: str | Path, column: str, what: str) -> pd.DataFrame:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        raw.index = raw.index + 2  # line number in the file, the header being line 1
        for col in (column, "time_s"):
            value = pd.to_numeric(raw[col], errors="coerce")
            bad = raw.index[~np.isfinite(value.to_numpy(dtype=float))]
            if len(bad):
                rows = "; ".join(f"line {i} (subject {raw.at[i, 'subject']}): {raw.at[i, col]!r}" for i in bad[:10])
                raise InputError(f"{len(bad)} row(s) of column {col} in the {what} file {Path(path).name!r} are not "
                                 f"a number: {rows}. Fix or remove these rows.")
            raw[col] = value
        return raw.assign(minutes=raw["time_s"] / 60.0)

    obs = read(source or dataset_path("cgm_hall2018"), "glucose_mg_dl", "glucose")
    doses = read(meals or dataset_path("cgm_hall2018_meals"), "time_s", "meals").assign(amt=HALL2018_NOMINAL_MEAL_G)
    return read_tidy(obs[["subject", "minutes", "glucose_mg_dl"]], doses[["subject", "minutes", "amt"]],
                     id="subject", time="minutes", dv="glucose_mg_dl", obs_cmt=4, dose_cmt=1,
                     units={"time": "min", "amt": "g", "dv": "mg/dL"})


_LOADERS: dict[str, Callable[[], EventTable]] = {
    "theoph": _theoph, "theo_sd": _theo_sd, "pheno_sd": _pheno_sd, "oral_1cpt": _oral_1cpt, "pbcseq": _pbcseq,
    "cgm_hall2018": _cgm_hall2018,
}


def list_datasets() -> list[str]:
    """Names of the bundled data sets."""
    return list(_LOADERS)


def load_dataset(name: str) -> EventTable:
    """Load a bundled data set as a validated ``EventTable``.

    Examples
    --------
    >>> load_dataset("pheno_sd").n_patients
    59
    """
    if name not in _LOADERS:
        raise KeyError(f"no bundled data set {name!r}; choose one of {sorted(_LOADERS)}")
    return _LOADERS[name]()
