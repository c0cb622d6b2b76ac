"""The changepoint detector's tuning and declared evaluation (issue 8; run through ``monitor_eval.py``).

``python validation/monitor_eval.py --cp-tune 7 --cache DIR --fit-sampler 2x250+250`` tunes the detector of
``bayestwin.monitor.changepoint`` on TRAINING seeds; ``--cp-evaluate 2029,2030,2031 --cache DIR`` scores the
declared detector (``monitor_eval.CP_DECLARED``) on evaluation seeds pooled and writes a section of
``docs/monitoring-evaluation.md``. Split from ``monitor_eval.py`` (which keeps the cohort, fit and rule code
and dispatches the two options here) to keep each script readable.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import time

import pandas as pd
from monitor_eval import (
    CP_DECLARED,
    DEDUP_H,
    FA,
    FIT_H,
    FIT_HEAD,
    PRIMARY_RULE_LEVEL,
    RULE_LEVELS,
    WINDOWS,
    _md,
    _rule_alerts,
    _verdicts,
)

from bayestwin.monitor.changepoint import ChangepointPolicy
from bayestwin.monitor.evaluate import evaluate_alerts, matched_reduction, operating_curve
from bayestwin.monitor.fit_policy import FitPolicy

#: Levels of the changepoint detector's operating curve.
CP_LEVELS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99)
#: Tuning grid (training seeds only): window h x prior SD of the shift x minimum hours after the change.
CP_GRID = {"window_h": (24.0, 48.0, 72.0), "sigma": (0.5, 1.0, 2.0), "min_h": (1.0, 3.0)}
CURVE_OUT = ["level", "n_detected", "sensitivity", "sensitivity_lo", "sensitivity_hi", "median_delay_h", FA,
             "chance_sensitivity", "n_alerts"]


def cp_curve(scores: pd.DataFrame, frame: pd.DataFrame, truth: pd.DataFrame, policy: object,
             levels: tuple[float, ...] = CP_LEVELS) -> pd.DataFrame:
    """Operating curve of the changepoint detector (posterior computed once, alerts per level)."""
    from bayestwin.monitor.changepoint import changepoint_alerts, changepoint_probability

    prob = changepoint_probability(scores, policy, start_h=FIT_H)  # type: ignore[arg-type]
    streams = frame[frame["time_h"] >= FIT_H]
    return operating_curve(lambda L: changepoint_alerts(scores, dataclasses.replace(policy, level=L),  # type: ignore
                                                        probability=prob),
                           levels, truth, streams, detector="changepoint", tolerance_h=6.0, window_h=WINDOWS)


def pooled(evs: dict[int, dict]) -> dict:  # type: ignore[type-arg]
    """Cohorts pooled into one: patient ids prefixed by the seed (``2029:P001``); frame, truth, scores."""
    def tag(df: pd.DataFrame, seed: int) -> pd.DataFrame:
        return df.assign(patient=f"{seed}:" + df["patient"].astype(str))

    return {"frame": pd.concat([tag(e["frame"], s) for s, e in evs.items()], ignore_index=True),
            "truth": pd.concat([tag(e["truth"], s) for s, e in evs.items()], ignore_index=True),
            "scores": pd.concat([tag(e["scores"][1.0], s) for s, e in evs.items()], ignore_index=True),
            "rule_frame": pd.concat([tag(e.get("rule_frame", e["frame"]), s) for s, e in evs.items()],
                                    ignore_index=True)}


def exclude_failed_signals(ev: dict) -> dict:  # type: ignore[type-arg]
    """MON5's failed-fit rule: a signal whose fit failed its gate after the refit leaves BOTH detectors.

    Its rows leave the twin's score table and the frame the rule alarms on (``rule_frame``); the streams that
    define the monitored spans and the events stay as they are. A cohort without failed fits is unchanged.
    """
    failed = list(ev.get("failed") or [])
    if not failed:
        return ev
    scores = {k: v[~v["signal"].isin(failed)] for k, v in ev["scores"].items()}
    return {**ev, "scores": scores, "rule_frame": ev["frame"][~ev["frame"]["signal"].isin(failed)]}


def rule_curves(frame: pd.DataFrame, truth: pd.DataFrame,
                rule_frame: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rule's operating curves in both de-duplication forms (per alert type; per patient).

    The rule alarms on `rule_frame` (default `frame`; MON5's failed-fit rule drops a signal from it); the
    monitored spans come from `frame`.
    """
    streams = frame[frame["time_h"] >= FIT_H]
    rf = frame if rule_frame is None else rule_frame
    opts = {"tolerance_h": 6.0, "window_h": WINDOWS}
    return (operating_curve(lambda L: _rule_alerts(rf, L), RULE_LEVELS, truth, streams, detector="rule", **opts),
            operating_curve(lambda L: _rule_alerts(rf, L, per_patient=True), RULE_LEVELS, truth, streams,
                            detector="rule per patient", **opts))


