"""Warm-up adaptation (issue 9): NumPyro's Stan-style windows vs the nutpie-style gradient-based diagonal mass.

Same run, same machine, same settings for both (``SamplerConfig(adaptation="stan" | "gradient")``, 4 chains x
1,000 warm-up + 1,000 draws, target acceptance 0.8, starts at the jittered prior medians), on:

* the peer benchmark's oral one-compartment population model (``peerlib``) at N = 12 and N = 200 patients,
  with nutpie (its own gradient-based adaptation, PyMC model, numba) as a reference row;
* the theophylline population spec (``model_specs/theophylline.py``) on ``theo_sd`` (12 subjects);
* eight schools *centred* (``model_specs/eight_schools.py`` with ``centered=True``): Neal's funnel in
  the between-school SD, a case where any adaptation struggles.

Reported per fit: minimum bulk ESS and maximum rank-normalised R-hat over the population quantities, ESS
per second of sampling (warm-up + draws, compilation excluded: load-dependent on this shared machine), ESS
per 1,000 gradient evaluations (warm-up + draws, all chains: load-independent), leapfrog steps per draw and
per warm-up iteration, the adapted step size (mean over chains), divergences and the fit's gate. Warm-up
and sampling run as two compiled programs here so that the warm-up's leapfrog steps can be counted
(``peerlib.engines._CountingMCMC``).

Usage: ``python benchmarks/adaptation.py [--cases oral12,oral200,theo,schools] [--no-nutpie] [--quick]
[--no-write] [--seed 1]``; writes its section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import importlib.metadata as md
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peerlib import installed  # noqa: E402
from peerlib.engines import Run, Settings, fit_bayestwin, run_bayestwin, run_nutpie  # noqa: E402
from peerlib.models import POPULATION, simulate  # noqa: E402

import bayestwin  # noqa: E402,F401  (sets 4 XLA host devices before JAX starts: chains in parallel)

TITLE = "## Warm-up adaptation: Stan-style windows vs gradient-based diagonal mass (issue 9)"
ADAPTATIONS = ("stan", "gradient")


def _sampler(s: Settings, adaptation: str):
    from bayestwin.inference import SamplerConfig

    return SamplerConfig(chains=s.chains, warmup=s.warmup, draws=s.draws, seed=s.seed, target_accept=s.target_accept,
                         init="prior", adaptation=adaptation)


def theo(s: Settings, adaptation: str) -> Run:
    from model_specs.theophylline import spec

    from bayestwin.data import load_dataset

    return fit_bayestwin(spec(), load_dataset("theo_sd"), _sampler(s, adaptation), None, f"bayestwin ({adaptation})",
                         count_warmup=True)


def schools(s: Settings, adaptation: str) -> Run:
    from model_specs.eight_schools import events, spec

    data = json.loads((ROOT / "tests" / "data" / "posteriordb_eight_schools" / "data.json").read_text())
    centred = dataclasses.replace(spec(), centered=True, name="eight_schools_centred")
    return fit_bayestwin(centred, events(data), _sampler(s, adaptation), None, f"bayestwin ({adaptation})",
                         count_warmup=True)


def oral(n: int):
    data = simulate(n)

    def fit(s: Settings, adaptation: str) -> Run:
        run = run_bayestwin(data, s, adaptation=adaptation, count_warmup=True)
        return dataclasses.replace(run, engine=f"bayestwin ({adaptation})")

    return fit, data


def summarise(run: Run) -> dict:
    import arviz as az

    ds = az.from_dict(posterior=run.draws).posterior
    ess, rhat = az.ess(ds, method="bulk"), az.rhat(ds)
    names = list(run.draws)
    worst = min(names, key=lambda k: float(ess[k]))
    ess_min = float(ess[worst])
    chains, draws = run.n_steps.shape
    sampling_steps = float(run.n_steps.sum())
    warm = run.warmup_steps
    grads = sampling_steps + (warm if warm is not None else sampling_steps)
    return {"engine": run.engine, "ess": ess_min, "worst": worst, "rhat": max(float(rhat[k]) for k in names),
            "sampling_s": run.sampling_s, "ess_s": ess_min / run.sampling_s, "grads_k": grads / 1e3,
            "ess_per_k": ess_min / (grads / 1e3), "steps": sampling_steps / (chains * draws),
            "warm_steps": None if warm is None else warm / (chains * draws), "step_size": run.step_size,
            "div": run.diverging, "notes": "; ".join(run.notes)}


def _fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def table(rows: list[dict]) -> list[str]:
    out = ["| engine / adaptation | min bulk ESS (param) | max R-hat | sampling s | ESS/s | gradient evals (k) | "
           "**ESS per 1k gradients** | leapfrog/draw | leapfrog/warm-up iter | step size | divergences | notes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['engine']} | {r['ess']:.0f} ({r['worst']}) | {r['rhat']:.3f} | {r['sampling_s']:.1f} | "
                   f"{r['ess_s']:.2f} | {r['grads_k']:.0f}{'' if r['warm_steps'] is not None else '†'} | "
                   f"**{r['ess_per_k']:.2f}** | {r['steps']:.1f} | {_fmt(r['warm_steps'], '.1f')} | "
                   f"{_fmt(r['step_size'], '.3f')} | {r['div']} | {r['notes']} |")
    return [*out, ""]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="oral12,oral200,theo,schools")
    parser.add_argument("--no-nutpie", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2 chains x 200 + 200, nothing written")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--seed", type=int, default=Settings.seed, help="sampler seed (the data stay the same)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    s = Settings(chains=2, warmup=200, draws=200) if args.quick else Settings()
    s = dataclasses.replace(s, seed=args.seed)
    load0 = os.getloadavg()[0]
    cases = {"oral12": "oral one-compartment, N = 12 (peer data)", "oral200": "oral one-compartment, N = 200 "
             "(peer data)", "theo": "theophylline population spec, theo_sd (12 subjects)",
             "schools": "eight schools, centred (funnel), posteriordb data"}
    sections: dict[str, list[dict]] = {}
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        if case not in cases:
            parser.error(f"unknown case {case!r}; choose from {sorted(cases)}")
        data = None
        if case.startswith("oral"):
            fit, data = oral(int(case[4:]))
        else:
            fit = {"theo": theo, "schools": schools}[case]
        rows = []
        for adaptation in ADAPTATIONS:
            started = time.perf_counter()
            row = summarise(fit(s, adaptation))
            rows.append(row)
            print(f"{case} {adaptation}: {row} ({time.perf_counter() - started:.0f} s)", flush=True)
        if data is not None and not args.no_nutpie:
            try:
                rows.append(summarise(run_nutpie(data, s)))
                print(f"{case} nutpie: {rows[-1]}", flush=True)
            except ImportError as exc:
                print(f"{case} nutpie: skipped ({exc})", flush=True)
        sections[cases[case]] = rows
    versions = ", ".join(f"{p} {md.version(p)}" for p in ("jax", "numpyro", "arviz", "nutpie") if installed(p))
    lines = [TITLE, "",
             f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} cores, CPU "
             f"only; Python {platform.python_version()}; {versions}; shared machine, load average {load0:.1f} at "
             f"the start, {os.getloadavg()[0]:.1f} at the end (ESS/s carries that noise; ESS per 1,000 gradient "
             "evaluations does not). `python benchmarks/adaptation.py`.", "",
             f"Every bayestwin row: `fit_population` with `SamplerConfig(chains={s.chains}, warmup={s.warmup}, "
             f"draws={s.draws}, seed={s.seed}, target_accept={s.target_accept}, init=\"prior\", adaptation=...)`; "
             "\"stan\" is NumPyro's windowed diagonal adaptation (the default), \"gradient\" the nutpie-style "
             "diagonal mass from draws and gradients (`bayestwin.inference.adaptation`). ESS: ArviZ bulk, minimum "
             f"over the population quantities ({', '.join(POPULATION)} for the oral model); R-hat: maximum. "
             "Gradient evaluations: leapfrog steps of warm-up and draws, all chains († warm-up not recorded: "
             "taken equal to the draws'). nutpie: its own sampler and adaptation on the PyMC model (numba).", ""]
    for title, rows in sections.items():
        lines += [f"**{title}**", "", *table(rows)]
        stan, grad = rows[0], rows[1]
        lines += [f"gradient ÷ stan: ESS per 1k gradients **{grad['ess_per_k'] / stan['ess_per_k']:.2f}x**, min ESS "
                  f"{grad['ess'] / stan['ess']:.2f}x, leapfrog steps per draw {grad['steps'] / stan['steps']:.2f}x, "
                  f"ESS/s {grad['ess_s'] / stan['ess_s']:.2f}x"
                  + (f"; nutpie ÷ gradient: ESS per 1k gradients {rows[2]['ess_per_k'] / grad['ess_per_k']:.2f}x"
                     if len(rows) > 2 else "") + ".", ""]
    print("\n".join(lines))
    if not (args.quick or args.no_write):
        from update_vs_refit import write_section

        write_section(ROOT / "docs" / "benchmarks.md", lines)


if __name__ == "__main__":
    main()
