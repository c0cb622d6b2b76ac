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
from bayestwin.inference.outputs import output_columns
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec
from bayestwin.units import conversion_factor, convert

__all__ = ["SEGMENT_STARTS", "CohortArrays", "cohort_arrays", "output_unit"]

#: Key of ``CohortArrays.covariates`` holding segment start times when a covariate varies within a patient.
SEGMENT_STARTS = "@segment_starts"


def output_unit(spec: TwinSpec, model: AbstractStructuralModel, output: str) -> str:
    """Unit in which `output` is modelled: the spec's ``units[output]``, else the model's."""
    return spec.unit(output) if output in dict(spec.units) else model.units[output]


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
        Covariate values in the unit the spec asks for: ``(patient,)`` when every covariate is constant
        within each patient; otherwise ``(patient, segment)``, with the segments' start times under the
        key ``SEGMENT_STARTS`` (time-varying covariates: last value carried forward).
    observations : pandas.DataFrame
        One row per real observation: ``patient`` (id), ``patient_index``,
        ``slot`` (position in the padded axis), ``time``, ``output`` (the observed output's name, from
        DVID), ``dv``, ``cens``, ``source_row`` — the ``observation`` dimension of fit outputs.
    units : dict
        Units of ``time``, ``amt`` and of each observed output (keyed by output name), as in the spec.
    features : frozenset of str
        Static facts about the data that let the kernels skip work: the dose kinds present (``ss``,
        ``infusion``, ``reset``; see ``dose_features``) and ``censored`` when some observation is
        censored (BLQ/ALQ), and ``time_varying`` when covariates change within a patient.
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
    known_sd = [k for k, err in enumerate(spec.error, start=1) if err.known_sd]
    report = check_events(table, compartments=model.compartment_map(), required_covariates=spec.covariates,
                          known_sd_outputs=known_sd)
    if not report.ok:
        raise DataValidationError(report)
    output_columns(spec, model)  # every observed output must be one the model predicts
    units = {"time": spec.unit("time"), "amt": spec.unit("amt")}
    units |= {out: output_unit(spec, model, out) for out in spec.observed_outputs}
    f = expand_addl(table).frame
    t_unit = table.unit("time")

    def to_spec(column: str, source: str, target: str) -> np.ndarray:  # exact: multiply by N or divide by N
        return np.asarray(convert(f[column].to_numpy(dtype=float), source, target, where=f"column {column.upper()}"))

    evid = f["evid"].to_numpy()
    is_obs = (evid == 0) & (f["mdv"].to_numpy() == 0)
    dvid = f["dvid"].to_numpy()
    too_high = is_obs & (dvid > len(spec.error))
    if too_high.any():
        row = f.index[np.flatnonzero(too_high)[0]]
        raise SpecError(f"row {row} (patient {_py(f['id'][row])!r}): DVID {dvid[too_high][0]} but spec {spec.name!r} "
                        f"observes {len(spec.error)} output(s) {list(spec.observed_outputs)} "
                        f"(DVID 1-{len(spec.error)}); add an ErrorModel for that output or fix the DVID")
    dv = np.full(len(f), np.nan)
    limit = np.full(len(f), np.nan)
    sd = np.full(len(f), np.nan)
    for k, out in enumerate(spec.observed_outputs, start=1):  # DV to each output's spec unit, DVID by DVID
        rows = dvid == k
        if rows.any():
            source = table.dv_unit(k)
            dv[rows] = convert(f["dv"].to_numpy(dtype=float)[rows], source, units[out], where=f"column DV (DVID {k})")
            limit[rows] = convert(f["limit"].to_numpy(dtype=float)[rows], source, units[out],
                                  where=f"column LIMIT (DVID {k})")
            if k in known_sd:  # an SD scales with DV but is never shifted: offset units (degC) are refused
                conversion_factor(source, units[out], where=f"column DVSD (DVID {k})")
                sd[rows] = convert(f["dvsd"].to_numpy(dtype=float)[rows], source, units[out],
                                   where=f"column DVSD (DVID {k})")
    time = to_spec("time", t_unit, units["time"])
    if np.any(f["rate"].isin((-1, -2))):
        raise SpecError("RATE -1/-2 (modelled infusion rate or duration) is not supported by bayestwin models yet; "
                        "give RATE or DUR explicitly")
    is_dose = np.isin(evid, (1, 3, 4))
    if is_dose.any() and not model.compartments:
        row = f.index[np.flatnonzero(is_dose)[0]]
        raise SpecError(f"row {row} (patient {_py(f['id'][row])!r}) is a dose record (EVID {evid[is_dose][0]}), but "
                        f"model {model.name!r} takes no doses (it has no compartments); remove the dosing records "
                        "or choose a model that is dosed")
    if is_dose.any():
        amt = to_spec("amt", table.unit("amt"), units["amt"])
        rate = to_spec("rate", table.unit("rate"), f"{units['amt']}/{units['time']}")
    else:  # observations only (e.g. a disease marker): the table need not declare an amount unit
        amt, rate = np.zeros(len(f)), np.zeros(len(f))
    dur = to_spec("dur", t_unit, units["time"])
    rate = np.where((rate <= 0) & (dur > 0), amt / np.where(dur > 0, dur, 1.0), rate)
    ii = to_spec("ii", t_unit, units["time"])
    ss = f["ss"].to_numpy()
    cmt = np.zeros(len(f), dtype=np.int32)  # observation rows' CMT is checked (E006) but not used
    cmt[is_dose] = [model.compartment_index(c) for c in f["cmt"][is_dose].tolist()]
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
    o = {"time": np.full((n, no), np.inf), "value": np.zeros((n, no)), "limit": np.full((n, no), np.nan),
         "sd": np.full((n, no), np.nan)}
    o_int = {k: np.zeros((n, no), dtype=np.int32) for k in ("cens", "output")}
    o_mask = np.zeros((n, no), dtype=bool)
    records = []
    outputs = spec.observed_outputs
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
        o["sd"][p, :m] = sd[orows]
        o_int["cens"][p, :m] = f["cens"].to_numpy()[orows]
        o_int["output"][p, :m] = dvid[orows] - 1
        o_mask[p, :m] = True
        records += [{"patient": pid, "patient_index": p, "slot": j, "time": time[r], "output": outputs[dvid[r] - 1],
                     "dv": dv[r], "cens": int(o_int["cens"][p, j]), "source_row": source_rows[r]}
                    for j, r in enumerate(orows)]
    doses = Doses(time=jnp.asarray(d["time"]), amt=jnp.asarray(d["amt"]), rate=jnp.asarray(d["rate"]),
                  cmt=jnp.asarray(d_int["cmt"]), ii=jnp.asarray(d["ii"]), ss=jnp.asarray(d_int["ss"]),
                  reset=jnp.asarray(d_bool["reset"]), mask=jnp.asarray(d_bool["mask"]))
    obs = Observations(time=jnp.asarray(o["time"]), value=jnp.asarray(o["value"]), cens=jnp.asarray(o_int["cens"]),
                       limit=jnp.asarray(o["limit"]), output=jnp.asarray(o_int["output"]), mask=jnp.asarray(o_mask),
                       sd=jnp.asarray(o["sd"]))
    covariates = _covariates(f, time, table, spec, patients)
    features = dose_features(doses) | ({"censored"} if np.any(o_int["cens"][o_mask] != 0) else frozenset())
    if SEGMENT_STARTS in covariates:
        features = features | {"time_varying"}
    return CohortArrays(patients=patients, doses=doses, obs=obs, covariates=covariates,
                        observations=pd.DataFrame.from_records(records), units=units, features=features)


