"""From a validated ``EventTable`` to padded JAX arrays for one spec and model.

This adapter is where units meet: times, amounts and observations are converted
to the spec's units (exactly, through ``bayestwin.units``); compartments are
mapped to the model's; ADDL doses are expanded; each patient's records are
padded to a shared bucket size so a cohort runs as one ``vmap`` and a new lab
value reuses the compiled kernel.

Sample at a dose time: a sample recorded *before* a dose at the same time (the
NONMEM row order) is evaluated at the largest float below that time, so it sees
the dose's predecessor, not the dose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayestwin.data.event_table import EventTable
from bayestwin.data.expand import expand_addl
from bayestwin.data.validate import check_events
from bayestwin.dynamics.closed_form import dose_features
from bayestwin.dynamics.events import Doses, Observations, bucket_size
from bayestwin.exceptions import DataValidationError, SpecError
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec
from bayestwin.units import convert

__all__ = ["CohortArrays", "cohort_arrays"]


@dataclass(frozen=True)
class CohortArrays:
    """Padded arrays of a cohort, with the labels needed to read results back.

    Attributes
    ----------
    patients : tuple
        Patient ids, in table order (the ``patient`` dimension).
    doses, obs : Doses, Observations
        Arrays with a leading patient axis.
    covariates : dict of str to numpy.ndarray
        Baseline covariate value per patient, in the unit the spec asks for.
    observations : pandas.DataFrame
        One row per real observation: ``patient`` (id), ``patient_index``,
        ``slot`` (position in the padded axis), ``time``, ``dv``, ``cens``,
        ``source_row`` — the ``observation`` dimension of fit outputs.
    units : dict
        Units of ``time``, ``amt`` and the output, as in the spec.
    features : frozenset of str
        Static facts about the data that let the kernels skip work: the dose kinds present (``ss``,
        ``infusion``, ``reset``; see ``dose_features``) and ``censored`` when some observation is
        censored (BLQ/ALQ).
    """

    patients: tuple[Any, ...]
    doses: Doses
    obs: Observations
    covariates: dict[str, np.ndarray]
    observations: pd.DataFrame
    units: dict[str, str]
    features: frozenset[str] = frozenset({"ss", "infusion", "reset"})
    notes: tuple[str, ...] = field(default=())

    @property
    def n_patients(self) -> int:
        """Number of patients."""
        return len(self.patients)


def cohort_arrays(
    table: EventTable,
    spec: TwinSpec,
    model: AbstractStructuralModel,
    *,
    n_dose: int | None = None,
    n_obs: int | None = None,
) -> CohortArrays:
    """Padded arrays of `table` for `spec` and its structural `model`.

    Parameters
    ----------
    table : EventTable
        Validated events (e.g. from ``read_nonmem``).
    spec : TwinSpec
        Gives the units the model works in and the covariates it needs.
    model : AbstractStructuralModel
        Maps CMT values to compartments.
    n_dose, n_obs : int, optional
        Padded sizes (default: the next power of two above the largest patient).

    Examples
    --------
    >>> from bayestwin.data import load_dataset
    >>> from bayestwin.models import get_model
    >>> from bayestwin.spec import example_spec
    >>> arrays = cohort_arrays(load_dataset("theo_sd"), example_spec(), get_model("pk.one_cmt_oral"))
    >>> arrays.obs.time.shape, len(arrays.observations)
    ((12, 12), 132)
    """
    report = check_events(table, compartments=model.compartment_map(), required_covariates=spec.covariates)
    if not report.ok:
        raise DataValidationError(report)
    units = {"time": spec.unit("time"), "amt": spec.unit("amt"), "conc": spec.unit(spec.error[0].output)
             if spec.error[0].output in dict(spec.units) else model.units[spec.error[0].output]}
    f = expand_addl(table).frame
    t_unit, a_unit = table.unit("time"), table.unit("amt")

    def to_spec(column: str, source: str, target: str) -> np.ndarray:  # exact: multiply by N or divide by N
        return np.asarray(convert(f[column].to_numpy(dtype=float), source, target, where=f"column {column.upper()}"))

    out_unit = units["conc"]
    dv = np.asarray(convert(f["dv"].to_numpy(dtype=float), table.unit("dv"), out_unit, where="column DV"))
    limit = np.asarray(convert(f["limit"].to_numpy(dtype=float), table.unit("dv"), out_unit, where="column LIMIT"))
    time = to_spec("time", t_unit, units["time"])
    evid = f["evid"].to_numpy()
    if np.any(f["rate"].isin((-1, -2))):
        raise SpecError("RATE -1/-2 (modelled infusion rate or duration) is not supported by bayestwin models yet; "
                        "give RATE or DUR explicitly")
    amt = to_spec("amt", a_unit, units["amt"])
    rate = to_spec("rate", table.unit("rate"), f"{units['amt']}/{units['time']}")
    dur = to_spec("dur", t_unit, units["time"])
    rate = np.where((rate <= 0) & (dur > 0), amt / np.where(dur > 0, dur, 1.0), rate)
    ii = to_spec("ii", t_unit, units["time"])
    ss = f["ss"].to_numpy()
    cmt = np.array([model.compartment_index(c) for c in f["cmt"].tolist()], dtype=np.int32)
    is_dose = np.isin(evid, (1, 3, 4))
    is_obs = (evid == 0) & (f["mdv"].to_numpy() == 0)
    ids = f["id"].to_numpy()
    patients = tuple(pd.unique(ids))
    rows_of = {pid: np.flatnonzero(ids == pid) for pid in patients}
    most_doses = max((int(is_dose[r].sum()) for r in rows_of.values()), default=0)
    most_obs = max((int(is_obs[r].sum()) for r in rows_of.values()), default=0)
    nd = n_dose or bucket_size(most_doses, minimum=1)
    no = n_obs or bucket_size(most_obs)
    if most_doses > nd or most_obs > no:
        raise ValueError(f"padded sizes n_dose={nd}, n_obs={no} are smaller than the data ({most_doses}, {most_obs})")
    n = len(patients)
    d = {k: np.zeros((n, nd)) for k in ("time", "amt", "rate", "ii")}
    d["time"][:] = np.inf
    d_int = {k: np.zeros((n, nd), dtype=np.int32) for k in ("cmt", "ss")}
    d_bool = {k: np.zeros((n, nd), dtype=bool) for k in ("reset", "mask")}
    o = {"time": np.full((n, no), np.inf), "value": np.zeros((n, no)), "limit": np.full((n, no), np.nan)}
    o_int = {k: np.zeros((n, no), dtype=np.int32) for k in ("cens", "output")}
    o_mask = np.zeros((n, no), dtype=bool)
    records = []
    source_rows = f.index.to_numpy()
    for p, pid in enumerate(patients):
        rows = rows_of[pid]
        dr = rows[is_dose[rows]]
        k = len(dr)
        d["time"][p, :k], d["amt"][p, :k] = time[dr], np.where(evid[dr] == 3, 0.0, amt[dr])
        d["rate"][p, :k], d["ii"][p, :k] = rate[dr], ii[dr]
        d_int["cmt"][p, :k], d_int["ss"][p, :k] = cmt[dr], ss[dr]
        d_bool["reset"][p, :k] = np.isin(evid[dr], (3, 4)) | (ss[dr] == 1)
        d_bool["mask"][p, :k] = True
        orows = rows[is_obs[rows]]
        m = len(orows)
        t_obs = time[orows].copy()
        for j, r in enumerate(orows):  # a sample recorded before a dose at the same time is a trough
            later_dose = dr[(dr > r) & (time[dr] == time[r])]
            if later_dose.size:
                t_obs[j] = np.nextafter(time[r], -np.inf)
        o["time"][p, :m], o["value"][p, :m], o["limit"][p, :m] = t_obs, dv[orows], limit[orows]
        o_int["cens"][p, :m] = f["cens"].to_numpy()[orows]
        o_mask[p, :m] = True
        records += [{"patient": pid, "patient_index": p, "slot": j, "time": time[r], "dv": dv[r],
                     "cens": int(o_int["cens"][p, j]), "source_row": source_rows[r]} for j, r in enumerate(orows)]
    doses = Doses(time=jnp.asarray(d["time"]), amt=jnp.asarray(d["amt"]), rate=jnp.asarray(d["rate"]),
                  cmt=jnp.asarray(d_int["cmt"]), ii=jnp.asarray(d["ii"]), ss=jnp.asarray(d_int["ss"]),
                  reset=jnp.asarray(d_bool["reset"]), mask=jnp.asarray(d_bool["mask"]))
    obs = Observations(time=jnp.asarray(o["time"]), value=jnp.asarray(o["value"]), cens=jnp.asarray(o_int["cens"]),
                       limit=jnp.asarray(o["limit"]), output=jnp.asarray(o_int["output"]), mask=jnp.asarray(o_mask))
    covariates = _covariates(table, spec, patients)
    features = dose_features(doses) | ({"censored"} if np.any(o_int["cens"][o_mask] != 0) else frozenset())
    return CohortArrays(patients=patients, doses=doses, obs=obs, covariates=covariates,
                        observations=pd.DataFrame.from_records(records), units=units, features=features)


def _covariates(table: EventTable, spec: TwinSpec, patients: tuple[Any, ...]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    f = table.frame
    for p in spec.parameters:
        for eff in p.covariates:
            name = eff.covariate
            if name in out:
                continue
            col = f.groupby("id", sort=False)[name]
            if not pd.api.types.is_numeric_dtype(f[name]):
                raise SpecError(f"covariate {name!r} holds text codes; covariate effects need numbers "
                                f"(e.g. recode sex as 0/1)")
            varying = col.nunique(dropna=True) > 1
            if varying.any():
                pid = varying[varying].index[0]
                raise SpecError(f"covariate {name!r} changes within patient {pid}; time-varying covariate "
                                "effects are not supported yet — use the baseline value in its own column")
            values = col.first().reindex(list(patients)).to_numpy(dtype=float)
            if eff.unit is not None:
                if name not in table.units:
                    raise SpecError(f"the spec wants {name!r} in {eff.unit} but the data declare no unit for it")
                values = np.asarray(convert(values, table.units[name], eff.unit, where=f"covariate {name}"))
            out[name] = values
    return out
