"""Rules on observations and censoring (O rules)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bayestwin.data.report import Violation
from bayestwin.data.rules.base import Rule, register
from bayestwin.data.rules.context import RuleContext, emit

__all__: list[str] = []


@register("O001", "error", "an observation record has no DV and MDV is 0",
          "Fill in DV, or set MDV = 1 if the sample has no value (or remove the row).")
def missing_dv(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = ctx.is_obs & (f["mdv"] == 0) & f["dv"].isna() & ctx.ok("dv") & ctx.ok("evid")
    yield from emit(me, ctx, mask, "dv", lambda r: "observation without a value", value=lambda r: ".")


@register("O002", "error", "CENS is not -1, 0 or 1",
          "CENS = 1: DV holds the LLOQ (value below it); -1: DV holds the ULOQ (above); 0: not censored.")
def cens_values(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = f["cens"].notna() & ~f["cens"].isin((-1, 0, 1))
    yield from emit(me, ctx, mask, "cens", lambda r: f"CENS {r['cens']:g} is not -1, 0 or 1")


@register("O003", "error", "a below-LLOQ (BLQ) record's DV exceeds its LLOQ",
          "For CENS = 1 the DV must hold the LLOQ itself; write the LLOQ in DV.")
def blq_above_lloq(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = ctx.is_obs & (f["cens"] == 1) & (f["dv"] > f["lloq"])
    yield from emit(me, ctx, mask, "dv", lambda r: f"BLQ record with DV {r['dv']:g} above its LLOQ {r['lloq']:g}")


@register("O004", "error", "the censoring interval given by DV and LIMIT is empty",
          "For CENS = 1, LIMIT (the lower end, often 0) must be below DV (the LLOQ); for CENS = -1, "
          "LIMIT (the upper end) must be above DV (the ULOQ).")
def empty_interval(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    lower_bad = (f["cens"] == 1) & (f["limit"] >= f["dv"])
    upper_bad = (f["cens"] == -1) & (f["limit"] <= f["dv"])
    yield from emit(me, ctx, ctx.is_obs & (lower_bad | upper_bad), "limit",
                    lambda r: f"CENS {r['cens']:g} with DV {r['dv']:g} and LIMIT {r['limit']:g}")


@register("O005", "warning", "an uncensored value is below its LLOQ",
          "Mark the record as censored (CENS = 1, DV = LLOQ) or check the LLOQ.")
def below_lloq_uncensored(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = ctx.is_obs & (f["mdv"] == 0) & (f["cens"] == 0) & (f["dv"] < f["lloq"])
    yield from emit(me, ctx, mask, "dv", lambda r: f"DV {r['dv']:g} below LLOQ {r['lloq']:g} but not censored")


@register("O006", "error", "a censoring flag is set on a record that is not an observation",
          "Only observations (EVID 0) can be censored; clear CENS on dose/other records.")
def cens_on_nonobs(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = ~ctx.is_obs & f["cens"].isin((-1, 1))
    yield from emit(me, ctx, mask, "cens", lambda r: f"CENS {r['cens']:g} on an EVID {r['evid']:g} record")


@register("O007", "warning", "an observation at or before the first dose is not zero",
          "Pre-dose drug (carry-over) or a wrong sample time: the model must allow it (baseline or "
          "error model); do not drop the row silently.")
def predose_nonzero(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    if not ctx.is_dose.any():
        return
    dose_time = f["time"].where(ctx.is_dose)
    first = dose_time.groupby(f["id"], sort=False).transform("min")
    before = f["time"] <= first
    mask = ctx.is_obs & (f["mdv"] == 0) & (f["cens"] == 0) & before & (f["dv"] > 0)
    yield from emit(me, ctx, mask.fillna(False), "dv",
                    lambda r: f"DV {r['dv']:g} at time {r['time']:g}, at or before the first dose")


@register("O008", "error", "a concentration is negative",
          "Concentrations cannot be negative; if DV holds log-values, convert them back or declare a "
          "log-scale output.")
def negative_concentration(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    from bayestwin.units import kind_of

    f = ctx.frame
    dvid = f["dvid"] if "dvid" in f.columns else pd.Series(1.0, index=f.index)
    for k in sorted(set(dvid[ctx.is_obs].dropna().astype(int).tolist())):
        unit = ctx.units.get(f"dv[{k}]", ctx.units.get("dv"))
        if unit is None or kind_of(unit) not in ("mass_concentration", "molar_concentration"):
            continue
        mask = ctx.is_obs & (dvid == k) & (f["dv"] < 0)
        yield from emit(me, ctx, mask, "dv", lambda r, u=unit: f"concentration {r['dv']:g} {u} is negative")


@register("O009", "error", "DVID is not a positive whole number",
          "DVID k names the k-th observed output of the model spec (1 = the first ErrorModel); write 1, 2, ...")
def dvid_values(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = f["dvid"].notna() & (f["dvid"] < 1)
    yield from emit(me, ctx, mask, "dvid", lambda r: f"DVID {r['dvid']:g} is not 1, 2, ...")


@register("O010", "error", "a known measurement SD (DVSD) is not a positive, finite number",
          "DVSD is the standard deviation of the measurement on its row, in DV units: write a number > 0, or "
          "leave it empty if the row's output does not use a known_sd error model.")
def bad_dvsd(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    sd = f["dvsd"]
    mask = ctx.is_obs & sd.notna() & ~(np.isfinite(sd) & (sd > 0)) & ctx.ok("dvsd")
    yield from emit(me, ctx, mask, "dvsd", lambda r: f"measurement SD {r['dvsd']:g} is not a positive number")


@register("O011", "error", "an observation of an output with a known_sd error model has no DVSD",
          "A known_sd error model takes each observation's SD from the DVSD column: fill it in on every "
          "observation of that output (in DV units), or use an error model with an estimated SD.", stage="model")
def missing_dvsd(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    if not ctx.known_sd_outputs:
        return
    f = ctx.frame
    dvid = f["dvid"] if "dvid" in f.columns else pd.Series(1.0, index=f.index)
    needs = ctx.is_obs & (f["mdv"] == 0) & dvid.isin(sorted(ctx.known_sd_outputs))
    yield from emit(me, ctx, needs & f["dvsd"].isna(), "dvsd",
                    lambda r: f"observation of DVID {r['dvid']:g} without its measurement SD", value=lambda r: ".")
