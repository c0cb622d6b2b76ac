"""Fleet fitting (issue 9): ``fit_fleet`` on N simulated patients vs a loop of ``Twin.fit`` (numpyro ``MCMC.run``).

The population is fitted to theo_sd (theophylline spec, 4 chains x 1000). N patients are simulated with a
fixed seed from the one-compartment oral model: individual ka, CL, V drawn log-normally around the
population's posterior-mean typical values with its posterior-mean BSV SDs, a single oral dose of 320 mg
and theo_sd's 10 sampling times after the dose, additive error with the posterior-mean residual SD
(truncated at zero: a negative value's error is drawn again). Every patient's twin
is conditioned on the same population (200 mixture components, as ``Twin``'s default).

Measured in one run: ``fit_fleet`` on N = 200 (first call, which compiles, and a second call on another
simulated cohort of the same padded size, which does not), ``Twin.fit`` (numpyro ``MCMC.run``, which
compiles on every call; ``chain_method="parallel"``, since ``Twin.fit`` now runs its own compiled program by
default) on the first ``LOOP`` patients, scaled to 200 (said so in the output), the default ``Twin.fit``
(the compiled twin program, ``bayestwin.inference.twin_program``) on ``LOOP`` patients after one that compiles,
and
``fit_fleet`` on N = 2,000 (peak RSS of the process and wall time). Output: a section of
``docs/benchmarks.md``.

Usage: ``python benchmarks/fleet.py [--loop 8] [--big 2000] [--settings 4,500,500] [--no-write]`` (about
45 minutes on 2 shared cores with the defaults; 4 x 500 + 500 per twin keeps it within a session).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import importlib.metadata as md
import os
import platform
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_specs.theophylline import spec as theophylline_spec  # noqa: E402

from bayestwin.data import load_dataset, read_nonmem  # noqa: E402
from bayestwin.inference import SamplerConfig, fit_population  # noqa: E402
from bayestwin.inference.fleet import fit_fleet  # noqa: E402
from bayestwin.inference.fleet_kernel import available_cores, fleet_devices  # noqa: E402
from bayestwin.twin import Twin  # noqa: E402

TIMES = np.array([0.25, 0.5, 1.0, 2.0, 3.5, 5.0, 7.0, 9.0, 12.0, 24.0])


def simulate(pop, n: int, seed: int) -> pd.DataFrame:
    """`n` patients (NONMEM rows) from the population's posterior-mean typical values, BSV and residual SD."""
    post = pop.idata.posterior
    mean = {k: float(post[k].mean()) for k in ("tv_ka", "tv_cl", "tv_v", "omega_ka", "omega_cl", "omega_v",
                                                "sigma_add")}
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(1, n + 1):
        ka, cl, v = (mean[f"tv_{p}"] * np.exp(mean[f"omega_{p}"] * rng.normal()) for p in ("ka", "cl", "v"))
        ke = cl / v
        conc = 320.0 * ka / (v * (ka - ke)) * (np.exp(-ke * TIMES) - np.exp(-ka * TIMES))
        dv = conc + mean["sigma_add"] * rng.normal(size=TIMES.size)
        while (dv <= 0).any():  # concentrations are positive: redraw a negative value's error (truncated normal)
            bad = dv <= 0
            dv[bad] = conc[bad] + mean["sigma_add"] * rng.normal(size=int(bad.sum()))
        rows.append({"ID": pid, "TIME": 0.0, "EVID": 1, "AMT": 320.0, "DV": "."})
        rows += [{"ID": pid, "TIME": t, "EVID": 0, "AMT": 0.0, "DV": round(float(y), 3)}
                 for t, y in zip(TIMES, dv, strict=True)]
    return pd.DataFrame(rows)


def table(frame: pd.DataFrame):
    return read_nonmem(frame, units={"time": "h", "amt": "mg", "dv": "mg/L"})