def cp_tune(evs: dict[int, dict], fa_margin: float = 0.4) -> tuple[object, pd.DataFrame, list[str]]:  # type: ignore
    """Choose the changepoint settings on TRAINING cohorts (pooled); returns (policy, grid, lines).

    Rule: among grid points with sensitivity >= and median delay <= NEWS2 >= 5's (pooled training cohorts) and
    false alarms <= `fa_margin` x the rule's per-patient-de-duplicated rate, the shortest median delay (then
    the fewest false alarms, then the higher level); none: the fewest false alarms at >= its sensitivity.
    """

    pool = pooled(evs)
    rule, rule_pp = rule_curves(pool["frame"], pool["truth"])
    r5, r5pp = (c[c["level"] == PRIMARY_RULE_LEVEL].iloc[0] for c in (rule, rule_pp))
    grid = []
    for w in CP_GRID["window_h"]:
        for sg in CP_GRID["sigma"]:
            for mh in CP_GRID["min_h"]:
                pol = ChangepointPolicy(window_h=w, sigma=sg, min_h=mh, dedup_h=DEDUP_H)
                c = cp_curve(pool["scores"], pool["frame"], pool["truth"], pol)
                grid.append(c.assign(window_h=w, sigma=sg, min_h=mh))
                print(f"window {w} sigma {sg} min_h {mh}:\n" +
                      c[["level", "sensitivity", "median_delay_h", FA]].round(3).to_string(), flush=True)
    g = pd.concat(grid, ignore_index=True)
    ok = g[(g["sensitivity"] >= max(r5["sensitivity"], r5pp["sensitivity"]))
           & (g["median_delay_h"] <= min(r5["median_delay_h"], r5pp["median_delay_h"]))]
    margin = ok[ok[FA] <= fa_margin * r5pp[FA]]
    best = (margin.sort_values(["median_delay_h", FA, "level"], ascending=[True, True, False]) if len(margin)
            else (ok if len(ok) else g[g["sensitivity"] >= r5["sensitivity"]]).sort_values([FA])).iloc[0]
    pol = ChangepointPolicy(level=float(best["level"]), window_h=float(best["window_h"]), sigma=float(best["sigma"]),
                            min_h=float(best["min_h"]), dedup_h=DEDUP_H)
    cols = ["window_h", "sigma", "min_h", "level", "n_detected", "sensitivity", "median_delay_h", FA]
    lines = [f"Training cohorts (seeds {', '.join(map(str, evs))}, pooled): NEWS2 >= 5 per type "
             f"{r5['sensitivity']:.3g} / {r5['median_delay_h']:.3g} h / {r5[FA]:.3g} FA; per patient "
             f"{r5pp['sensitivity']:.3g} / {r5pp['median_delay_h']:.3g} h / {r5pp[FA]:.3g} FA.", "",
             *_md(g[cols]), "", f"Chosen: {pol}", ""]
    return pol, g, lines


