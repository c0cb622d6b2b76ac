"""Rules on time, event types and patients (T, E and P rules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from bayestwin.data.report import Violation
from bayestwin.data.rules.base import Rule, register
from bayestwin.data.rules.context import RuleContext, emit

__all__: list[str] = []

_EVIDS = {0, 1, 2, 3, 4}


@register("T001", "error", "time is negative",
          "Times are measured from a reference (e.g. first dose) and must be >= 0; shift the clock.")
def negative_time(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    yield from emit(me, ctx, ctx.frame["time"] < 0, "time",
                    lambda r: f"time {r['time']:g} is negative")


@register("T002", "error", "time goes backwards within a patient",
          "Sort each patient's rows by TIME (keeping doses before samples at equal times); a clock "
          "restart is only allowed at a reset record (EVID 3 or 4).")
def time_backwards(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    prev = f.groupby("id", sort=False, dropna=False)["time"].transform(lambda s: s.ffill().shift())
    mask = (f["time"] < prev) & ~f["evid"].isin((3, 4))
    yield from emit(me, ctx, mask, "time",
                    lambda r: f"time goes back to {r['time']:g} after {prev.loc[r.name]:g}"
                    if prev.index.is_unique else f"time goes back to {r['time']:g}")


@register("E001", "error", "EVID is not one of 0, 1, 2, 3, 4",
          "Use NONMEM EVID codes: 0 observation, 1 dose, 2 other, 3 reset, 4 reset and dose.")
def unknown_evid(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = f["evid"].notna() & ~f["evid"].isin(_EVIDS) & ctx.ok("evid")
    if ctx.extra.get("evid_decoded"):
        mask &= f["evid"] < 100  # codes >= 100 were decoded, or reported by E008

    def message(r: pd.Series) -> str:
        text = f"EVID {r['evid']:g} is not a NONMEM event code"
        if r["evid"] >= 100:
            text += " (it looks like rxode2/nlmixr2 coding: read with evid_coding='rxode2')"
        return text

    yield from emit(me, ctx, mask, "evid", message)


@register("E002", "error", "MDV is 0 on a row that is not an observation",
          "Set MDV = 1 on dose, other and reset records (EVID 1-4), or fix EVID.")
def mdv_inconsistent(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    if not ctx.has("mdv"):
        return
    f = ctx.frame
    mask = (f["mdv"] == 0) & f["evid"].isin((1, 2, 3, 4))
    yield from emit(me, ctx, mask, "mdv",
                    lambda r: f"MDV 0 on an EVID {r['evid']:g} record says DV is an observation")


@register("E003", "error", "MDV is not 0 or 1",
          "MDV is a flag: 0 (DV is an observation) or 1 (no observation on this row).")
def mdv_values(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = f["mdv"].notna() & ~f["mdv"].isin((0, 1))
    yield from emit(me, ctx, mask, "mdv", lambda r: f"MDV {r['mdv']:g} is not 0 or 1")


@register("E004", "error", "an observation record carries a dose amount",
          "Put the dose on its own row with EVID 1 (or set AMT to 0 on the observation).")
def obs_with_amount(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    if not ctx.has("evid"):
        return
    f = ctx.frame
    mask = ctx.is_obs & (f["amt"] > 0)
    yield from emit(me, ctx, mask, "amt",
                    lambda r: f"EVID 0 (observation) with AMT {r['amt']:g}")


@register("E005", "error", "an 'other' or 'reset' record carries a dose amount",
          "Use EVID 4 (reset and dose) or EVID 1 (dose) for records that give a dose.")
def other_with_amount(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = f["evid"].isin((2, 3)) & (f["amt"] > 0)
    yield from emit(me, ctx, mask, "amt",
                    lambda r: f"EVID {r['evid']:g} with AMT {r['amt']:g}: the amount would be ignored")


@register("E006", "error", "compartment is not defined by the model",
          "Use one of the model's compartments (number or name) in CMT, or attach the right model.",
          stage="model")
def unknown_cmt(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    if ctx.compartments is None:
        return
    comps = dict(ctx.compartments)
    allowed = set(comps) | set(comps.values()) | {0}
    f = ctx.frame
    mask = ~f["cmt"].map(lambda c: c in allowed).astype(bool)
    listing = ", ".join(f"{k} ({v})" for k, v in comps.items()) or "none (it takes no doses: leave CMT empty or 0)"
    shown = lambda c: f"{c:g}" if isinstance(c, float | np.floating) else repr(c)  # noqa: E731
    yield from emit(me, ctx, mask, "cmt",
                    lambda r: f"compartment {shown(r['cmt'])} is not in the model; it has {listing}")


@register("E007", "error", "negative CMT (switching a compartment off) is not supported",
          "Remove the record or model the switch explicitly; bayestwin models cannot turn compartments off.")
def negative_cmt(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = f["cmt"].map(lambda c: isinstance(c, int | float | np.integer | np.floating) and c < 0)
    yield from emit(me, ctx, mask.astype(bool), "cmt",
                    lambda r: f"CMT {r['cmt']} is negative")


@register("P001", "error", "a patient's rows are split into separate blocks",
          "Sort the file by ID (then TIME) so each patient's records are contiguous; NONMEM would "
          "read the second block as a new individual.")
def split_patient(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    ids = ctx.frame["id"]
    starts = ids.ne(ids.shift())
    block_starts = ids[starts]
    repeated = block_starts.duplicated()
    mask = pd.Series(False, index=range(len(ids)))
    pos = np.flatnonzero(starts.to_numpy())[repeated.to_numpy()]
    mask.iloc[pos] = True
    yield from emit(me, ctx, mask.to_numpy(), "id",
                    lambda r: f"patient {r['id']} starts a second block of rows here")


@register("P002", "warning", "a patient has doses but no observations",
          "Allowed for forecasting a new patient; for a fit, check that the samples were not lost.")
def dose_only(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    yield from _per_patient(ctx, me, lambda g: g["_dose"].any() and not g["_obs"].any(),
                            "patient has {n_dose} dose(s) and no observations")


@register("P003", "warning", "a patient has observations but no doses",
          "Add the patient's dosing records, or confirm the patient was untreated (e.g. baseline only).")
def obs_only(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    if not ctx.is_dose.any():
        return  # a data set without any dosing (e.g. disease progression) is fine
    yield from _per_patient(ctx, me, lambda g: g["_obs"].any() and not g["_dose"].any(),
                            "patient has {n_obs} observation(s) and no doses")


def _per_patient(
    ctx: RuleContext, me: Rule, predicate: Callable[[pd.DataFrame], bool], template: str
) -> Iterator[Violation]:
    f = ctx.frame
    flags = pd.DataFrame({"id": f["id"], "_dose": ctx.is_dose.to_numpy(),
                          "_obs": (ctx.is_obs & (f["mdv"] != 1)).to_numpy()}, index=f.index)
    for pid, group in flags.groupby("id", sort=False):
        if predicate(group):
            yield me.violation(
                template.format(n_dose=int(group["_dose"].sum()), n_obs=int(group["_obs"].sum())),
                patient=pid, row=group.index[0], column=ctx.col("id"))


@register("P004", "error", "a record is duplicated exactly",
          "Delete the repeated row; if both events really happened, they must differ (e.g. in TIME).")
def duplicated_record(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    if ctx.covariates:  # compare records as the table will hold them (covariates carried forward)
        from bayestwin.data.expand import carry_forward

        f = carry_forward(f, ctx.covariates)
    mask = f.astype(object).map(repr).duplicated(keep="first")
    yield from emit(me, ctx, mask.to_numpy(), "id",
                    lambda r: "this row repeats an earlier row value for value")


@register("P005", "warning", "two observations of the same output at the same time differ",
          "Check for a transcription error or a repeated assay; keep both only if both are real.")
def conflicting_obs(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    is_obs = (ctx.is_obs & f["dv"].notna() & f["time"].notna()).to_numpy()
    if not is_obs.any():
        return
    key = pd.DataFrame({"id": f["id"].astype(object), "time": f["time"], "cmt": f["cmt"].astype(object).map(repr),
                        "dvid": f["dvid"].astype(object).map(repr)})  # one output = one CMT and DVID
    key = key[is_obs]
    dv = f["dv"][is_obs]
    differ = dv.groupby([key["id"], key["time"], key["cmt"], key["dvid"]], sort=False,
                        dropna=False).transform("nunique") > 1
    later = key.duplicated(keep="first") & differ
    mask = np.zeros(len(f), dtype=bool)
    mask[np.flatnonzero(is_obs)[later.to_numpy()]] = True
    yield from emit(me, ctx, mask, "dv",
                    lambda r: f"another observation at time {r['time']:g} (CMT {r['cmt']}) has a different DV")
