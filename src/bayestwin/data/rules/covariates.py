"""Rules on covariates and on the magnitude of values for their declared units (C and U rules)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bayestwin.data.report import Violation
from bayestwin.data.rules.base import Rule, register
from bayestwin.data.rules.context import RuleContext, emit

__all__: list[str] = []

#: Smallest apparent volume (dose / peak concentration) that a drug can have, in L per kg of
#: body weight: about half of the plasma volume (~0.04 L/kg). Below it the dose or concentration
#: unit is wrong (e.g. ng/mL values declared as mg/L). Without a weight, 0.02 L in absolute terms.
MIN_APPARENT_VOLUME_L_PER_KG = 0.02
MIN_APPARENT_VOLUME_L = 0.02


def _unfillable(ctx: RuleContext, column: str) -> pd.Series:
    f = ctx.frame
    filled = f.groupby("id", sort=False)[column].ffill()
    needs = f["evid"].isin((0, 1, 4))
    return filled.isna() & needs


@register("C001", "error", "a required covariate has no value for a dose or observation",
          "Fill in the covariate on (or before) the patient's first record; values are carried forward "
          "(LOCF) within a patient, never backwards.")
def required_covariate_missing(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    for column in sorted(ctx.required_covariates):
        if column not in ctx.frame.columns:
            yield me.violation(f"required covariate {column!r} is not a column of the data", column=column,
                               fix=f"Add a {column} column, or remove it from the required covariates.")
            continue
        yield from emit(me, ctx, _unfillable(ctx, column), column,
                        lambda r, c=column: f"{c} has no value at or before this record", value=lambda r: ".")


@register("C002", "warning", "a covariate has no value before a record (it stays missing)",
          "Fill in the covariate on the patient's first record; a model using it would need it.")
def covariate_missing(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    for column in ctx.covariates:
        if column in ctx.required_covariates:
            continue
        mask = _unfillable(ctx, column)
        # one warning per patient: the first record that lacks a value
        first = mask & (mask.groupby(ctx.frame["id"], sort=False).cumsum() == 1)
        yield from emit(me, ctx, first, column,
                        lambda r, c=column: f"{c} has no value at or before this record", value=lambda r: ".")


@register("C003", "error", "a covariate declared constant changes within a patient",
          "Fix the inconsistent value, or do not declare the covariate static (time-varying covariates "
          "are carried forward).")
def static_changes(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    f = ctx.frame
    for column in sorted(ctx.static_covariates):
        if column not in f.columns:
            yield me.violation(f"static covariate {column!r} is not a column of the data", column=column,
                               fix=f"Add a {column} column, or remove it from the static covariates.")
            continue
        first = f.groupby("id", sort=False)[column].transform("first")
        mask = f[column].notna() & first.notna() & (f[column] != first)
        yield from emit(me, ctx, mask, column,
                        lambda r, c=column, ff=first: f"{c} is {r[c]} here but {ff.loc[r.name]} earlier")


@register("U004", "error", "a value is implausible for its declared unit",
          "Check the unit: a classic mix-up is grams for kg, or mg/L for µg/L; declare the unit the "
          "column is really in.")
def implausible_magnitude(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    from bayestwin.plausibility import descriptor_for, plausible_range

    f = ctx.frame
    for column in ctx.covariates:
        descriptor = descriptor_for(column)
        unit = ctx.units.get(column)
        if descriptor is None or unit is None or not pd.api.types.is_numeric_dtype(f[column]):
            continue
        low, high = plausible_range(descriptor, unit)
        mask = (f[column] < low) | (f[column] > high)
        yield from emit(me, ctx, mask, column,
                        lambda r, c=column, d=descriptor, u=unit, lo=low, hi=high:
                        f"{d} {r[c]:g} {u} is outside the plausible {lo:g}-{hi:g} {u}")


@register("U005", "error", "doses and concentrations imply an impossible volume (unit mix-up)",
          "Dose / peak concentration is below the plasma volume: the dose or DV unit is probably off by "
          "1000 (e.g. ng/mL declared as mg/L). Declare the units the data are really in.")
def implied_volume(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    from bayestwin.units import convert, kind_of

    amt_unit, dv_unit = ctx.units.get("amt"), ctx.units.get("dv")
    if amt_unit is None or dv_unit is None:
        return
    if kind_of(amt_unit) != "mass" or kind_of(dv_unit) != "mass_concentration":
        return
    f = ctx.frame
    dose_mg = pd.Series(np.asarray(convert(f["amt"].to_numpy(), amt_unit, "mg")), index=f.index)
    conc = pd.Series(np.asarray(convert(f["dv"].to_numpy(), dv_unit, "mg/L")), index=f.index)
    weight = None
    if ctx.weight_column is not None and ctx.weight_column in ctx.units:
        weight = pd.Series(np.asarray(convert(f[ctx.weight_column].to_numpy(),
                                              ctx.units[ctx.weight_column], "kg")), index=f.index)
        weight = weight.groupby(f["id"], sort=False).ffill()  # LOCF, as the table will carry it
    for pid, rows in f.groupby("id", sort=False):
        is_dose = rows["evid"].isin((1, 4)) & (rows["amt"] > 0)
        is_obs = (rows["evid"] == 0) & (rows["mdv"] == 0) & (rows["cens"] == 0) & conc[rows.index].notna()
        if not is_dose.any() or not is_obs.any() or dose_mg[rows.index][is_dose].isna().all():
            continue
        peak_label = conc[rows.index][is_obs].idxmax()
        peak = conc[peak_label]
        largest = dose_mg[rows.index][is_dose].max()
        if peak <= 0:
            continue
        volume = largest / peak
        if weight is not None and pd.notna(weight[peak_label]) and weight[peak_label] > 0:
            floor, per = MIN_APPARENT_VOLUME_L_PER_KG * weight[peak_label], " for the patient's weight"
        else:
            floor, per = MIN_APPARENT_VOLUME_L, ""
        if volume < floor:
            yield me.violation(
                f"largest dose {largest:g} mg over peak DV {peak:g} mg/L implies a volume of {volume:.3g} L, "
                f"below the {floor:.3g} L minimum{per}", patient=pid, row=peak_label, column=ctx.col("dv"),
                value=f["dv"][peak_label])


@register("U007", "warning", "a covariate that looks quantitative has no unit",
          "Declare its unit, e.g. units={'WT': 'kg'}, so conversions and plausibility checks apply.")
def covariate_without_unit(ctx: RuleContext, me: Rule) -> Iterator[Violation]:
    from bayestwin.plausibility import descriptor_for

    for column in ctx.covariates:
        descriptor = descriptor_for(column)
        declared = column in ctx.units or column in ctx.extra.get("declared_units", ())
        if descriptor is None or declared or not pd.api.types.is_numeric_dtype(ctx.frame[column]):
            continue
        if descriptor == "apgar score":
            continue  # a score has no unit
        yield me.violation(f"{column} looks like {descriptor} but has no declared unit", column=column)