def _by_kind(ev: dict, policy: object) -> pd.DataFrame:  # type: ignore[type-arg]
    """Detected / events and median delay per deterioration kind: declared point, rule at the primary level."""
    from bayestwin.monitor.changepoint import changepoint_alerts

    streams = ev["frame"][ev["frame"]["time_h"] >= FIT_H]
    opts = {"tolerance_h": 6.0, "window_h": WINDOWS}
    tables = {"changepoint": changepoint_alerts(ev["scores"], policy),  # type: ignore[arg-type]
              "rule": _rule_alerts(ev.get("rule_frame", ev["frame"]), PRIMARY_RULE_LEVEL),
              "rule per patient": _rule_alerts(ev.get("rule_frame", ev["frame"]), PRIMARY_RULE_LEVEL,
                                               per_patient=True)}
    out = {}
    for name, alerts in tables.items():
        e = evaluate_alerts(alerts, ev["truth"], streams, **opts).events  # type: ignore[arg-type]
        g = e.groupby("kind")
        out[name] = g["detected"].sum().astype(int).astype(str) + "/" + g.size().astype(str) + ", " + \
            g["delay_h"].median().round(1).astype(str) + " h"
    return pd.DataFrame(out).reset_index()


def _det(r: pd.Series) -> str:
    return f"{int(r['n_detected'])}/{int(r['n_events'])} ({r['sensitivity_lo']:.2f}-{r['sensitivity_hi']:.2f})"


def _point_rows(name: str, point: pd.Series, rc: pd.DataFrame) -> tuple[list[str], dict[str, bool]]:
    rows, primary = [], {}
    for (lv, red, met), (_, r) in zip(_verdicts(point, rc), rc.iterrows(), strict=True):
        if lv == PRIMARY_RULE_LEVEL:
            primary[name] = met
        rows.append(f"| {name} | {lv:g}{' (primary)' if lv == PRIMARY_RULE_LEVEL else ''} | {_det(r)} | "
                    f"{r['median_delay_h']:.3g} | {r[FA]:.3g} | {_det(point)} | {point['median_delay_h']:.3g} | "
                    f"{point[FA]:.3g} | {red:.3g} | {'MET' if met else 'not met'} |")
    return rows, primary


def cp_section(title: str, ev: dict, policy: object) -> tuple[list[str], dict[str, bool]]:  # type: ignore[type-arg]
    """Tables of one (possibly pooled) cohort: declared point vs every rule level, full curves."""
    rule, rule_pp = rule_curves(ev["frame"], ev["truth"], ev.get("rule_frame"))
    curve = cp_curve(ev["scores"], ev["frame"], ev["truth"], policy)
    point = curve[curve["level"] == policy.level].iloc[0]  # type: ignore[attr-defined]
    rows, primary = _point_rows("rule", point, rule)
    rows_pp, primary_pp = _point_rows("rule, per-patient dedup", point, rule_pp)
    kinds = _by_kind(ev, policy)
    head = ("| baseline | level | rule detected (Wilson 95 %) | rule delay h | rule FA | twin detected | "
            "twin delay h | twin FA | reduction | target |")
    return [f"### {title}", "", head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", *rows, *rows_pp, "",
            "Per kind of deterioration (declared point vs NEWS2 >= 5, both forms): detected / events, median "
            "delay h:", "", *_md(kinds), "",
            "Changepoint detector, operating curve (declared settings, every level):", "", *_md(curve[CURVE_OUT]),
            "", "Rule (NEWS2 with red score, single thresholds, weight gain; 12-h de-duplication per alert type):", "",
            *_md(rule[CURVE_OUT]), "", "Rule with per-patient de-duplication:", "", *_md(rule_pp[CURVE_OUT]), "",
            "Matched comparison over the whole curves (optimistic: the level chosen on this cohort; not the test):",
            "", *_md(matched_reduction(curve, rule)), ""], {**primary, **primary_pp}




# ---------------------------------------------------------------- MON5: ramp-aware changepoint (issue 8)
#: MON5 grid (training seeds only): the shape of the change, window h, prior SD of a ramp's slope (units/h; not
#: used by "step"), hysteresis (clear at this fraction of the level); levels CP5_LEVELS. sigma 1, min 1 h.
#: Cut for time (2 cores at load ~18) after the first three step curves at 24 h (no better than 48 h, as in the
#: exploration): window 24 h, slope 0.03/0.1 and clear 0.5 dropped, slope 0.05 (the exploration's) used.
CP5_GRID = {"shape": ("step", "ramp", "either"), "window_h": (48.0, 72.0), "slope_sigma": (0.05,),
            "clear_fraction": (0.9, 1.0)}