def lockstep_efficiency(fleet) -> float:
    """Leapfrog steps of the kept draws that were each patient's own / steps computed in lockstep.

    A group of ``lanes`` patients x chains iterates in lockstep: each iteration costs the group's longest
    trajectory on every lane. Warm-up steps are not recorded (the kept draws' ``num_steps`` only).
    """
    steps = np.moveaxis(fleet.idata.sample_stats["num_steps"].to_numpy(), 2, 0)  # (patient, chain, draw)
    computed = 0
    for first in range(0, len(steps), fleet.lanes):
        group = steps[first: first + fleet.lanes]
        computed += group.max(axis=(0, 1)).sum() * fleet.lanes * group.shape[1]
    return float(steps.sum() / computed)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", type=int, default=8, help="patients fitted by the Twin.fit loop")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--big", type=int, default=2000)
    parser.add_argument("--settings", default="4,500,500", help="chains,warmup,draws")
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="devices (cores) fit_fleet uses; default: all cores")
    parser.add_argument("--no-write", action="store_true", help="do not write the section of docs/benchmarks.md")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    chains, warmup, draws = (int(x) for x in args.settings.split(","))
    sampler = SamplerConfig(chains=chains, warmup=warmup, draws=draws, seed=0)
    spec = theophylline_spec()
    started = time.perf_counter()
    pop = fit_population(spec, load_dataset("theo_sd"), sampler=SamplerConfig(chains=4, warmup=1000, draws=1000))
    print(f"population: {pop} ({time.perf_counter() - started:.0f} s)", flush=True)
    res = {}
    cohort = table(simulate(pop, args.n, seed=1))
    started = time.perf_counter()
    first = fit_fleet(spec, pop, cohort, sampler=sampler, lanes=args.lanes, workers=args.workers)
    res["fleet_first"] = time.perf_counter() - started
    print(f"fleet N={args.n} first call: {res['fleet_first']:.1f} s; {first}", flush=True)
    second_cohort = table(simulate(pop, args.n, seed=2))
    started = time.perf_counter()
    second = fit_fleet(spec, pop, second_cohort, sampler=sampler, lanes=args.lanes, workers=args.workers)
    res["fleet_second"] = time.perf_counter() - started
    res["compiled_second"] = second.wall_time_s
    print(f"fleet N={args.n} second cohort: {res['fleet_second']:.1f} s; {second}", flush=True)
    loop_s = []
    mcmc_run = dataclasses.replace(sampler, chain_method="parallel")  # Twin.fit through numpyro's MCMC.run
    for pid in second.patients[: args.loop]:
        started = time.perf_counter()
        Twin(spec, population=pop, sampler=mcmc_run).fit(second_cohort.patient(pid))
        loop_s.append(time.perf_counter() - started)
        print(f"  Twin.fit (MCMC.run) patient {pid}: {loop_s[-1]:.1f} s", flush=True)
    res["loop_per_patient"] = float(np.mean(loop_s))
    res["loop_scaled"] = res["loop_per_patient"] * args.n
    print(f"loop: {res['loop_per_patient']:.1f} s per patient -> {res['loop_scaled']:.0f} s for {args.n}", flush=True)
    twin_s = []
    for pid in second.patients[: args.loop + 1]:  # the first call compiles the twin program: not counted
        started = time.perf_counter()
        Twin(spec, population=pop, sampler=dataclasses.replace(sampler, chain_method="vectorized")).fit(
            second_cohort.patient(pid))
        twin_s.append(time.perf_counter() - started)
        print(f"  Twin.fit (compiled twin program) patient {pid}: {twin_s[-1]:.1f} s", flush=True)
    res["twin_first"], twin_s = twin_s[0], twin_s[1:]
    res["twin_per_patient"] = float(np.mean(twin_s))
    rss_before = peak_rss_mb()
    if args.big:
        big_cohort = table(simulate(pop, args.big, seed=3))
        started = time.perf_counter()
        big = fit_fleet(spec, pop, big_cohort, sampler=sampler, lanes=args.lanes, workers=args.workers)
        res["big"] = time.perf_counter() - started
        print(f"fleet N={args.big}: {res['big']:.1f} s, peak RSS {peak_rss_mb():.0f} MB; {big}", flush=True)
    lines = section(args, sampler, pop, first, second, res, loop_s, rss_before, big if args.big else None)
    lines[-1:-1] = [
        f"* Twin.fit loop with the compiled twin program (Twin.fit's default path; compiles once: first call "
        f"{res['twin_first']:.1f} s, not counted): mean **{res['twin_per_patient']:.2f} s** per patient over "
        f"{len(twin_s)} patients (min {min(twin_s):.2f}, max {max(twin_s):.2f}); ratio of that loop (scaled to "
        f"{args.n}) / fit_fleet: **{res['twin_per_patient'] * args.n / res['fleet_second']:.1f}x**",
        f"* run as `python benchmarks/fleet.py --settings {args.settings} --loop {args.loop} --n {args.n} --big "
        f"{args.big}{'' if args.workers is None else f' --workers {args.workers}'}`; load average "
        f"{os.getloadavg()[0]:.1f} at the end"]
    print("\n".join(lines))
    if not args.no_write:
        from update_vs_refit import write_section

        write_section(ROOT / "docs" / "benchmarks.md", lines)


