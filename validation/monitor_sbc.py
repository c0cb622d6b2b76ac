"""SBC of the monitoring model (issue 8): static-parameter posterior and Kalman predictive, with broken variants.

Runs ``bayestwin.monitor.sbc.run_monitor_sbc`` for the default structure (per-patient OU and circadian
terms; a dense design) and the pooled sparse-signal structure (population OU, cohort circadian pair; a
sparse design), each with its broken variants fitted in the same compiled program, and writes per structure
a JSON fragment ``docs/validation/fragments/monitor_sbc_<key>.json`` (verdicts, p-values, PIT coverages,
wall time, settings) and an ECDF figure ``docs/validation/monitor_sbc_<key>.png``; then it assembles the
section ``docs/validation/fragments/monitor_sbc.md`` from the latest fragment of each structure.

Usage: ``python validation/monitor_sbc.py [--structures default,pooled] [--replications 200]
[--broken-replications 100] [--warmup 250 --draws 250 --thin 5]``; ``--assemble`` only rebuilds the section.
Exit status 1 when a good run fails or a broken variant passes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "validation"))
FIGURES = ROOT / "docs" / "validation"
FRAGMENTS = FIGURES / "fragments"

#: structure key -> (Structure keyword arguments, design keyword arguments, broken variants, description)
STUDIES = {
    "default": ({}, {"n_patients": 6, "n_min": 12, "n_max": 24}, ("noise_prior", "transition"),
                "per-patient OU and circadian terms (the dense-signal structure)"),
    "pooled": ({"ou": "population", "circadian": "population"}, {"n_patients": 10, "n_min": 4, "n_max": 8},
               ("noise_prior", "transition"), "population OU (total SD and fraction), cohort circadian pair (the "
               "sparse-signal structure)"),
}
BROKEN_TEXT = {"noise_prior": "fit with the device-noise prior scale x 1/3 (pooled: the noise_ratio prior)",
               "transition": "simulated without the (1 - phi^2) factor of the OU transition variance"}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_study(key: str, reps: int, broken_reps: int, sampler: dict, design_override: dict) -> dict:
    """One structure's SBC and broken variants; returns its fragment (figure saved)."""
    from sbc_figures import sbc_pair_figure

    from bayestwin.monitor.sbc import monitor_design, run_monitor_sbc
    from bayestwin.monitor.structure import Structure

    s_kw, d_kw, broken, what = STUDIES[key]
    structure = Structure(**s_kw)
    design = monitor_design(**(d_kw | design_override), seed=0)
    load0 = os.getloadavg()[0]
    res = run_monitor_sbc(structure, reps, design=design, broken=broken, broken_reps=broken_reps, **sampler)
    good = res.sbc
    t = good.tests()
    rep = good.replications
    cov = res.filter.coverage()
    truth = res.filter.truth_test()
    fragment = {
        "key": key, "structure": repr(structure), "what": what, "date": _now(), "ok": bool(res.ok),
        "good_ok": bool(good.ok), "bonferroni": good.alpha / len(t), "n_draws": good.n_draws,
        "tests": {q: {"chi2": r.chi2, "p_value": r.p_value, "passed": bool(r.passed)} for q, r in t.iterrows()},
        "broken": {b: {"ok": bool(r.ok), "replications": len(r.ranks), "min_p": float(r.tests()["p_value"].min()),
                       "worst": str(r.tests()["p_value"].idxmin()),
                       "p_values": {q: float(v) for q, v in r.tests()["p_value"].items()}}
                   for b, r in res.broken.items()},
        "sampler_health": {"divergent_reps": int((rep["divergences"] > 0).sum()),
                           "median_max_rhat": float(rep["max_rhat"].median()),
                           "max_max_rhat": float(rep["max_rhat"].max()),
                           "median_steps": float(rep["mean_steps"].median())},
        "truth_pit": truth, "coverage": cov.reset_index().to_dict(orient="records"),
        "settings": res.settings, "wall_s": res.settings["wall_s"], "load_start": load0,
        "load_end": os.getloadavg()[0],
    }
    if res.broken:
        first = next(iter(res.broken))
        sbc_pair_figure(good, res.broken[first], (f"monitor SBC, {key}", f"{key}: {first} (must fail)"),
                        FIGURES / f"monitor_sbc_{key}.png")
    return fragment


