"""Peer benchmark (issue 9): the same hierarchical oral PK model on bayestwin, NumPyro, PyMC, nutpie and Stan.

Model, priors, simulated data (fixed seed) and starting rule: ``benchmarks/peerlib/models.py``; one runner per
engine: ``benchmarks/peerlib/engines.py``. Every engine: 4 chains x 1,000 warm-up + 1,000 draws, target
acceptance 0.8, starts at the jittered prior medians with every random effect at 0. The same ArviZ bulk ESS
(minimum over the seven population parameters) and rank-normalised R-hat (maximum) for all; ESS/s of sampling
time (warm-up + draws, no compilation) and of wall time (compilation included). Each run's mode is checked
(ka > ke = CL / V in every chain's median: the main mode, not the flip-flop one).

Then a profile at N = 200 (``peerlib/profile.py``): cost of one log density + gradient per engine, leapfrog
steps per draw, step sizes, and one alternative engine: nutpie's sampler on bayestwin's JAX density
(``nutpie_bayestwin``). Each writes its section of ``docs/benchmarks.md``.

Usage: ``python benchmarks/peers.py [--sizes 12,200] [--engines bayestwin_tree,bayestwin,numpyro,pymc,nutpie,stan]
[--profile 200]
[--repeats R] [--quick] [--no-write]``. ``--repeats R``: every engine R times at each size with sampler seeds
1..R on the same data, engines interleaved within each round (load drift spreads over all of them); the main
table shows seed 1 and a second table the median, range and ratio of medians of ESS/s (one N = 12 run samples
for about a second, so one seed's ratio carries a lot of chance). ``--quick``: N = 12 only, 2 chains x 200 + 200,
no profile, nothing written;
``--sizes ""`` with ``--profile 200``: the profile alone (it then fits bayestwin and nutpie itself). Default
engines: ``bayestwin_tree`` (bayestwin's fastest configuration, ``SamplerConfig(adaptation="gradient",
trajectory="stan")``: the gradient-based warm-up and bayestwin's own NUTS tree; first, so the main table's ratio
column is against it), ``bayestwin`` (the default ``SamplerConfig()``), and the peers. Extra engines:
``bayestwin_gradient`` (``SamplerConfig(adaptation="gradient")`` with NumPyro's tree), ``bayestwin_dense``,
``nutpie_bayestwin``; ``benchmarks/adaptation.py`` compares the two adaptations in detail.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import importlib.metadata as md
import os
import platform
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peerlib import installed  # noqa: E402
from peerlib.engines import ENGINES, Run, Settings  # noqa: E402
from peerlib.models import POPULATION, simulate  # noqa: E402
from peerlib.profile import gradient_costs, run_nutpie_bayestwin  # noqa: E402

import bayestwin  # noqa: E402,F401  (sets 4 XLA host devices before JAX starts: chains in parallel)

TITLE = "## Peers: bayestwin vs NumPyro, PyMC, nutpie and Stan on one population model (issue 9)"
PROFILE_TITLE = "## Where the time goes: bayestwin vs nutpie at N = 200 (issue 9)"
RUNNERS = {**ENGINES, "nutpie_bayestwin": run_nutpie_bayestwin,
           "bayestwin_dense": functools.partial(ENGINES["bayestwin"], dense=True),
           "bayestwin_gradient": functools.partial(ENGINES["bayestwin"], adaptation="gradient"),
           "bayestwin_tree": functools.partial(ENGINES["bayestwin"], adaptation="gradient", trajectory="stan")}
DEFAULT_ENGINES = ("bayestwin_tree", *ENGINES)
VERSIONS = ("jax", "numpyro", "arviz", "pymc", "nutpie", "pystan", "httpstan")


def summarise(run: Run) -> dict:
    """ESS (bulk, min), R-hat (max), ESS/s, mode check and sampler statistics of one run."""
    import arviz as az

    ds = az.from_dict(posterior=run.draws).posterior
    ess = az.ess(ds, method="bulk")
    rhat = az.rhat(ds)
    ess_min = min(float(ess[k]) for k in POPULATION)
    worst = min(POPULATION, key=lambda k: float(ess[k]))
    ke = np.median(run.draws["tv_cl"] / run.draws["tv_v"], axis=1)
    ka = np.median(run.draws["tv_ka"], axis=1)
    steps = run.n_steps
    total = float(steps.sum()) + (run.warmup_steps if run.warmup_steps is not None else float(steps.sum()))
    return {"engine": run.engine, "ess": ess_min, "worst": worst, "rhat": max(float(rhat[k]) for k in POPULATION),
            "ess_s": ess_min / run.sampling_s, "ess_wall": ess_min / run.wall_s, "sampling_s": run.sampling_s,
            "wall_s": run.wall_s, "compile_s": run.compile_s, "main_mode": bool(np.all(ka > ke)),
            "ka_ke": f"{np.min(ka / ke):.1f}", "steps": float(steps.mean()), "depth": float(np.log2(steps + 1).mean()),
            "step_size": run.step_size, "div": run.diverging, "grad_us": 1e6 * run.sampling_s / total,
            "warmup_recorded": run.warmup_steps is not None, "notes": "; ".join(run.notes),
            "tv": {k: float(np.median(run.draws[k])) for k in ("tv_ka", "tv_cl", "tv_v")}}


def table(rows: list[dict], n: int) -> list[str]:
    ours = rows[0] if rows else None  # the first engine (by default bayestwin's fastest configuration)
    out = [f"**N = {n} patients** ({10 * n} concentrations)", "",
           "| engine | min bulk ESS (param) | max R-hat | sampling s | ESS/s | first row ÷ peer (ESS/s) | wall s "
           "(compile s) | ESS/s wall | leapfrog/draw | step size | divergences | us per gradient* | ka > ke |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{ours['ess_s'] / r['ess_s']:.2f}" if ours and r is not ours else ""
        step = f"{r['step_size']:.3f}" if r["step_size"] is not None else "n/a"
        out.append(f"| {r['engine']} | {r['ess']:.0f} ({r['worst']}) | {r['rhat']:.3f} | {r['sampling_s']:.1f} | "
                   f"**{r['ess_s']:.1f}** | {ratio} | {r['wall_s']:.1f} ({r['compile_s']:.1f}) | "
                   f"{r['ess_wall']:.1f} | {r['steps']:.1f} | {step} | {r['div']} | {r['grad_us']:.0f}"
                   f"{'' if r['warmup_recorded'] else '†'} | {'yes' if r['main_mode'] else 'NO'} "
                   f"(min ratio {r['ka_ke']}) |")
    return [*out, ""]


def section(results: dict[int, list[dict]], s: Settings, load: tuple[float, float]) -> list[str]:
    versions = ", ".join(f"{p} {md.version(p)}" for p in VERSIONS if installed(p))
    lines = [TITLE, "",
             f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} cores, "
             f"CPU only; Python {platform.python_version()}; {versions}. The machine is a 2-core box shared with "
             f"other agents' jobs: load average {load[0]:.1f} at the start, {load[1]:.1f} at the end; every "
             "figure is from one run, engines one after another, so the ratios carry that noise.", "",
             f"One-compartment oral PK, one 320 mg dose, 10 samples per patient, simulated with a fixed seed; "
             f"log-normal BSV on ka, CL, V (centred), proportional error; the `oral_1cpt` spec's priors; float64. "
             f"Every engine: {s.chains} chains x {s.warmup} warm-up + {s.draws} draws, target acceptance "
             f"{s.target_accept}, diagonal mass matrix (nutpie: its gradient-based diagonal adaptation), starts at "
             "the prior medians jittered U(-0.5, 0.5) on the unconstrained scale, every random effect at 0 (the "
             "rule of bayestwin's `init_near_prior_median`; the V prior and these starts keep ka > ke: checked "
             "per chain in the last column). ESS: ArviZ bulk ESS, minimum over tv_ka, tv_cl, tv_v, omega_*, "
             "sigma_prop; R-hat: ArviZ rank-normalised, maximum. ESS/s: per second of sampling (warm-up + "
             "draws, compilation excluded); ESS/s wall: model build and compilation included.", ""]
    for n, rows in results.items():
        lines += table(rows, n)
    lines += ["\\* sampling seconds / leapfrog steps (warm-up + draws): the cost of one gradient including the "
              "sampler's own overhead, spread over the chains running at once. † warm-up steps not recorded by "
              "the engine: taken equal to the draws' steps.", ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="12,200")
    parser.add_argument("--engines", default=",".join(DEFAULT_ENGINES))
    parser.add_argument("--quick", action="store_true", help="N = 12, 2 chains x 200 + 200, nothing written")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="seeds 1..R per engine and size (median ESS/s)")
    parser.add_argument("--profile", type=int, default=200, help="N of the profile section (0: no profile)")
    parser.add_argument("--dense", action="store_true", help="profile: also bayestwin with a dense mass matrix "
                        "(slow: more than 8 min at N = 200 on the shared box, not finished there)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    s = Settings(chains=2, warmup=200, draws=200) if args.quick else Settings()
    sizes = [12] if args.quick else [int(x) for x in args.sizes.split(",") if x.strip()]
    engines = [e.strip() for e in args.engines.split(",")]
    unknown = set(engines) - set(RUNNERS)
    if unknown:
        parser.error(f"unknown engine(s) {sorted(unknown)}; choose from {sorted(RUNNERS)}")
    load0 = os.getloadavg()[0]
    results: dict[int, list[dict]] = {}
    rounds: dict[int, list[list[dict]]] = {}
    for n in sizes:
        data = simulate(n)
        rounds[n] = [[row for name in engines if (row := fit(name, n, data, replace(s, seed=s.seed + r)))
                      is not None] for r in range(max(1, args.repeats))]
        results[n] = rounds[n][0]
    pages = [section(results, s, (load0, os.getloadavg()[0]))] if sizes else []
    if sizes and args.repeats > 1:
        pages[0] += repeats_table(rounds, s)
    if args.profile and not args.quick:
        pages.append(profile(args.profile, results.get(args.profile, []), s, dense=args.dense))
    for lines in pages:
        print("\n".join(lines))
        if not (args.quick or args.no_write):
            from update_vs_refit import write_section

            write_section(ROOT / "docs" / "benchmarks.md", lines)


def repeats_table(rounds: dict[int, list[list[dict]]], s: Settings) -> list[str]:
    """Median and range of ESS/s per engine over the seeds of each size; ratios of medians against bayestwin's."""
    out = [f"**Over seeds {s.seed}..{s.seed + len(next(iter(rounds.values()))) - 1}** (same data, sampler seed "
           "varied, engines interleaved within each round): ESS/s median [min, max]; min bulk ESS median; "
           "ratio of medians against each bayestwin row.", "",
           "| N | engine | runs | ESS/s median [min, max] | min bulk ESS median | sampling s median | "
           "steps/draw median | each bayestwin row ÷ engine (ratio of medians) |", "|---|---|---|---|---|---|---|---|"]
    for n, runs in rounds.items():
        by: dict[str, list[dict]] = {}
        for row in (r for one in runs for r in one):
            by.setdefault(row["engine"], []).append(row)
        med = {e: float(np.median([r["ess_s"] for r in rows])) for e, rows in by.items()}
        ours = [e for e in by if e.startswith("bayestwin")]
        for engine, rows in by.items():
            v = [r["ess_s"] for r in rows]
            ratios = "; ".join(f"{ref}: {med[ref] / med[engine]:.2f}" for ref in ours if ref != engine)
            ess, secs = np.median([r["ess"] for r in rows]), np.median([r["sampling_s"] for r in rows])
            steps = np.median([r["steps"] for r in rows])
            out.append(f"| {n} | {engine} | {len(rows)} | **{med[engine]:.1f}** [{min(v):.1f}, {max(v):.1f}] | "
                       f"{ess:.0f} | {secs:.2f} | {steps:.1f} | {ratios} |")
    return [*out, ""]