def _py(value: Any) -> Any:
    """A numpy scalar as the Python value (for messages)."""
    return value.item() if hasattr(value, "item") else value


def _covariates(frame: pd.DataFrame, time: np.ndarray, table: EventTable, spec: TwinSpec,
                patients: tuple[Any, ...]) -> dict[str, np.ndarray]:
    """Covariate values per patient: ``(patient,)`` when constant, else ``(patient, segment)`` + starts.

    A value recorded at time t holds from t until the next record (last observation carried forward;
    before a patient's first record, the first value). When some covariate that the spec uses changes
    within a patient, every covariate array gets a segment axis, padded to a bucket size with the last
    value, and ``out[SEGMENT_STARTS]`` holds each segment's start time (``-inf`` for the first, ``+inf``
    for padding) in the spec's time unit.
    """
    names: list[str] = []
    effects = {}
    for p in spec.parameters:
        for eff in p.covariates:
            if eff.covariate not in effects:
                names.append(eff.covariate)
                effects[eff.covariate] = eff
    if not names:
        return {}
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise SpecError(f"covariate {name!r} holds text codes; covariate effects need numbers "
                            f"(e.g. recode sex as 0/1)")
    values = np.column_stack([frame[name].to_numpy(dtype=float) for name in names])
    for j, name in enumerate(names):
        unit = effects[name].unit
        if unit is not None:
            if name not in table.units:
                raise SpecError(f"the spec wants {name!r} in {unit} but the data declare no unit for it")
            values[:, j] = np.asarray(convert(values[:, j], table.units[name], unit, where=f"covariate {name}"))
    ids = frame["id"].to_numpy()
    per_patient = []
    for pid in patients:
        rows = np.flatnonzero(ids == pid)
        rows = rows[np.argsort(time[rows], kind="stable")]
        v, t = values[rows], time[rows]
        changed = np.any(v[1:] != v[:-1], axis=1) & ~np.all(np.isnan(v[1:]) & np.isnan(v[:-1]), axis=1)
        keep = np.concatenate([[0], 1 + np.flatnonzero(changed)])
        # several records at one time: the last one's value holds from that time on
        last_at_time = np.array([np.flatnonzero(t == t[k])[-1] for k in keep])
        starts = np.concatenate([[-np.inf], t[keep[1:]]])
        per_patient.append((starts, v[last_at_time] if len(keep) > 1 else v[keep]))
    most = max(len(st) for st, _ in per_patient)
    if most == 1:
        return {name: np.array([v[0, j] for _, v in per_patient]) for j, name in enumerate(names)}
    size = bucket_size(most, minimum=1)
    starts = np.full((len(patients), size), np.inf)
    out = {name: np.zeros((len(patients), size)) for name in names}
    for i, (st, v) in enumerate(per_patient):
        starts[i, :len(st)] = st
        for j, name in enumerate(names):
            out[name][i, :len(st)] = v[:, j]
            out[name][i, len(st):] = v[-1, j]
    out[SEGMENT_STARTS] = starts
    return out