CP5_LEVELS = (0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3)


def cp5_tune(evs: dict[int, dict], fa_margin: float = 0.6) -> tuple[object, pd.DataFrame, list[str]]:  # type: ignore
    """MON5's choice of the changepoint settings on TRAINING cohorts (pooled); returns (policy, grid, lines).

    Rule (fixed before the grid was run): eligible points detect at least as many events as NEWS2 >= 5 (both
    de-duplication forms, pooled training cohorts) with false alarms <= `fa_margin` x the rule's
    per-patient-de-duplicated rate (the stricter form; 0.6 leaves a margin to the target's 0.7); among them the
    smallest SMOOTHED median delay -- the mean of the pooled median delays at the point's level and its
    neighbouring levels (same other settings), so that one lucky level of a ragged curve is not chosen --, then
    the fewest false alarms. None eligible: the fewest false alarms at >= the rule's sensitivity.
    """
    from bayestwin.monitor.changepoint import changepoint_alerts, changepoint_probability

    pool = pooled(evs)
    rule, rule_pp = rule_curves(pool["frame"], pool["truth"])
    r5, r5pp = (c[c["level"] == PRIMARY_RULE_LEVEL].iloc[0] for c in (rule, rule_pp))
    streams = pool["frame"][pool["frame"]["time_h"] >= FIT_H]
    grid = []
    for shape in CP5_GRID["shape"]:
        for w in CP5_GRID["window_h"]:
            for ss in CP5_GRID["slope_sigma"] if shape != "step" else (CP5_GRID["slope_sigma"][0],):
                base = ChangepointPolicy(window_h=w, sigma=1.0, min_h=1.0, dedup_h=DEDUP_H, shape=shape,
                                         slope_sigma=ss)
                prob = changepoint_probability(pool["scores"], base, start_h=FIT_H)
                for cf in CP5_GRID["clear_fraction"]:
                    pol = dataclasses.replace(base, clear_fraction=cf)
                    c = operating_curve(lambda L, pol=pol, prob=prob: changepoint_alerts(  # type: ignore[misc]
                        pool["scores"], dataclasses.replace(pol, level=L), probability=prob), CP5_LEVELS,
                        pool["truth"], streams, detector="changepoint", tolerance_h=6.0, window_h=WINDOWS)
                    d = c["median_delay_h"].to_numpy(float)
                    smooth = [float(pd.Series(d[max(i - 1, 0):i + 2]).mean()) for i in range(d.size)]
                    grid.append(c.assign(shape=shape, window_h=w, slope_sigma=ss if shape != "step" else float("nan"),
                                         clear_fraction=cf, smoothed_delay_h=smooth))
                    print(f"{shape} window {w} slope {ss} clear {cf}:\n" +
                          c[["level", "n_detected", "median_delay_h", FA]].round(3).to_string(), flush=True)
    g = pd.concat(grid, ignore_index=True)
    n_rule = max(r5["n_detected"], r5pp["n_detected"])
    ok = g[(g["n_detected"] >= n_rule) & (g[FA] <= fa_margin * r5pp[FA])]
    best = (ok.sort_values(["smoothed_delay_h", FA]) if len(ok) else
            g[g["n_detected"] >= n_rule].sort_values([FA])).iloc[0]
    pol = ChangepointPolicy(level=float(best["level"]), window_h=float(best["window_h"]), sigma=1.0, min_h=1.0,
                            dedup_h=DEDUP_H, shape=str(best["shape"]), clear_fraction=float(best["clear_fraction"]),
                            slope_sigma=float(best["slope_sigma"]) if best["shape"] != "step" else 0.05)
    cols = ["shape", "window_h", "slope_sigma", "clear_fraction", "level", "n_detected", "sensitivity",
            "median_delay_h", "smoothed_delay_h", FA]
    n_ev = pool["truth"].dropna(subset=["onset_h"])["patient"].nunique()
    lines = [f"Training cohorts (seeds {', '.join(map(str, evs))}, pooled, {n_ev} "
             f"events): NEWS2 >= 5 per type {int(r5['n_detected'])} detected / {r5['median_delay_h']:.3g} h / "
             f"{r5[FA]:.3g} FA; per patient {int(r5pp['n_detected'])} / {r5pp['median_delay_h']:.3g} h / "
             f"{r5pp[FA]:.3g} FA. Eligible: >= {int(n_rule)} detected, FA <= {fa_margin * r5pp[FA]:.3g}: "
             f"{len(ok)} of {len(g)} points.", "", *_md(g[cols].sort_values("smoothed_delay_h").head(40)), "",
             f"Chosen: {pol}", ""]
    return pol, g, lines