def fit(name: str, n: int, data: dict, s: Settings) -> dict | None:
    """Run one engine; its summary row (None when the engine is not installed)."""
    started = time.perf_counter()
    try:
        run = RUNNERS[name](data, s)
    except ImportError as exc:
        print(f"N={n} {name}: skipped ({exc})", flush=True)
        return None
    row = summarise(run)
    print(f"N={n} {name}: ESS {row['ess']:.0f} ({row['worst']}), R-hat {row['rhat']:.3f}, sampling "
          f"{row['sampling_s']:.1f} s -> {row['ess_s']:.1f} ESS/s; wall {row['wall_s']:.1f} s; steps/draw "
          f"{row['steps']:.1f}; step {row['step_size']}; div {row['div']}; main mode {row['main_mode']}; "
          f"medians {row['tv']} ({time.perf_counter() - started:.0f} s)", flush=True)
    return row


def profile(n: int, rows: list[dict], s: Settings, dense: bool = False) -> list[str]:
    """The profile section at `n` patients: gradient costs, sampler statistics, nutpie on bayestwin's density.

    bayestwin's and nutpie's rows are taken from `rows` (the same run) when there, else fitted here.
    """
    load0 = os.getloadavg()[0]
    data = simulate(n)
    have = {r["engine"]: r for r in rows}
    ours = have.get("bayestwin") or fit("bayestwin", n, data, s)
    peer = have.get("nutpie (numba)") or fit("nutpie", n, data, s)
    same_sampler = have.get("numpyro") or fit("numpyro", n, data, s)  # NumPyro's NUTS, as bayestwin's
    dense_row = fit("bayestwin_dense", n, data, s) if dense else None
    mixed = fit("nutpie_bayestwin", n, data, s)
    costs = gradient_costs(data)
    lines = [PROFILE_TITLE, "",
             f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; same machine and settings as the section above; "
             + ("bayestwin's, NumPyro's and nutpie's rows are from that run" if rows else
                "every row refitted in this run (`--sizes \"\" --profile 200`), so its figures differ from the "
                "section above by the machine's load")
             + f" (load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end).", "",
             "Cost of one log density + gradient (us; JAX: median over 3 compiled loops of 1,000 evaluations, no "
             "dispatch, one chain or 4 under pmap; Python calls: median over 3 x 300 calls):", ""]
    lines += [f"* {k}: **{v:.1f} us**" for k, v in costs.items()]
    lines += ["", *table([r for r in (ours, same_sampler, dense_row, peer, mixed) if r is not None], n)[2:]]
    if ours and peer:
        lines += [
            "Where the time goes (bayestwin / nutpie, from the rows above): ESS/s "
            f"{ours['ess_s'] / peer['ess_s']:.2f}x = min ESS {ours['ess'] / peer['ess']:.2f}x "
            f"x (1 / sampling time {peer['sampling_s'] / ours['sampling_s']:.2f}x); "
            f"leapfrog steps per draw {ours['steps']:.1f} vs {peer['steps']:.1f}; time per leapfrog step incl. the "
            f"sampler {ours['grad_us']:.0f} vs {peer['grad_us']:.0f} us; step size (NumPyro's NUTS, as bayestwin's) "
            f"{_fmt(same_sampler, 'step_size')} vs {_fmt(peer, 'step_size')}.", ""]
    if ours and same_sampler:
        lines += [f"Same sampler (NumPyro NUTS, diagonal mass): bayestwin's model vs the model written directly: "
                  f"steps per draw {ours['steps']:.1f} vs {same_sampler['steps']:.1f}, sampling time "
                  f"{ours['sampling_s'] / same_sampler['sampling_s']:.2f}x, min ESS {ours['ess']:.0f} vs "
                  f"{same_sampler['ess']:.0f}.", ""]
    if ours and peer and mixed:
        lines += [f"nutpie's sampler on bayestwin's JAX density: min ESS {mixed['ess']:.0f} (bayestwin's own sampler "
                  f"{ours['ess']:.0f}, nutpie {peer['ess']:.0f}: the adaptation, not the density, sets the ESS); time "
                  f"per leapfrog step {mixed['grad_us']:.0f} us (one Python call into jitted JAX per gradient, "
                  f"chains sharing the GIL); ESS/s {mixed['ess_s'] / ours['ess_s']:.2f}x bayestwin's own fit, "
                  f"{mixed['ess_s'] / peer['ess_s']:.2f}x nutpie's.", ""]
    return lines


def _fmt(row: dict | None, key: str) -> str:
    return "n/a" if row is None or row.get(key) is None else f"{row[key]:.3f}"



if __name__ == "__main__":
    main()
