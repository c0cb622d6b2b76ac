"""The monitoring twin on real recordings: CGM glucose (8 people) and ambulatory ECG heart rate (NSRDB).

Usage: ``python validation/monitor_recordings.py [--no-write]`` (writes ``docs/monitoring-recordings.md``).

Issue 8 asks to run the monitor on real wearable or vital-sign recordings and report alert rates and any
artefact it flags. There is no ground truth of deterioration in these recordings, so the script reports
what a clinician would see and how it relates to what the readings themselves did:

* **CGM** (Dexcom G4 every 5 min; ``cgm_iglu_hall2018_glucose`` bundled, 3 adults, and
  ``../shared/data/cgm_iglu_5subject.csv``, 5 adults with type 2 diabetes): the glucose model of each
  cohort is fitted on each person's first ``FIT_H`` hours (at most ``FIT_ROWS`` evenly spaced readings per
  person for the fit) under the monitoring fit policy, then the rest is replayed in 6-h batches. Alerts:
  P(glucose < 70 mg/dL or > 250 mg/dL within 1 h) >= 0.8 (the consensus level-1 hypoglycaemia and level-2
  hyperglycaemia bounds; Battelino et al. 2019, Diabetes Care 42:1593), cleared below 0.4, de-duplicated
  within 2 h. The comparison is the rule that alarms on a *reading* beyond the same bounds (what a CGM's own
  threshold alarm does), with the same de-duplication: alert rates per person-day for both, and for each
  rule alarm whether the twin warned before it (within 2 h) and by how long. The artefact screen lists
  readings with a predictive tail probability < 0.001 (the twin's "impossible given the recent past").
* **NSRDB** (two Holter ECG series, 60 and 5 min; heart rate per 10-s bin): fitted on the first 30 min (all
  of the 5-min series), then the rest of the 60-min series replayed; the surprise screen (tail probability
  < 0.01) is compared with the bins that hold an ectopic or missed beat (``rr_artefacts``: a beat-to-beat
  change > 20 %).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from monitor_eval import _thin  # noqa: E402  (the evaluation's thinning of the fit rows, same rule)
from report import machine_line  # noqa: E402

from bayestwin.data.datasets import dataset_path  # noqa: E402
from bayestwin.exceptions import ConvergenceWarning  # noqa: E402
from bayestwin.monitor.alerts import AlertPolicy, raised_indices  # noqa: E402
from bayestwin.monitor.fit_policy import FitPolicy, fit_cohort  # noqa: E402
from bayestwin.monitor.recordings import heart_rate_from_rr, load_nsrdb_rr, rr_artefacts  # noqa: E402
from bayestwin.monitor.scoring import Crossing, Drift  # noqa: E402
from bayestwin.monitor.streams import flag_report, read_streams, usable  # noqa: E402
from bayestwin.monitor.twin import MonitorTwin  # noqa: E402

FIT_H = 24.0
FIT_ROWS = 96
BATCH_H = 6.0
LOW, HIGH, HORIZON_H, DEDUP_H, LEAD_WINDOW_H = 70.0, 250.0, 1.0, 2.0, 2.0
SHARED = ROOT.parent / "shared" / "data" / "cgm_iglu_5subject.csv"
NSRDB_FIT_H = 0.5
PAGE = ROOT / "docs" / "monitoring-recordings.md"
ECG_HEAD = "## Ambulatory ECG heart rate"
READING_HEAD = "## Reading"


def _cgm(path: Path, name: str) -> pd.DataFrame:
    raw = pd.read_csv(path)
    table = pd.DataFrame({"patient": raw["subject"].astype(str), "timestamp": raw["time"], "signal": "glucose",
                          "value": raw["glucose_mg_dl"], "unit": "mg/dL", "device": "cgm"})
    return read_streams(table, name=name)  # local clock read as UTC: the daily rhythm is by hour of the day


def _fit_and_replay(frame: pd.DataFrame, signal: str, fit_h: float, batch_h: float, crossings: tuple,
                    drifts: tuple, policy: AlertPolicy) -> tuple[MonitorTwin, object, pd.DataFrame, float]:
    ok = usable(frame)
    history = ok[ok["time_h"] < fit_h]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported in the table
        fits = fit_cohort(_thin(history, FIT_ROWS), [signal], FitPolicy())
    twin = MonitorTwin((signal,), crossings=crossings, drifts=drifts, policy=policy)
    twin.fit(history, fits=fits.fits)
    rest = ok[ok["time_h"] >= fit_h]
    for lo in np.arange(fit_h, float(rest["time_h"].max()) + batch_h, batch_h):
        batch = rest[(rest["time_h"] >= lo) & (rest["time_h"] < lo + batch_h)]
        if len(batch):
            twin.observe(batch)
    return twin, fits, rest, time.perf_counter() - started


def _rule_alerts(rest: pd.DataFrame) -> pd.DataFrame:
    """Alarms on a reading beyond LOW or HIGH (raised on entry, cleared on return, de-duplicated)."""
    out = []
    for patient, g in rest.sort_values("time_h").groupby("patient"):
        t = g["time_h"].to_numpy(float)
        for kind, beyond in (("low", g["value"] < LOW), ("high", g["value"] > HIGH)):
            for k in raised_indices(t, beyond.to_numpy(float), raise_level=0.5, clear_level=0.5, dedup_h=DEDUP_H):
                out.append((patient, kind, t[k]))
    return pd.DataFrame(out, columns=["patient", "kind", "time_h"])


def _fits_lines(fits: object) -> list[str]:
    rows = ["| attempt | sampler | gate | max R-hat | min ESS | divergences | wall s |",
            "|---|---|---|---:|---:|---:|---:|"]
    for a in fits.attempts:
        s = a.sampler
        rows.append(f"| {a.attempt} | {s.chains} x {s.warmup} + {s.draws} | {'passed' if a.ok else '**FAILED**'} | "
                    f"{a.max_rhat:.3f} | {a.min_ess:.0f} | {a.divergences} | {a.wall_time_s:.0f} |")
    return rows


def cgm_section(path: Path, name: str) -> list[str]:
    frame = _cgm(path, name)
    crossings = (Crossing("glucose", LOW, above=False, horizon_h=HORIZON_H),
                 Crossing("glucose", HIGH, above=True, horizon_h=HORIZON_H))
    twin, fits, rest, wall = _fit_and_replay(frame, "glucose", FIT_H, BATCH_H, crossings, (),
                                             AlertPolicy(0.8, 0.4, DEDUP_H))
    alerts = twin.alerts()
    alerts = alerts[alerts["time_h"] >= FIT_H]
    alerts = alerts.assign(bound=np.where(alerts["threshold"] == LOW, "low", "high"))
    scores = twin.scores()
    scores = scores[scores["time_h"] >= FIT_H]
    days = rest.groupby("patient")["time_h"].agg(lambda t: t.max() - t.min()).sum() / 24.0
    rule = _rule_alerts(rest)
    leads, warned = [], 0
    for r in rule.itertuples():
        prior = alerts[(alerts["patient"] == r.patient) & (alerts["bound"] == r.kind) &
                       (alerts["time_h"] <= r.time_h) & (alerts["time_h"] >= r.time_h - LEAD_WINDOW_H)]
        if len(prior):
            warned += 1
            leads.append(60.0 * (r.time_h - prior["time_h"].min()))
    followed = 0
    for a in alerts.itertuples():
        g = rule[(rule["patient"] == a.patient) & (rule["kind"] == a.bound)]
        readings = rest[(rest["patient"] == a.patient) & (rest["time_h"] >= a.time_h) &
                        (rest["time_h"] <= a.time_h + HORIZON_H + 1.0)]
        beyond = (readings["value"] < LOW) if a.bound == "low" else (readings["value"] > HIGH)
        followed += bool(beyond.any() or ((g["time_h"] >= a.time_h) & (g["time_h"] <= a.time_h + 2.0)).any())
    surprising = scores.drop_duplicates(["patient", "time_h"])
    surprising = surprising[surprising["tail_prob"] < 1e-3]
    flags = flag_report(frame)
    lines = [f"### {name}: {frame['patient'].nunique()} people, {len(frame)} readings, {days:.1f} person-days "
             "replayed", "",
             f"Fit on the first {FIT_H:g} h (at most {FIT_ROWS} readings per person), "
             f"{FitPolicy().describe()}; fit + replay wall {wall:.0f} s. Fits:", "", *_fits_lines(fits), "",
             f"Flagged rows (kept, not modelled): {len(flags)} "
             f"({', '.join(f'{k} {v}' for k, v in flags['status'].value_counts().items()) or 'none'}).", "",
             "| detector | alerts | per person-day |", "|---|---:|---:|",
             f"| twin: P(< {LOW:g} or > {HIGH:g} mg/dL within {HORIZON_H:g} h) >= 0.8 | {len(alerts)} | "
             f"{len(alerts) / days:.2f} |",
             f"| rule: a reading < {LOW:g} or > {HIGH:g} mg/dL | {len(rule)} | {len(rule) / days:.2f} |", "",
             f"- Rule alarms the twin warned of within the {LEAD_WINDOW_H:g} h before: {warned} of {len(rule)}"
             + (f"; median lead {np.median(leads):.0f} min (range {min(leads):.0f}-{max(leads):.0f})" if leads
                else "") + ".",
             f"- Twin alerts followed by a reading beyond the bound within {HORIZON_H + 1:g} h: {followed} of "
             f"{len(alerts)}.",
             f"- Artefact screen: {len(surprising)} readings with predictive tail probability < 0.001 "
             f"({len(surprising) / days:.2f} per person-day)"
             + (": " + "; ".join(f"{r.patient} t={r.time_h:.1f} h {r.value:.0f} mg/dL (90 % band "
                                 f"{r.pred_lower:.0f}-{r.pred_upper:.0f})" for r in surprising.head(5).itertuples())
                if len(surprising) else "") + ".", ""]
    return lines


def nsrdb_section() -> list[str]:
    rr = load_nsrdb_rr()
    hr = heart_rate_from_rr(rr, bin_s=10.0)
    art = rr_artefacts(rr)
    half = NSRDB_FIT_H  # the 5-min series lies wholly in the fit window; the 60-min one is replayed after it
    twin, fits, _, wall = _fit_and_replay(hr, "heart_rate", half, 1.0 / 60.0,
                                             (Crossing("heart_rate", 130.0, above=True),),
                                             (Drift("heart_rate", 15.0, smooth_h=4.0),), AlertPolicy(0.8, 0.4, 12.0))
    scores = twin.scores().drop_duplicates(["patient", "time_h"])
    scores = scores[scores["time_h"] >= half]
    art_bins = {(s, int(t // 10.0)) for s, t in zip(art["subject"], art["time_s"], strict=True)}
    bin_of = (scores["time_h"] * 3600.0 // 10.0).astype(int)
    has_art = np.array([(p, b) in art_bins for p, b in zip(scores["patient"], bin_of, strict=True)])
    surprising = (scores["tail_prob"] < 0.01).to_numpy()
    alerts = twin.alerts()
    n_s, n_a = int(surprising.sum()), int(has_art.sum())
    both = int((surprising & has_art).sum())
    lines = ["### NSRDB ambulatory ECG: heart rate per 10-s bin", "",
             f"{len(hr)} bins ({', '.join(f'{p} {n}' for p, n in hr.groupby('patient').size().items())}); fitted "
             f"on the first {60 * half:.1f} min of each series, {len(scores)} bins replayed; fit + replay wall "
             f"{wall:.0f} s. Fits:", "", *_fits_lines(fits), "",
             f"- Alerts (HR > 130 /min within 6 h, HR drift +15 /min): {len(alerts)}.",
             f"- Surprise screen (tail probability < 0.01): {n_s} of {len(scores)} bins; bins holding an ectopic or "
             f"missed beat (beat-to-beat change > 20 %): {n_a}; both: {both}"
             + (f" -- {both / n_s:.0%} of the surprising bins hold such a beat, against {n_a / len(scores):.0%} of "
                "all bins" if n_s else "") + ".", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--only", choices=("cgm", "nsrdb"), help="rerun one part; the page keeps the other")
    args = parser.parse_args()
    started = time.perf_counter()
    old = PAGE.read_text() if PAGE.exists() else ""
    kept_reading = old[old.index(READING_HEAD):] if READING_HEAD in old else ""  # written by hand: kept
    old = old[:old.index(READING_HEAD)] if READING_HEAD in old else old
    lines = ["# Monitoring on real recordings", "",
             "Written by `python validation/monitor_recordings.py` (the script's docstring says what and why); "
             f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; "
             + machine_line(("jax", "numpyro"), "shared with other jobs") + ".", "",
             "These recordings have no labelled deteriorations: the figures are alert rates and agreement with "
             "what the readings themselves did, not sensitivity. CGM data: the source of the data is the T1D "
             "Exchange (per iglu's data-use notice; iglu attributes them to Hall et al. 2018), but the analyses, "
             "content and conclusions presented herein are solely the responsibility of the authors and have not "
             "been reviewed or approved by the T1D Exchange.", "",
             "## Continuous glucose monitoring", ""]
    if args.only == "nsrdb" and ECG_HEAD in old:
        lines = [*old[:old.index(ECG_HEAD)].rstrip("\n").splitlines(), ""]
    else:
        lines += cgm_section(dataset_path("cgm_hall2018"), "hall2018")
        if SHARED.exists():
            lines += cgm_section(SHARED, "iglu_5subject")
        else:
            lines += [f"(`{SHARED}` not found: the 5-subject CGM set was not run.)", ""]
    if args.only == "cgm" and ECG_HEAD in old:
        lines += [*old[old.index(ECG_HEAD):].rstrip("\n").splitlines(), ""]
    else:
        lines += [ECG_HEAD, "", *nsrdb_section(), f"Wall time of this run {time.perf_counter() - started:.0f} s.", ""]
    text = "\n".join(lines) + ("\n" + kept_reading if kept_reading else "")
    print(text)
    if not args.no_write:
        PAGE.write_text(text)


if __name__ == "__main__":
    main()