def section(args, sampler, pop, first, second, res, loop_s, rss_before, big) -> list[str]:
    load = os.getloadavg()[0]
    lines = [
        f"## Fleet of twins: fit_fleet vs a Twin.fit loop (issue 9, {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} cores (shared "
        f"with other jobs: load average {load:.1f} at the end); Python {platform.python_version()}; "
        + ", ".join(f"{p} {md.version(p)}" for p in ("jax", "numpyro", "arviz")), "",
        f"Theophylline spec; population fitted to theo_sd ({'passed' if pop.ok else 'FAILED'} its gate); patients "
        f"simulated with fixed seeds (one 320 mg oral dose, 10 samples each); each twin: {sampler.chains} chains x "
        f"{sampler.warmup} warm-up + {sampler.draws} draws, 200 mixture components, its own step size and mass "
        f"matrix; fit_fleet with {first.lanes} patients in lockstep per core, {fleet_devices(args.workers)} cores "
        f"at once (`workers`; {available_cores()} available).", "",
        f"* fit_fleet, N = {args.n}, first call (compiles): **{res['fleet_first']:.1f} s**; gate failures: "
        f"{len(first.failed)}",
        f"* fit_fleet, N = {args.n}, second cohort of the same padded size (compiles nothing): "
        f"**{res['fleet_second']:.1f} s** ({res['fleet_second'] / args.n:.2f} s per patient); gate failures: "
        f"{len(second.failed)}; of which the compiled calls {res['compiled_second']:.1f} s, host-side work (priors, "
        f"labels, per-patient gate) {res['fleet_second'] - res['compiled_second']:.1f} s; lockstep efficiency "
        f"(own leapfrog steps / steps computed, kept draws) {lockstep_efficiency(second):.2f}",
        f"* Twin.fit loop through numpyro MCMC.run (`chain_method='parallel'`; compiles every call): timed on "
        f"{len(loop_s)} patients of the second cohort, mean **{res['loop_per_patient']:.1f} s** per patient (min "
        f"{min(loop_s):.1f}, max {max(loop_s):.1f})"
        f", scaled to {args.n} patients: **{res['loop_scaled']:.0f} s** (extrapolated, not run)",
        f"* ratio loop / fit_fleet: **{res['loop_scaled'] / res['fleet_second']:.1f}x** (second cohort), "
        f"{res['loop_scaled'] / res['fleet_first']:.1f}x (first call, compilation included); target >= 50x",
    ]
    reasons = pd.concat([first.diagnostics, second.diagnostics])["failures"]
    reasons = reasons[reasons != ""]
    if len(reasons):
        kinds = reasons.str.replace(r"\d+(\.\d+)?", "#", regex=True).value_counts()
        lines.append("* why twins failed the gate (both cohorts): "
                     + "; ".join(f"{k} ({v})" for k, v in kinds.items()))
    if big is not None:
        lines.append(f"* fit_fleet, N = {args.big}: **{res['big']:.0f} s** wall, peak RSS of the process "
                     f"**{peak_rss_mb():.0f} MB** (before it: {rss_before:.0f} MB); chunks of {big.chunk_size}; gate "
                     f"failures: {len(big.failed)}")
    return [*lines, ""]


if __name__ == "__main__":
    main()