def section(fragments: dict[str, dict]) -> str:
    """The markdown section assembled from the latest fragment of each structure."""
    lines = ["## Monitoring model SBC (issue 8)", "",
             "`validation/monitor_sbc.py`; method and discussion in [Monitoring SBC](monitoring-sbc.md). Ranks of "
             "the true static parameters among the thinned posterior draws, chi-square test per quantity, "
             "Bonferroni at family-wise alpha = 0.01; broken variants must fail; PIT coverage of the Kalman "
             "one-step-ahead predictive with the true parameters and with the posterior (held-out readings).", "",
             "| structure | reps | quantities | smallest p (quantity) | Bonferroni threshold | result | broken "
             "variants (smallest p) | truth PIT p | wall |", "|---|---|---|---|---|---|---|---|---|"]
    for key, f in fragments.items():
        p = {q: v["p_value"] for q, v in f["tests"].items()}
        worst = min(p, key=p.get)
        broken = "; ".join(f"{b}: {'failed, as it must' if not r['ok'] else '**PASSED: no power**'} "
                           f"({r['min_p']:.2g}, {r['worst']}; {r['replications']} reps)"
                           for b, r in f["broken"].items())
        lines.append(f"| {key} | {f['settings']['replications']} | {len(p)} | {p[worst]:.3g} ({worst}) | "
                     f"{f['bonferroni']:.2g} | {'passed' if f['good_ok'] else '**FAILED**'} | {broken} | "
                     f"{f['truth_pit']['p_value']:.3g} | {f['wall_s']:.0f} s ({f['date']}, load "
                     f"{f['load_start']:.1f}) |")
    for key, f in fragments.items():
        s, h = f["settings"], f["sampler_health"]
        lines += ["", f"### {key}: {f['what']}", "",
                  f"Design: {s['patients']} patients, readings {s['readings']} (training window "
                  f"{s['training_readings']}),"
                  f" {s['devices']} devices; NUTS {s['chains']} chains x ({s['warmup']} + {s['draws']}), thinned by "
                  f"{s['thin']}: ranks among {f['n_draws']} draws; seed {s['seed']}. Sampler: "
                  f"{h['divergent_reps']} replications with divergences, median worst R-hat "
                  f"{h['median_max_rhat']:.3f}, median leapfrog steps {h['median_steps']:.0f}.",
                  "", f"![monitor SBC ECDF difference, {key}](validation/monitor_sbc_{key}.png)", "",
                  "| quantity | chi-square | p-value | passed | " + " | ".join(f"{b}: p" for b in f["broken"]) + " |",
                  "|---|---|---|---|" + "---|" * len(f["broken"])]
        for q, v in f["tests"].items():
            lines.append(f"| {q} | {v['chi2']:.1f} | {v['p_value']:.3g} | {'yes' if v['passed'] else '**no**'} | "
                         + " | ".join(f"{r['p_values'][q]:.2g}" for r in f["broken"].values()) + " |")
        lines += ["", "Broken variants: " + "; ".join(f"`{b}`: {BROKEN_TEXT[b]}" for b in f["broken"]) + ".",
                  "", "PIT coverage of central intervals (SE: binomial for the truth, clustered by replication "
                  "for the posterior):", "", "| level | true parameters | posterior, first held-out | "
                  "posterior, later held-out |", "|---|---|---|---|"]
        for c in f["coverage"]:
            lines.append(f"| {c['level']:.2f} | {c['truth']:.3f} +- {c['se_truth']:.3f} | {c['first']:.3f} +- "
                         f"{c['se_first']:.3f} | {c['held_out']:.3f} +- {c['se_held_out']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", default="default,pooled")
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--broken-replications", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=250)
    parser.add_argument("--draws", type=int, default=250)
    parser.add_argument("--thin", type=int, default=5)
    parser.add_argument("--max-readings", type=int, help="override the design's n_max (and n_min <= it)")
    parser.add_argument("--assemble", action="store_true", help="only rebuild the section from the fragments")
    a = parser.parse_args(argv)
    failures = 0
    if not a.assemble:
        import bayestwin  # noqa: F401  (4 XLA host devices before JAX starts)

        sampler = {"warmup": a.warmup, "draws": a.draws, "thin": a.thin, "batch": 64}
        for key in [k.strip() for k in a.structures.split(",") if k.strip()]:
            override = {}
            if a.max_readings:
                override = {"n_max": a.max_readings, "n_min": min(STUDIES[key][1]["n_min"], a.max_readings)}
            t0 = time.perf_counter()
            fragment = run_study(key, a.replications, a.broken_replications, sampler, override)
            FRAGMENTS.mkdir(parents=True, exist_ok=True)
            (FRAGMENTS / f"monitor_sbc_{key}.json").write_text(json.dumps(fragment, indent=1, default=float) + "\n")
            print(f"{key}: {'ok' if fragment['ok'] else 'NOT OK'} in {time.perf_counter() - t0:.0f} s", flush=True)
            failures += not fragment["ok"]
    fragments = {k: json.loads((FRAGMENTS / f"monitor_sbc_{k}.json").read_text()) for k in STUDIES
                 if (FRAGMENTS / f"monitor_sbc_{k}.json").exists()}
    (FRAGMENTS / "monitor_sbc.md").write_text(section(fragments))
    print(section(fragments))
    return int(failures > 0)


if __name__ == "__main__":
    raise SystemExit(main())
