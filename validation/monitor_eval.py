"""Twin vs fixed-threshold rule on the same simulated streams: operating curves, detection delay, false alarms.

Usage: ``python validation/monitor_eval.py [--patients 40] [--days 14] [--seed 2026] [--quick]``
(writes a section of ``docs/monitoring-evaluation.md`` and prints it).

Design (issue 8):

* cohort: ``bayestwin.monitor.simulate.simulate_cohort`` (half the patients deteriorate: sepsis-like,
  hypertensive or heart-failure, onsets >= 72 h; confounders: exercise, sleep, device noise, gaps, artefacts,
  duplicates, late batches);
* the twin: one hierarchical state-space model per signal fitted by NUTS on every patient's first
  ``FIT_H`` hours (before any onset; wearable series thinned to at most ``FIT_ROWS`` rows per patient for the
  fit), then the rest of the stream observed online in daily batches (``MonitorTwin.observe``);
  alerts from threshold-crossing and drift probabilities at a level L (raise at L, clear below L/2,
  de-duplication ``DEDUP_H`` h, the rule's window);
* the rule: ``bayestwin.monitor.rules.threshold_alerts`` (NEWS2 aggregate >= level, red score, single
  thresholds, weight gain 2 kg / 72 h; de-duplication ``DEDUP_H`` h);
* both scored by ``bayestwin.monitor.evaluate`` on the monitoring period only (after ``FIT_H``; alerts and
  exposure), per patient, event window [onset - 6 h, onset + kind window].
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import MONITOR_PAGE, write_section  # noqa: E402

from bayestwin.inference.sampler import SamplerConfig  # noqa: E402
from bayestwin.monitor.alerts import AlertPolicy, alerts_from_scores  # noqa: E402
from bayestwin.monitor.changepoint import ChangepointPolicy  # noqa: E402
from bayestwin.monitor.evaluate import evaluate_alerts, matched_reduction, operating_curve  # noqa: E402
from bayestwin.monitor.fit_policy import CohortFits, FitAttempt, FitPolicy, fit_cohort  # noqa: E402
from bayestwin.monitor.rules import threshold_alerts  # noqa: E402
from bayestwin.monitor.scoring import DEFAULT_DRIFTS  # noqa: E402
from bayestwin.monitor.simulate import simulate_cohort  # noqa: E402
from bayestwin.monitor.twin import MonitorTwin  # noqa: E402

FIT_H = 48.0
FIT_ROWS = 96
DEDUP_H = 12.0
FIT_HEAD = "| signal | attempt (chains x warm-up + draws) | gate | max R-hat | min ESS | divergences | wall s |"
SIGNALS = ("heart_rate", "resp_rate", "spo2", "sbp", "temperature", "weight")
WINDOWS = {"sepsis": 24.0, "hypertensive": 48.0, "heart_failure": 72.0}
TWIN_LEVELS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
RULE_LEVELS = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 11.0)


def _thin(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At most `rows` evenly spaced usable rows per (patient, signal)."""
    ok = frame[frame["status"] == "ok"]
    parts = []
    for _, g in ok.groupby(["patient", "signal"], sort=False):
        step = max(1, int(np.ceil(len(g) / rows)))
        parts.append(g.iloc[::step])
    return pd.concat(parts).sort_values(["patient", "signal", "time_h"], kind="stable")


