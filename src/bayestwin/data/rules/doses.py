"""Rules on dosing records (D rules): amounts, infusions, ADDL/II and steady state."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bayestwin.data.report import Violation
from bayestwin.data.rules.base import Rule, register
from bayestwin.data.rules.context import RuleContext, emit

__all__: list[str] = []


def _ss_infusion(ctx: RuleContext) -> np.ndarray:
    """Steady-state constant infusion: SS=1, AMT=0, RATE>0, II=0 (allowed by NONMEM)."""
    f = ctx.frame
    return ((f["ss"] == 1) & (f["amt"] == 0) & (f["rate"] > 0) & (f["ii"] == 0)).to_numpy()


@register("D001", "error", "a dose has an amount <= 0",
          "Give the dose amount (> 0) in AMT; a steady-state constant infusion is written AMT=0, "
          "RATE>0, SS=1, II=0.")
def nonpositive_dose(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = ctx.is_dose & (f["amt"] <= 0) & ~_ss_infusion(ctx) & ctx.ok("amt")
    yield from emit(me, ctx, mask, "amt", lambda r: f"dose record (EVID {r['evid']:g}) with AMT {r['amt']:g}")


@register("D002", "error", "RATE is negative (other than the modelled codes -1 and -2)",
          "Give the infusion rate as amount per time (> 0), 0 for a bolus, or -1/-2 when the model "
          "estimates rate/duration.")
def negative_rate(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = (f["rate"] < 0) & ~f["rate"].isin((-1, -2))
    yield from emit(me, ctx, mask, "rate", lambda r: f"RATE {r['rate']:g} is negative")


def _infusion_length(ctx: RuleContext) -> np.ndarray:
    f = ctx.frame
    rate = f["rate"].to_numpy()
    by_rate = np.where(rate > 0, f["amt"].to_numpy() / np.where(rate > 0, rate, 1.0), 0.0)
    return np.where(f["dur"].to_numpy() > 0, f["dur"].to_numpy(), by_rate)


@register("D003", "error", "an infusion lasts longer than the dosing interval",
          "Check RATE/DUR and II: a repeated infusion must end before the next one starts.")
def infusion_longer_than_ii(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    length = _infusion_length(ctx)
    repeated = (f["addl"] > 0) | (f["ss"] > 0)
    mask = ctx.is_dose & repeated & (f["ii"] > 0) & (length > f["ii"].to_numpy())
    yield from emit(me, ctx, mask, "ii", lambda r: f"infusion of {_len_of(r):g} lasts longer than II {r['ii']:g}")


def _len_of(r) -> float:  # type: ignore[no-untyped-def]
    if r["dur"] > 0:
        return float(r["dur"])
    return float(r["amt"] / r["rate"]) if r["rate"] > 0 else 0.0


@register("D004", "error", "ADDL > 0 with II = 0",
          "Give the interval between the additional doses in II, or set ADDL to 0.")
def addl_without_ii(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = ctx.is_dose & (f["addl"] > 0) & (f["ii"] <= 0)
    yield from emit(me, ctx, mask, "ii", lambda r: f"ADDL {r['addl']:g} additional doses but II is 0")


@register("D005", "error", "a steady-state dose has no dosing interval",
          "Give II (the interval of the regimen that reached steady state) or set SS to 0.")
def ss_without_ii(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = ctx.is_dose & f["ss"].isin((1, 2)) & (f["ii"] <= 0) & ~_ss_infusion(ctx)
    yield from emit(me, ctx, mask, "ii", lambda r: f"SS {r['ss']:g} with II {r['ii']:g}")


@register("D006", "error", "a steady-state infusion has additional doses (ADDL > 0)",
          "Write the steady-state infusion and the following infusions as separate records.")
def ss_infusion_with_addl(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    infusion = (f["rate"] != 0) | (f["dur"] > 0)
    mask = ctx.is_dose & (f["ss"] != 0) & infusion & (f["addl"] > 0)
    yield from emit(me, ctx, mask, "addl", lambda r: f"SS {r['ss']:g} infusion with ADDL {r['addl']:g}")


@register("D007", "error", "SS is not 0, 1 or 2",
          "Use NONMEM codes: 0 not steady state, 1 steady state (reset), 2 steady state (added); "
          "recode other markers with ss_map={code: 0}.")
def ss_values(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    mask = f["ss"].notna() & ~f["ss"].isin((0, 1, 2))
    yield from emit(me, ctx, mask, "ss", lambda r: f"SS {r['ss']:g} is not a NONMEM steady-state code")


@register("D008", "error", "RATE and DUR disagree with AMT",
          "Give either RATE or DUR for an infusion; if both, RATE x DUR must equal AMT.")
def rate_dur_conflict(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    both = ctx.is_dose & (f["rate"] > 0) & (f["dur"] > 0)
    mismatch = ~np.isclose(f["rate"] * f["dur"], f["amt"], rtol=1e-6, atol=0.0)
    yield from emit(me, ctx, both & mismatch, "dur",
                    lambda r: f"RATE {r['rate']:g} x DUR {r['dur']:g} = {r['rate'] * r['dur']:g}, "
                              f"but AMT is {r['amt']:g}")


@register("D009", "error", "DUR is negative",
          "Give the infusion duration (> 0) or 0 for a bolus.")
def negative_dur(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    yield from emit(me, ctx, ctx.frame["dur"] < 0, "dur", lambda r: f"DUR {r['dur']:g} is negative")


@register("D010", "error", "II is negative", "II is an interval of time and must be >= 0.")
def negative_ii(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    yield from emit(me, ctx, ctx.frame["ii"] < 0, "ii", lambda r: f"II {r['ii']:g} is negative")


@register("D011", "error", "ADDL is negative", "ADDL counts additional doses and must be >= 0.")
def negative_addl(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    yield from emit(me, ctx, ctx.frame["addl"] < 0, "addl", lambda r: f"ADDL {r['addl']:g} is negative")


@register("D012", "warning", "dosing fields are set on a record that is not a dose",
          "RATE, II, ADDL and SS only act on dose records (EVID 1/4); clear them or fix EVID.")
def dosing_fields_on_nondose(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    nondose = ~ctx.is_dose & ~f["evid"].isin((2, 3))
    for field, is_set in (("rate", f["rate"] != 0), ("ii", f["ii"] > 0), ("addl", f["addl"] > 0),
                          ("ss", f["ss"] != 0)):
        yield from emit(me, ctx, nondose & is_set, field,
                        lambda r, c=field: f"{c.upper()} {r[c]:g} on an EVID {r['evid']:g} record has no effect")