def cp_eval_lines(evs: dict[int, dict], args: argparse.Namespace, policy: FitPolicy,  # type: ignore[type-arg]
                  declared: ChangepointPolicy | None = None, mon5: bool = False) -> list[str]:
    """The --cp-evaluate (MON4) / --cp5-evaluate (MON5) section: validity, pooled verdict (primary), per seed.

    MON4's rule: a seed with a fit failing its gate after the refit is NOT VALID and the verdict "not judged".
    MON5's rule (`mon5`): such a signal leaves both detectors (``exclude_failed_signals``) and the verdict stands.
    """
    t0 = time.perf_counter()
    declared = declared or CP_DECLARED
    valid = {sd: bool(e["valid"]) for sd, e in evs.items()}
    if mon5:
        evs = {sd: exclude_failed_signals(e) for sd, e in evs.items()}
    opt = "--cp5-evaluate" if mon5 else "--cp-evaluate"
    lines = [f"## Declared {'MON5 ' if mon5 else ''}changepoint detector, seeds {', '.join(map(str, evs))} pooled "
             f"(validation/monitor_eval.py {opt})", "",
             f"{args.cp_note} Cohorts `simulate_cohort(n_patients={args.patients}, days={args.days:g}, seed=s)`. "
             f"Detector as declared: `{declared}`. Fit policy: {policy.describe()}. "
             f"{_dt.date.today().isoformat()}, 2-core shared machine (load average {os.getloadavg()[0]:.1f}).", ""]
    for sd, e in evs.items():
        fate = ("; excluded from both detectors (declared failed-fit rule)" if mon5 else "") if not valid[sd] else ""
        lines += [f"Fits of seed {sd} ({'VALID' if valid[sd] else 'NOT VALID: ' + ', '.join(e['failed'])}{fate}; "
                  f"{e['fit_s']:.0f} s wall):", "", FIT_HEAD, "|---|---|---|---:|---:|---:|---:|", *e["fit_lines"], ""]
    pool_lines, primary = cp_section(f"Pooled: seeds {', '.join(map(str, evs))} (the primary comparison)",
                                     pooled(evs), declared)
    met = (mon5 or all(valid.values())) and all(primary.values())
    bad = [f"{sd} ({', '.join(evs[sd]['failed'])})" for sd, v in valid.items() if not v]
    verdict = ("NOT JUDGED: seed(s) " + ", ".join(bad) + " NOT VALID (fits failed their gate after the refit); "
               "the tables below are descriptive" if bad and not mon5 else
               "target MET at the primary point (pooled, both de-duplication forms)" if met else
               "target NOT MET at the primary point (" + ", ".join(
                   f"{k}: {'met' if v else 'not met'}" for k, v in primary.items()) + ")")
    if bad and mon5:
        verdict += "; signals excluded from both detectors under the declared failed-fit rule: " + ", ".join(bad)
    lines += [f"**Verdict (pooled, as declared): {verdict}.**", "", *pool_lines]
    for sd, e in evs.items():
        one = {"frame": e["frame"], "truth": e["truth"], "scores": e["scores"][1.0],
               "rule_frame": e.get("rule_frame", e["frame"])}
        sec, prim = cp_section(f"Seed {sd} alone (reported, not the test)", one, declared)
        lines += [*sec[:2], "Primary point on this seed: " + ", ".join(
            f"{k}: {'met' if v else 'not met'}" for k, v in prim.items()) + ".", "", *sec[2:]]
    lines.append(f"Section wall time {time.perf_counter() - t0:.0f} s (fits read from the cache).")
    print("\n".join(lines), flush=True)
    return lines