def run(patients: int, days: float, seed: int, sampler: SamplerConfig, drift_scale: float = 1.0) -> list[str]:
    t_start = time.perf_counter()
    cohort = simulate_cohort(n_patients=patients, days=days, seed=seed)
    frame, truth = cohort.frame, cohort.truth
    hist = frame[frame["time_h"] < FIT_H]
    cf, fit_lines = _fit_all(hist, sampler)
    fits = cf.fits
    drifts = [dataclasses.replace(d, delta=d.delta * drift_scale) for d in DEFAULT_DRIFTS]
    twin = MonitorTwin(signals=SIGNALS, drifts=drifts, n_draws=32, n_paths=16, policy=AlertPolicy(0.9, 0.45, DEDUP_H))
    twin.fit(hist, fits=fits)
    rest = frame[frame["time_h"] >= FIT_H]
    t0 = time.perf_counter()
    n_obs = int((rest["status"] == "ok").sum())
    for day in range(int(FIT_H // 24), int(np.ceil(days))):
        twin.observe(rest[(rest["time_h"] >= 24 * day) & (rest["time_h"] < 24 * (day + 1))])
    online_s = time.perf_counter() - t0
    scores = twin.scores()
    scores = scores[(scores["time_h"] >= FIT_H) & scores["kind"].isin(["crossing", "drift"])]
    streams = frame[frame["time_h"] >= FIT_H]
    opts = {"tolerance_h": 6.0, "window_h": WINDOWS}

    def twin_alerts(level: float) -> pd.DataFrame:
        return alerts_from_scores(scores, AlertPolicy(level, level / 2, DEDUP_H))

    def rule_alerts(level: float) -> pd.DataFrame:
        a = threshold_alerts(frame, level, window_h=DEDUP_H)
        return a[a["time_h"] >= FIT_H]

    twin_curve = operating_curve(twin_alerts, TWIN_LEVELS, truth, streams, detector="twin", **opts)
    rule_curve = operating_curve(rule_alerts, RULE_LEVELS, truth, streams, detector="rule", **opts)
    matched = matched_reduction(twin_curve, rule_curve)
    # per kind of deterioration at the clinical rule level (NEWS2 5) and the twin's default level (0.9)
    kind_rows = []
    for kind in ("sepsis", "hypertensive", "heart_failure"):
        keep = truth.groupby("patient")["kind"].first().isin([kind, "none"])
        pts = set(keep[keep].index)
        tr, st = truth[truth["patient"].isin(pts)], streams[streams["patient"].isin(pts)]
        for name, table in (("twin 0.9", twin_alerts(0.9)), ("rule NEWS2 5", rule_alerts(5.0))):
            ev = evaluate_alerts(table[table["patient"].isin(pts)], tr, st, **opts).summary()
            kind_rows.append(f"| {kind} | {name} | {ev['sensitivity']:.2f} | {ev['median_delay_h']:.1f} |")
    cols = ["level", "sensitivity", "chance_sensitivity", "median_delay_h", "false_alarms_per_patient_day", "n_alerts"]
    cols = [c for c in cols if c in twin_curve.columns]

    def md(df: pd.DataFrame) -> list[str]:
        head = "| " + " | ".join(df.columns) + " |"
        rows = ["| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |"
                for r in df.itertuples(index=False)]
        return [head, "|" + "---:|" * len(df.columns), *rows]

    n_events = int(truth.groupby("patient")["onset_h"].min().notna().sum())
    lines = [
        "## Twin vs fixed-threshold rule (validation/monitor_eval.py)"
        + ("" if drift_scale == 1.0 else f", drift deltas x {drift_scale:g}"), "",
        "Twin drift deltas: " + ", ".join(f"{d.signal} {d.delta:+g}" for d in drifts) + " (over 72 h).", "",
        f"Cohort: `simulate_cohort(n_patients={patients}, days={days:g}, seed={seed})`, {n_events} deteriorating "
        f"patients; {len(frame)} rows ({int((frame['status'] == 'ok').sum())} usable). Monitoring period "
        f"t >= {FIT_H:g} h (the twin's fit uses the first {FIT_H:g} h, before any onset). Event window "
        f"[onset - 6 h, onset + {WINDOWS}]; de-duplication {DEDUP_H:g} h for both detectors. "
        f"{_dt.date.today().isoformat()}, 2-core shared machine (load average {os.getloadavg()[0]:.1f}).", "",
        f"NUTS fits ({sampler.chains} chains x {sampler.warmup} + {sampler.draws}; wearables thinned to <= "
        f"{FIT_ROWS} rows per patient for the fit):", "",
        FIT_HEAD,
        "|---|---|---|---:|---:|---:|---:|",
        *fit_lines, "",
        f"Online phase: {n_obs} usable observations in daily batches, filtered and scored (crossing Monte Carlo "
        f"32 draws x 16 paths, drift) in {online_s:.0f} s wall ({n_obs / online_s:,.0f} obs/s including "
        "scoring and compilation).", "",
        "Twin operating curve (alert level L = probability; raise at L, clear below L/2):", "",
        *md(twin_curve[cols]), "",
        "Rule operating curve (level = NEWS2 aggregate; red score, single thresholds and weight gain always on):",
        "", *md(rule_curve[cols]), "",
        "Matched comparison (for each rule point, the twin point with the fewest false alarms at equal or better "
        "sensitivity and median delay; `reduction` = 1 - twin FA / rule FA; the issue's target is >= 0.3):", "",
        *md(matched), "",
        "Per kind (patients with that kind plus those without an event):", "",
        "| kind | detector | sensitivity | median delay h |", "|---|---|---:|---:|", *kind_rows, "",
        f"Total wall time {time.perf_counter() - t_start:.0f} s.",
    ]
    return lines


def default_policy(sampler: SamplerConfig) -> FitPolicy:
    """The fit policy for `sampler`: fit with it; a fit failing its gate is refitted once at twice the length."""
    return FitPolicy(first=sampler, retry=dataclasses.replace(sampler, warmup=2 * sampler.warmup,
                                                              draws=2 * sampler.draws))


def _fit_all(hist: pd.DataFrame, sampler: SamplerConfig,
             policy: FitPolicy | None = None) -> tuple[CohortFits, list[str]]:
    """Fit every signal under the fit policy (default: `sampler`, one refit at twice the warm-up and draws)."""
    policy = policy or default_policy(sampler)
    lines: list[str] = []

    def line(a: FitAttempt) -> None:
        lines.append(f"| {a.signal} | {a.attempt} ({a.sampler.chains} x {a.sampler.warmup} + {a.sampler.draws}) | "
                     f"{'OK' if a.ok else ('FAILED after refit' if a.attempt > 1 else 'FAILED')} | "
                     f"{a.max_rhat:.3f} | {a.min_ess:.0f} | {a.divergences} | {a.wall_time_s:.0f} |")
        print(lines[-1], flush=True)

    cf = fit_cohort(_thin(hist, FIT_ROWS), SIGNALS, policy, on_attempt=line)
    if not cf.valid:
        banner = "!" * 100
        print(f"{banner}\nFITS {cf.failed} FAILED THEIR GATE AFTER THE REFIT: THIS COHORT'S EVALUATION IS NOT "
              f"VALID\n{banner}", flush=True)
    return cf, lines


def _online(frame: pd.DataFrame, fits: dict, drift_scale: float, days: float) -> tuple[pd.DataFrame, float, int]:  # type: ignore[type-arg]
    """Twin scores (crossing and drift, t >= FIT_H) after daily online batches; online seconds; observations."""
    drifts = [dataclasses.replace(d, delta=d.delta * drift_scale) for d in DEFAULT_DRIFTS]
    twin = MonitorTwin(signals=SIGNALS, drifts=drifts, n_draws=32, n_paths=16, policy=AlertPolicy(0.9, 0.45, DEDUP_H))
    twin.fit(frame[frame["time_h"] < FIT_H], fits=fits)
    rest = frame[frame["time_h"] >= FIT_H]
    t0 = time.perf_counter()
    for day in range(int(FIT_H // 24), int(np.ceil(days))):
        twin.observe(rest[(rest["time_h"] >= 24 * day) & (rest["time_h"] < 24 * (day + 1))])
    online_s = time.perf_counter() - t0
    scores = twin.scores()
    scores = scores[(scores["time_h"] >= FIT_H) & scores["kind"].isin(["crossing", "drift"])]
    return scores, online_s, int((rest["status"] == "ok").sum())


def _policy_key(policy: FitPolicy) -> str:
    f, r = policy.first, policy.retry
    return f"{f.chains}x{f.warmup}+{f.draws}_r{FIT_ROWS}_" + (
        f"refit{r.chains}x{r.warmup}+{r.draws}" if r is not None else "norefit")


def fit_cached(patients: int, days: float, seed: int, policy: FitPolicy,
               cache: Path | None = None) -> dict:  # type: ignore[type-arg]
    """Simulate cohort `seed` and fit every signal under `policy` (detector-free); cached in `cache`.

    Returns {"frame", "truth", "cf" (CohortFits), "fit_lines", "fit_s"}. Nothing here scores or alerts, so the
    fits of evaluation seeds can run before a detector is declared.
    """
    import pickle

    key = f"fits_seed{seed}_p{patients}_d{days:g}_{_policy_key(policy)}.pkl"
    if cache is not None and (cache / key).exists():
        with open(cache / key, "rb") as fh:
            return pickle.load(fh)  # our own file, written below
    cohort = simulate_cohort(n_patients=patients, days=days, seed=seed)
    t0 = time.perf_counter()
    cf, fit_lines = _fit_all(cohort.frame[cohort.frame["time_h"] < FIT_H], policy.first, policy)
    out = {"frame": cohort.frame, "truth": cohort.truth, "cf": cf, "fit_lines": fit_lines,
           "fit_s": time.perf_counter() - t0}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / key, "wb") as fh:
            pickle.dump(out, fh)
    return out


def score_cohort(patients: int, days: float, seed: int, sampler: SamplerConfig, scales: tuple[float, ...],
                 cache: Path | None = None, policy: FitPolicy | None = None) -> dict:  # type: ignore[type-arg]
    """Simulate cohort `seed`, fit every signal, score the monitoring period once per drift scale.

    Returns {"frame", "truth", "fit_lines", "fit_s", "scores": {scale: table}, "online_s", "n_obs"}; with
    `cache`, the result is stored there (pickle) and read back by a later call with the same arguments (the
    detector is post-processing of these scores, so tuning it never refits).
    """
    import pickle

    policy = policy or default_policy(sampler)
    r = policy.retry
    f = policy.first
    key = f"seed{seed}_p{patients}_d{days:g}_{f.chains}x{f.warmup}+{f.draws}_r{FIT_ROWS}_" \
          + (f"refit{r.chains}x{r.warmup}+{r.draws}_" if r is not None else "norefit_") \
          + "_".join(f"{k:g}" for k in scales) + ".pkl"
    if cache is not None and (cache / key).exists():
        with open(cache / key, "rb") as fh:
            return pickle.load(fh)  # our own file, written below
    fitted = fit_cached(patients, days, seed, policy, cache)
    cohort_frame, cf, fit_lines, fit_s = fitted["frame"], fitted["cf"], fitted["fit_lines"], fitted["fit_s"]
    fits = cf.fits
    out = {"frame": cohort_frame, "truth": fitted["truth"], "fit_lines": fit_lines, "fit_s": fit_s, "scores": {},
           "online_s": {}, "structures": {s: repr(f.structure) for s, f in fits.items()},
           "gates": {s: f.ok for s, f in fits.items()}, "valid": cf.valid, "failed": cf.failed,
           "attempts": cf.table(), "policy": cf.policy.describe()}
    for scale in scales:
        out["scores"][scale], out["online_s"][scale], out["n_obs"] = _online(cohort_frame, fits, scale, days)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / key, "wb") as fh:
            pickle.dump(out, fh)
    return out


def _curves(scores: pd.DataFrame, frame: pd.DataFrame, truth: pd.DataFrame,
            rule_curve: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Twin and rule operating curves (the rule's is reused when given: it does not depend on the twin)."""
    streams = frame[frame["time_h"] >= FIT_H]
    opts = {"tolerance_h": 6.0, "window_h": WINDOWS}

    def twin_alerts(level: float) -> pd.DataFrame:
        return alerts_from_scores(scores, AlertPolicy(level, level / 2, DEDUP_H))

    def rule_alerts(level: float) -> pd.DataFrame:
        a = threshold_alerts(frame, level, window_h=DEDUP_H)
        return a[a["time_h"] >= FIT_H]

    if rule_curve is None:
        rule_curve = operating_curve(rule_alerts, RULE_LEVELS, truth, streams, detector="rule", **opts)
    return operating_curve(twin_alerts, TWIN_LEVELS, truth, streams, detector="twin", **opts), rule_curve


def _md(df: pd.DataFrame) -> list[str]:
    head = "| " + " | ".join(df.columns) + " |"
    rows = ["| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |"
            for r in df.itertuples(index=False)]
    return [head, "|" + "---:|" * len(df.columns), *rows]


CURVE_COLS = ["level", "sensitivity", "chance_sensitivity", "median_delay_h", "false_alarms_per_patient_day",
              "n_alerts"]


def _choose(twin_curves: dict[float, pd.DataFrame], rule_curve: pd.DataFrame, rule_level: float) -> tuple[float,
                                                                                                         float]:
    """(drift scale, alert level) with the fewest false alarms at >= the rule's sensitivity and <= its delay
    at `rule_level` on the TUNING cohort; failing that, the highest sensitivity (then fewest false alarms)."""
    fa = "false_alarms_per_patient_day"
    rule = rule_curve[rule_curve["level"] == rule_level].iloc[0]
    both = pd.concat([c.assign(scale=k) for k, c in twin_curves.items()], ignore_index=True)
    ok = both[(both["sensitivity"] >= rule["sensitivity"]) & (both["median_delay_h"] <= rule["median_delay_h"])]
    best = (ok.sort_values([fa, "level"]) if len(ok)
            else both.sort_values(["sensitivity", fa], ascending=[False, True])).iloc[0]
    return float(best["scale"]), float(best["level"])


def tuned_run(patients: int, days: float, tune_seed: int, seed: int, sampler: SamplerConfig,
              scales: tuple[float, ...], rule_level: float = 5.0) -> list[str]:
    """Choose the drift scale and alert level on the tuning cohort, then evaluate them on the evaluation cohort."""
    t_start = time.perf_counter()
    tune = simulate_cohort(n_patients=patients, days=days, seed=tune_seed)
    tune_cf, tune_fit_lines = _fit_all(tune.frame[tune.frame["time_h"] < FIT_H], sampler)
    fits = tune_cf.fits
    curves, rule_tune = {}, None
    for scale in scales:
        scores, _, _ = _online(tune.frame, fits, scale, days)
        curves[scale], rule_tune = _curves(scores, tune.frame, tune.truth, rule_tune)
        print(f"tuning scale {scale}:\n" + "\n".join(_md(curves[scale][CURVE_COLS])), flush=True)
    assert rule_tune is not None
    scale, level = _choose(curves, rule_tune, rule_level)
    print(f"chosen on seed {tune_seed}: drift scale {scale}, level {level}", flush=True)
    ev = simulate_cohort(n_patients=patients, days=days, seed=seed)
    frame, truth = ev.frame, ev.truth
    eval_cf, fit_lines = _fit_all(frame[frame["time_h"] < FIT_H], sampler)
    fits = eval_cf.fits
    scores, online_s, n_obs = _online(frame, fits, scale, days)
    twin_curve, rule_curve = _curves(scores, frame, truth)
    fa = "false_alarms_per_patient_day"
    point = twin_curve[twin_curve["level"] == level].iloc[0]
    pre = []
    for _, r in rule_curve.iterrows():
        better = point["sensitivity"] >= r["sensitivity"] and point["median_delay_h"] <= r["median_delay_h"]
        red = 1.0 - point[fa] / r[fa] if r[fa] > 0 else float("nan")
        pre.append(f"| {r['level']:g} | {r['sensitivity']:.3g} | {r['median_delay_h']:.3g} | {r[fa]:.3g} | "
                   f"{point['sensitivity']:.3g} | {point['median_delay_h']:.3g} | {point[fa]:.3g} | {red:.3g} | "
                   f"{'yes' if better else 'no'} | {'MET' if better and red >= 0.3 else 'not met'} |")
    n_events = int(truth.groupby("patient")["onset_h"].min().notna().sum())
    tune_rows = [f"| {k:g} | " + " | ".join(
        f"{r['level']:g}: {r['sensitivity']:.2f}/{r['median_delay_h']:.1f} h/{r[fa]:.2f}"
        for _, r in c.iterrows() if r["level"] in (0.3, 0.5, 0.8, 0.9, 0.95)) + " |" for k, c in curves.items()]
    rt = rule_tune[rule_tune["level"] == rule_level].iloc[0]
    return [
        f"## Twin vs fixed-threshold rule, tuned on seed {tune_seed}, evaluated on seed {seed} "
        "(validation/monitor_eval.py --tune-seed)", "",
        f"Two cohorts `simulate_cohort(n_patients={patients}, days={days:g})`: TUNING seed {tune_seed}, EVALUATION "
        f"seed {seed} ({n_events} deteriorating patients; {len(frame)} rows). The twin's drift-delta scale (of "
        f"{', '.join(f'{d.signal} {d.delta:+g}' for d in DEFAULT_DRIFTS)} over 72 h; candidates "
        f"{', '.join(f'{k:g}' for k in scales)}) and its alert level were chosen on the tuning cohort only: the "
        f"pair with the fewest false alarms at >= the sensitivity and <= the median delay of NEWS2 >= "
        f"{rule_level:g} there (tuning rule: sensitivity {rt['sensitivity']:.2f}, delay "
        f"{rt['median_delay_h']:.1f} h, {rt[fa]:.2f} false alarms/patient-day). Chosen: **scale {scale:g}, level "
        f"{level:g}**; the evaluation cohort was run once with them. Monitoring period t >= {FIT_H:g} h; event "
        f"window [onset - 6 h, onset + {WINDOWS}]; de-duplication {DEDUP_H:g} h for both. "
        f"{_dt.date.today().isoformat()}, 2-core shared machine (load average {os.getloadavg()[0]:.1f}).", "",
        "Tuning cohort, twin points (level: sensitivity/median delay/false alarms per patient-day):", "",
        "| scale | points |", "|---:|---|", *tune_rows, "",
        f"NUTS fits ({sampler.chains} chains x {sampler.warmup} + {sampler.draws}; <= {FIT_ROWS} rows per "
        "patient), tuning cohort then evaluation cohort:", "",
        FIT_HEAD,
        "|---|---|---|---:|---:|---:|---:|", *tune_fit_lines, *fit_lines, "",
        f"Evaluation online phase: {n_obs} observations in daily batches in {online_s:.0f} s wall "
        f"({n_obs / online_s:,.0f} obs/s including scoring and compilation).", "",
        f"**Pre-chosen twin point (scale {scale:g}, level {level:g}) vs every rule level on the evaluation cohort** "
        "(target: >= 30 % fewer false alarms at equal or better sensitivity and median delay):", "",
        "| rule level | rule sens | rule delay h | rule FA | twin sens | twin delay h | twin FA | reduction | "
        "sens and delay >= rule | target |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|", *pre, "",
        "Twin operating curve on the evaluation cohort (all levels, for the record; only the pre-chosen level is "
        "a test):", "", *_md(twin_curve[[c for c in CURVE_COLS if c in twin_curve]]), "",
        "Rule operating curve on the evaluation cohort:", "", *_md(rule_curve[[c for c in CURVE_COLS if c in
                                                                             rule_curve]]), "",
        "Best twin point per rule level chosen ON the evaluation cohort (optimistic, not a test):", "",
        *_md(matched_reduction(twin_curve, rule_curve)), "",
        f"Total wall time {time.perf_counter() - t_start:.0f} s.",
    ]


# ---------------------------------------------------------------- patient-level detector (issue 8, MON2)
PERSISTS = (0.0, 1.0, 2.0)
DETECTOR_LEVELS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999)
FA = "false_alarms_per_patient_day"


def fa_breakdown(scores: pd.DataFrame, frame: pd.DataFrame, truth: pd.DataFrame, level: float) -> pd.DataFrame:
    """Per (signal, kind): alerts and false alarms per patient-day of the per-signal alerts at `level`."""
    streams = frame[frame["time_h"] >= FIT_H]
    ev = evaluate_alerts(alerts_from_scores(scores, AlertPolicy(level, level / 2, DEDUP_H)), truth, streams,
                         tolerance_h=6.0, window_h=WINDOWS)
    a = ev.alerts.assign(false=ev.alerts["outcome"] == "false")
    out = a.groupby(["signal", "kind"])["false"].agg(alerts="size", false="sum").reset_index()
    return out.assign(fa_per_patient_day=out["false"] / ev.patient_days)


def _rule_alerts(frame: pd.DataFrame, level: float, per_patient: bool = False) -> pd.DataFrame:
    a = threshold_alerts(frame, level, window_h=DEDUP_H)
    a = a[a["time_h"] >= FIT_H]
    if per_patient:  # the same per-patient de-duplication as the twin's detector (a sensitivity check)
        from bayestwin.monitor.rules import deduplicate

        a = deduplicate(a.assign(signal="patient", active=True), window_h=DEDUP_H, rearm=False)
    return a


def detector_curves(scores: pd.DataFrame, frame: pd.DataFrame, truth: pd.DataFrame, kinds: tuple[str, ...],
                    persist_h: float, levels: tuple[float, ...] = DETECTOR_LEVELS) -> pd.DataFrame:
    """Operating curve of the patient-level detector (one combined table, every level)."""
    from bayestwin.monitor.detector import PatientPolicy, combined_probability, patient_alerts

    combo = combined_probability(scores, kinds=kinds, max_age_h=PatientPolicy(0.5).max_age_h)
    streams = frame[frame["time_h"] >= FIT_H]
    return operating_curve(lambda L: patient_alerts(scores, PatientPolicy(L, persist_h, DEDUP_H, kinds=kinds),
                                                    combined=combo),
                           levels, truth, streams, detector="patient", tolerance_h=6.0, window_h=WINDOWS)


def detector_run(patients: int, days: float, tune_seed: int, eval_seeds: tuple[int, ...], sampler: SamplerConfig,
                 scales: tuple[float, ...], cache: Path | None, rule_level: float = 5.0) -> list[str]:
    """Tune (drift scale, kinds, persistence, level) of the patient-level detector on `tune_seed`; evaluate once."""
    t_start = time.perf_counter()
    tune = score_cohort(patients, days, tune_seed, sampler, scales, cache)
    streams = tune["frame"][tune["frame"]["time_h"] >= FIT_H]
    opts = {"tolerance_h": 6.0, "window_h": WINDOWS}
    rule_tune = operating_curve(lambda L: _rule_alerts(tune["frame"], L), RULE_LEVELS, tune["truth"], streams,
                                detector="rule", **opts)
    breakdown = fa_breakdown(tune["scores"][1.0], tune["frame"], tune["truth"], 0.9)
    print(breakdown.to_string(), flush=True)
    grid = []
    for scale in scales:
        for kinds in (("drift",), ("drift", "crossing")):
            for persist in PERSISTS:
                c = detector_curves(tune["scores"][scale], tune["frame"], tune["truth"], kinds, persist)
                grid.append(c.assign(scale=scale, kinds="+".join(kinds), persist_h=persist))
                print(f"scale {scale} kinds {kinds} persist {persist}:", flush=True)
                print(c[["level", "sensitivity", "median_delay_h", FA]].round(3).to_string(), flush=True)
    grid_df = pd.concat(grid, ignore_index=True)
    rt = rule_tune[rule_tune["level"] == rule_level].iloc[0]
    ok = grid_df[(grid_df["sensitivity"] >= rt["sensitivity"]) & (grid_df["median_delay_h"] <= rt["median_delay_h"])]
    best = (ok.sort_values([FA, "persist_h", "level"]) if len(ok)
            else grid_df.sort_values(["sensitivity", FA], ascending=[False, True])).iloc[0]
    choice = (float(best["scale"]), tuple(str(best["kinds"]).split("+")), float(best["persist_h"]),
              float(best["level"]))
    print(f"chosen on seed {tune_seed}: {choice}", flush=True)
    lines = [
        f"## Patient-level detector, tuned on seed {tune_seed}, evaluated on seeds "
        f"{' and '.join(map(str, eval_seeds))} (validation/monitor_eval.py --detector)", "",
        f"Cohorts `simulate_cohort(n_patients={patients}, days={days:g})`. The evaluation seeds were declared "
        "before any run of this section. The twin's NUTS fits: "
        f"{sampler.chains} chains x {sampler.warmup} + {sampler.draws}, <= {FIT_ROWS} rows per patient, the "
        "structure chosen by `choose_structure`. The detector (`bayestwin.monitor.detector`): per patient, "
        "P(any selected series holds) = 1 - prod(1 - p) over the latest drift (and crossing) probabilities, held "
        f"for `persist_h` hours, raised at the level, cleared below half of it, de-duplicated per patient "
        f"({DEDUP_H:g} h). {_dt.date.today().isoformat()}, 2-core shared machine.", "",
        f"Tuning cohort (seed {tune_seed}): fits", "", FIT_HEAD, "|---|---|---|---:|---:|---:|---:|",
        *tune["fit_lines"], "",
        "Structures: " + "; ".join(f"{k}: {v}" for k, v in tune["structures"].items()), "",
        "False alarms of the per-signal alerts at L = 0.9 (drift scale 1) on the tuning cohort, by signal and kind "
        "(what the detector has to remove):", "", *_md(breakdown), "",
        "Tuning grid (drift scale x kinds x persistence x level; rule: the fewest false alarms at >= the "
        f"sensitivity and <= the median delay of NEWS2 >= {rule_level:g} on the tuning cohort: sensitivity "
        f"{rt['sensitivity']:.2f}, delay {rt['median_delay_h']:.1f} h, {rt[FA]:.2f} FA/patient-day):", "",
        *_md(grid_df[["scale", "kinds", "persist_h", "level", "sensitivity", "median_delay_h", FA]]), "",
        f"**Chosen: drift scale {choice[0]:g}, kinds {'+'.join(choice[1])}, persistence {choice[2]:g} h, level "
        f"{choice[3]:g}.**", "",
    ]
    for seed in eval_seeds:
        ev = score_cohort(patients, days, seed, sampler, (choice[0],), cache)
        frame, truth = ev["frame"], ev["truth"]
        streams = frame[frame["time_h"] >= FIT_H]
        curve = detector_curves(ev["scores"][choice[0]], frame, truth, choice[1], choice[2])
        rule = operating_curve(lambda L, f=frame: _rule_alerts(f, L), RULE_LEVELS, truth, streams, detector="rule",
                               **opts)
        rule_pp = operating_curve(lambda L, f=frame: _rule_alerts(f, L, per_patient=True), RULE_LEVELS, truth,
                                  streams, detector="rule per patient", **opts)
        point = curve[curve["level"] == choice[3]].iloc[0]
        pre = []
        for name, rc in (("rule", rule), ("rule, per-patient dedup", rule_pp)):
            for _, r in rc.iterrows():
                better = point["sensitivity"] >= r["sensitivity"] and point["median_delay_h"] <= r["median_delay_h"]
                red = 1.0 - point[FA] / r[FA] if r[FA] > 0 else float("nan")
                pre.append(f"| {name} | {r['level']:g} | {r['sensitivity']:.3g} | {r['median_delay_h']:.3g} | "
                           f"{r[FA]:.3g} | {point['sensitivity']:.3g} ({point['sensitivity_lo']:.2f}-"
                           f"{point['sensitivity_hi']:.2f}) | {point['median_delay_h']:.3g} | {point[FA]:.3g} | "
                           f"{red:.3g} | {'MET' if better and red >= 0.3 else 'not met'} |")
        n_events = int(truth.groupby("patient")["onset_h"].min().notna().sum())
        cols = ["level", "n_detected", "sensitivity", "sensitivity_lo", "sensitivity_hi", "median_delay_h", FA,
                "chance_sensitivity", "n_alerts"]
        lines += [
            f"### Evaluation seed {seed} ({n_events} deteriorating patients; {len(frame)} rows; run once)", "",
            FIT_HEAD,
            "|---|---|---|---:|---:|---:|---:|", *ev["fit_lines"], "",
            f"Fits {ev['fit_s']:.0f} s wall; online phase {ev['n_obs']} observations in "
            f"{ev['online_s'][choice[0]]:.0f} s wall (load average {os.getloadavg()[0]:.1f}).", "",
            "Pre-chosen detector point vs every rule level (target: >= 30 % fewer false alarms at equal or "
            "better sensitivity and median delay; sensitivity with its Wilson 95 % interval):", "",
            "| baseline | level | rule sens | rule delay h | rule FA | twin sens | twin delay h | twin FA | "
            "reduction | target |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", *pre, "",
            "Detector operating curve (chosen scale, kinds, persistence; all levels):", "",
            *_md(curve[cols]), "", "Rule operating curve:", "", *_md(rule[cols]), "",
            "Rule with per-patient de-duplication:", "", *_md(rule_pp[cols]), "",
            "Matched comparison over the whole curves (optimistic: the twin level is chosen on this cohort):", "",
            *_md(matched_reduction(curve, rule)), "",
        ]
    lines.append(f"Total wall time {time.perf_counter() - t_start:.0f} s (fits read from the cache where present).")
    return lines


# ---------------------------------------------------------------- declared evaluation under the fit policy (MON3)
#: The detector chosen on tuning seed 7 (drift scale, kinds, persistence h, level); NOT tuned again.
DECLARED_DETECTOR = (0.6, ("drift",), 0.0, 0.5)
#: The primary rule point (NEWS2 aggregate >= 5 with the red single-parameter score; declared 2026-11-27).
PRIMARY_RULE_LEVEL = 5.0


def _verdicts(point: pd.Series, rule: pd.DataFrame) -> list[tuple[float, float, bool]]:
    """(rule level, reduction, target met) of the detector point against every rule level."""
    out = []
    for _, r in rule.iterrows():
        better = point["sensitivity"] >= r["sensitivity"] and point["median_delay_h"] <= r["median_delay_h"]
        red = 1.0 - point[FA] / r[FA] if r[FA] > 0 else float("nan")
        out.append((float(r["level"]), red, bool(better and red >= 0.3)))
    return out


def policy_eval_run(patients: int, days: float, seed: int, policy: FitPolicy, cache: Path | None,
                    note: str) -> tuple[list[str], dict]:  # type: ignore[type-arg]
    """Evaluate the DECLARED detector on cohort `seed` with fits under `policy`; one doc section per seed.

    Returns the section's lines and a summary (valid, primary verdicts). Nothing is tuned here.
    """
    t_start = time.perf_counter()
    scale, kinds, persist, level = DECLARED_DETECTOR
    ev = score_cohort(patients, days, seed, policy.first, (scale,), cache, policy)
    frame, truth = ev["frame"], ev["truth"]
    streams = frame[frame["time_h"] >= FIT_H]
    opts = {"tolerance_h": 6.0, "window_h": WINDOWS}
    curve = detector_curves(ev["scores"][scale], frame, truth, kinds, persist)
    rule = operating_curve(lambda L: _rule_alerts(frame, L), RULE_LEVELS, truth, streams, detector="rule", **opts)
    rule_pp = operating_curve(lambda L: _rule_alerts(frame, L, per_patient=True), RULE_LEVELS, truth, streams,
                              detector="rule per patient", **opts)
    point = curve[curve["level"] == level].iloc[0]
    pre, primary = [], {}
    for name, rc in (("rule", rule), ("rule, per-patient dedup", rule_pp)):
        for (lv, red, met), (_, r) in zip(_verdicts(point, rc), rc.iterrows(), strict=True):
            if lv == PRIMARY_RULE_LEVEL:
                primary[name] = met
            pre.append(f"| {name} | {lv:g}{' (primary)' if lv == PRIMARY_RULE_LEVEL else ''} | "
                       f"{r['sensitivity']:.3g} ({r['sensitivity_lo']:.2f}-{r['sensitivity_hi']:.2f}) | "
                       f"{r['median_delay_h']:.3g} | {r[FA]:.3g} | {point['sensitivity']:.3g} "
                       f"({point['sensitivity_lo']:.2f}-{point['sensitivity_hi']:.2f}) | "
                       f"{point['median_delay_h']:.3g} | {point[FA]:.3g} | {red:.3g} | "
                       f"{'MET' if met else 'not met'} |")
    valid = bool(ev["valid"])
    met = valid and all(primary.values())
    verdict = ("NOT VALID (fits " + ", ".join(ev["failed"]) + " failed their gate after the refit)" if not valid
               else ("target MET at the primary point (both de-duplication forms)" if met
                     else "target NOT MET at the primary point (" + ", ".join(
                         f"{k}: {'met' if v else 'not met'}" for k, v in primary.items()) + ")"))
    n_events = int(truth.groupby("patient")["onset_h"].min().notna().sum())
    cols = ["level", "n_detected", "sensitivity", "sensitivity_lo", "sensitivity_hi", "median_delay_h", FA,
            "chance_sensitivity", "n_alerts"]
    lines = [
        f"## Declared detector under the fit policy, seed {seed} (validation/monitor_eval.py --evaluate)", "",
        f"{note} Cohort `simulate_cohort(n_patients={patients}, days={days:g}, seed={seed})`: {n_events} "
        f"deteriorating patients, {len(frame)} rows. Detector as declared (tuned on seed 7, not re-tuned): drift "
        f"deltas x {scale:g}, kinds {'+'.join(kinds)}, persistence {persist:g} h, level {level:g}, per-patient "
        f"de-duplication {DEDUP_H:g} h. Fit policy: {ev['policy']}. {_dt.date.today().isoformat()}, 2-core "
        f"shared machine (load average at the end {os.getloadavg()[0]:.1f}).", "",
        f"**Verdict for this seed: {verdict}.**", "",
        "Fits, every attempt (the evaluation uses each signal's last attempt):", "",
        FIT_HEAD, "|---|---|---|---:|---:|---:|---:|", *ev["fit_lines"], "",
        f"Fitting {ev['fit_s']:.0f} s wall (all attempts); online phase {ev['n_obs']} observations in "
        f"{ev['online_s'][scale]:.0f} s wall.", "",
        "Declared detector point vs every rule level (target: >= 30 % fewer false alarms at equal or better "
        "sensitivity and median delay; sensitivities with Wilson 95 % intervals; the primary point is NEWS2 "
        f">= {PRIMARY_RULE_LEVEL:g} with the red score, in both de-duplication forms):", "",
        "| baseline | level | rule sens | rule delay h | rule FA | twin sens | twin delay h | twin FA | "
        "reduction | target |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", *pre, "",
        "Detector operating curve (declared scale, kinds, persistence; all levels):", "", *_md(curve[cols]), "",
        "Rule operating curve (12-h de-duplication per alert type):", "", *_md(rule[cols]), "",
        "Rule with per-patient de-duplication:", "", *_md(rule_pp[cols]), "",
        "Matched comparison over the whole detector curve (optimistic: the level is chosen on this cohort; "
        "not the test):", "", *_md(matched_reduction(curve, rule)), "",
        f"Section wall time {time.perf_counter() - t_start:.0f} s (fits read from the cache where present).",
    ]
    return lines, {"seed": seed, "valid": valid, "primary": primary, "met": met}


# ---------------------------------------------------------------- changepoint detector (issue 8, MON4)
# Its tuning and evaluation live in monitor_cp_eval.py (--cp-tune / --cp-evaluate are dispatched there).
#: The changepoint detector declared in docs/monitoring-evaluation.md BEFORE the fresh seeds were scored.
#: Declared 2026-11-27 17:20 UTC (docs/monitoring-evaluation.md, "Declared before scoring the fresh seeds").
CP_DECLARED = ChangepointPolicy(level=0.1, window_h=48.0, min_h=1.0, bin_h=1.0, hazard=0.001, sigma=1.0,
                                p_affected=0.5, z_clip=4.0, u_clip=3.0, dedup_h=DEDUP_H, clear_fraction=0.5)
#: MON5's ramp-aware changepoint detector, chosen by ``monitor_cp_eval.cp5_tune`` on training seeds 2029, 2030,
#: 2031, 7, 11 and declared (docs/monitoring-evaluation.md, "Declared before scoring seeds 2032-2034", 2026-11-27)
#: BEFORE any detector or alert output of the evaluation seeds 2032, 2033, 2034 was computed.
CP5_DECLARED = ChangepointPolicy(level=0.05, window_h=48.0, min_h=1.0, bin_h=1.0, hazard=0.001, sigma=1.0,
                                 p_affected=0.5, z_clip=4.0, u_clip=3.0, dedup_h=DEDUP_H, clear_fraction=1.0,
                                 shape="ramp", slope_sigma=0.05)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--drift-scale", type=float, default=1.0, help="multiply the twin's drift deltas")
    parser.add_argument("--quick", action="store_true", help="8 patients, 6 days, small chains (smoke run)")
    parser.add_argument("--tune-seed", type=int, default=None,
                        help="choose drift scale and alert level on this cohort, then evaluate on --seed")
    parser.add_argument("--scales", default="1.0,0.8,0.6", help="candidate drift scales (with --tune-seed)")
    parser.add_argument("--detector", action="store_true",
                        help="tune the patient-level detector on --tune-seed, evaluate on --eval-seeds")
    parser.add_argument("--eval-seeds", default="2026,2027", help="evaluation seeds of --detector")
    parser.add_argument("--evaluate", default=None,
                        help="comma-separated seeds: evaluate the declared detector under the fit policy "
                             "(4 x 500 + 750, one refit at 4 x 1000 + 1500); one doc section per seed")
    parser.add_argument("--reevaluated", default="2026",
                        help="seeds of --evaluate that were seen before (said so in their sections)")
    parser.add_argument("--cache", type=Path, default=None, help="directory for fitted-and-scored cohorts")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=250)
    parser.add_argument("--draws", type=int, default=250)
    parser.add_argument("--fit-only", default=None,
                        help="comma-separated seeds: only simulate and fit under the fit policy (into --cache); "
                             "no scoring, no alerts")
    parser.add_argument("--fit-sampler", default=None,
                        help="with --fit-only: CHAINSxWARMUP+DRAWS, no refit (training seeds only)")
    parser.add_argument("--cp-tune", default=None,
                        help="comma-separated TRAINING seeds: tune the changepoint detector (fits from --cache, "
                             "sampler --fit-sampler); prints the grid and the choice")
    parser.add_argument("--cp-evaluate", default=None,
                        help="comma-separated seeds: the DECLARED changepoint detector (CP_DECLARED) under the fit "
                             "policy, per seed and pooled; one doc section")
    parser.add_argument("--cp-note", default="", help="sentence opening the --cp-evaluate section")
    parser.add_argument("--cp5-tune", default=None,
                        help="comma-separated TRAINING seeds (MON5): tune the ramp-aware changepoint detector")
    parser.add_argument("--cp5-evaluate", default=None,
                        help="comma-separated seeds (MON5): the declared CP5_DECLARED, pooled; a signal failing its "
                             "gate after the refit leaves both detectors; one doc section")
    args = parser.parse_args()
    if args.quick:
        args.patients, args.days = 8, 6.0
        sampler = SamplerConfig(chains=2, warmup=150, draws=150, seed=0, init="prior")
    else:
        sampler = SamplerConfig(chains=args.chains, warmup=args.warmup, draws=args.draws, seed=0, init="prior")
    policy = FitPolicy()
    if args.fit_sampler:
        ch, rest = args.fit_sampler.split("x")
        wu, dr = rest.split("+")
        policy = FitPolicy(first=SamplerConfig(chains=int(ch), warmup=int(wu), draws=int(dr), seed=0,
                                               init="prior"), retry=None)
    if args.cp_tune or args.cp_evaluate or args.cp5_tune or args.cp5_evaluate:
        from monitor_cp_eval import cp5_tune, cp_eval_lines, cp_tune  # the changepoint study (same folder)

        seeds = [int(x) for x in (args.cp_tune or args.cp_evaluate or args.cp5_tune or args.cp5_evaluate).split(",")]
        evs = {sd: score_cohort(args.patients, args.days, sd, policy.first, (1.0,), args.cache, policy)
               for sd in seeds}
        if args.cp_tune or args.cp5_tune:
            print("\n".join((cp_tune if args.cp_tune else cp5_tune)(evs)[2]), flush=True)
            return
        mon5 = bool(args.cp5_evaluate)
        lines = cp_eval_lines(evs, args, policy, declared=CP5_DECLARED if mon5 else CP_DECLARED, mon5=mon5)
        write_section(ROOT / "docs" / "monitoring-evaluation.md", lines, new_page=MONITOR_PAGE)
        return
    if args.fit_only:
        for seed in (int(x) for x in args.fit_only.split(",")):
            fitted = fit_cached(args.patients, args.days, seed, policy, args.cache)
            print(f"FITTED seed {seed}: valid {fitted['cf'].valid}, failed {fitted['cf'].failed}, "
                  f"{fitted['fit_s']:.0f} s", flush=True)
        return
    if args.evaluate:
        policy = FitPolicy() if not args.quick else default_policy(sampler)
        seen = {int(x) for x in args.reevaluated.split(",") if x}
        for seed in (int(x) for x in args.evaluate.split(",")):
            note = ("RE-EVALUATION under the fit policy: this seed was evaluated before (see the earlier sections; "
                    "for 2026 two of its fits had failed their gate); the detector is unchanged." if seed in seen
                    else "New evaluation seed, run once.")
            lines, summary = policy_eval_run(args.patients, args.days, seed, policy, args.cache, note)
            print("\n".join(lines), flush=True)
            print("SUMMARY", summary, flush=True)
            if not args.quick:
                write_section(ROOT / "docs" / "monitoring-evaluation.md", lines, new_page=MONITOR_PAGE)
        return
    if args.detector:
        lines = detector_run(args.patients, args.days, args.tune_seed if args.tune_seed is not None else 7,
                             tuple(int(x) for x in args.eval_seeds.split(",")), sampler,
                             tuple(float(x) for x in args.scales.split(",")), args.cache)
    elif args.tune_seed is not None:
        scales = tuple(float(x) for x in args.scales.split(","))
        lines = tuned_run(args.patients, args.days, args.tune_seed, args.seed, sampler, scales)
    else:
        lines = run(args.patients, args.days, args.seed, sampler, args.drift_scale)
    print("\n".join(lines))
    if not args.quick:
        write_section(ROOT / "docs" / "monitoring-evaluation.md", lines, new_page=MONITOR_PAGE)




if __name__ == "__main__":
    main()
