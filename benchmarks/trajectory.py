"""NUTS tree (issue 9, NUT4): NumPyro's vs bayestwin's own (Stan's U-turn criterion), both with the gradient warm-up.

Fits the peer benchmark's oral one-compartment population model (``peerlib``; data simulated with the peer seed)
with ``SamplerConfig(adaptation="gradient", trajectory=...)`` and, as a reference, nutpie, every engine once per
sampler seed, the engines INTERLEAVED within each seed (same process, so load drifts hit all alike). 4 chains
x 1,000 warm-up + 1,000 draws, target 0.8, as ``benchmarks/peers.py``. Per run: minimum bulk ESS over the
seven population parameters, ESS per 1,000 gradient evaluations (warm-up + draws, all chains), leapfrog steps
per draw, ESS/s of sampling, and the cost of one leapfrog step: wall us (sampling seconds / all chains'
steps) and CPU us (CPU seconds of XLA's execution threads during the sampling calls -- the process's CPU
less the calling thread's (tracing, lowering, Python) and less the other threads' CPU during backend compiles
(``CompileCpu``) --, / all chains' steps; pmap runs the 4 chains as threads over the cores, so CPU time
counts their work whatever the load). nutpie's CPU time: the CPU of threads other than the calling one during its
run (its model is built and compiled on the calling thread; it samples on its own threads).

Engines: ``numpyro`` (NumPyro's tree), ``stan`` (``bayestwin.inference.trajectory``), ``stan_noextra`` (the same
without the two cross-subtree checks; an experiment through ``hmc_state_transition(extra_checks=False)``),
``nutpie``.

``--step-cost 12,200`` instead times each tree's leapfrog step alone (``step_cost``: one chain on one thread,
the same adapted state after 1,000 warm-up iterations, 300 transitions per tree, min of 3 interleaved repeats).

Usage: ``python benchmarks/trajectory.py [--sizes 12,200] [--engines numpyro,stan,nutpie] [--seeds 1,2,3]
[--write] [--step-cost 12,200]``; ``--write`` replaces this script's dated section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import functools
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from adaptation import summarise  # noqa: E402
from peerlib.engines import Settings, run_bayestwin, run_nutpie  # noqa: E402
from peerlib.models import nonmem_frame, simulate  # noqa: E402
from report import machine_line, write_section  # noqa: E402

import bayestwin  # noqa: E402,F401  (4 XLA host devices before JAX starts)

KEYS = ("ess", "ess_per_k", "steps", "ess_s", "wall_us", "cpu_us", "div")


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CompileCpu:
    """CPU seconds spent in XLA backend compiles (all threads), from the JAX compile events' listener.

    Each program is traced, lowered, then compiled, in that order, on the calling thread: the process CPU
    between the end of the lowering event and the end of the backend-compile event is the compile's CPU
    (compile threads included). Tracing and lowering run on the calling thread alone.
    """

    def __init__(self) -> None:
        import jax

        self.marks: list[tuple[str, float, float, float]] = []  # (event, wall, process CPU, calling thread CPU)
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **_kw) -> None:
        if event.startswith("/jax/core/compile/"):
            self.marks.append((event, time.perf_counter(), _process_cpu(), time.thread_time()))

    def off_main_compile(self, start: float, end: float) -> float:
        """CPU seconds of threads other than the calling one during backend compiles in [start, end]."""
        total, last = 0.0, None
        for event, wall, proc, main in self.marks:
            if not start <= wall <= end:
                continue
            if event.endswith("jaxpr_to_mlir_module_duration"):
                last = (proc, main)
            elif event.endswith("backend_compile_duration") and last is not None:
                total += (proc - last[0]) - (main - last[1])
                last = None
        return total


_COMPILE_CPU: CompileCpu | None = None


def _compile_cpu() -> CompileCpu:
    global _COMPILE_CPU
    if _COMPILE_CPU is None:
        _COMPILE_CPU = CompileCpu()
    return _COMPILE_CPU


def fit(engine: str, data: dict, s: Settings) -> dict:
    """One fit; ``summarise``'s row plus wall and CPU microseconds per leapfrog step (all chains' steps)."""
    import jax

    import bayestwin.inference.adaptation as adaptation_mod
    import bayestwin.inference.fit as fit_mod

    if engine == "nutpie":
        c0, m0 = _process_cpu(), time.thread_time()
        run = run_nutpie(data, s)
        # its sampler's threads: the model is built and compiled (numba) on the calling thread, before sampling
        cpu = _process_cpu() - c0 - (time.thread_time() - m0)
    else:
        windows: list[tuple[float, float, float]] = []
        clock = _compile_cpu()
        original, original_step = fit_mod.run_nuts, adaptation_mod.hmc_state_transition

        def cpu_timed(*args, **kwargs):
            c0, m0, t0 = _process_cpu(), time.thread_time(), time.perf_counter()
            mcmc = original(*args, **kwargs)
            jax.block_until_ready(mcmc.get_samples())
            t1 = time.perf_counter()
            # XLA's execution threads: process CPU less the calling thread's, less compile threads' CPU
            windows.append((_process_cpu() - c0 - (time.thread_time() - m0) - clock.off_main_compile(t0, t1), t0, t1))
            return mcmc

        fit_mod.run_nuts = cpu_timed
        if engine == "stan_noextra":
            adaptation_mod.hmc_state_transition = functools.partial(original_step, extra_checks=False)
        try:
            run = run_bayestwin(data, s, adaptation="gradient", count_warmup=True,
                                trajectory="numpyro" if engine == "numpyro" else "stan")
        finally:
            fit_mod.run_nuts, adaptation_mod.hmc_state_transition = original, original_step
        cpu = windows[0][0]
    row = summarise(run)
    grads = row["grads_k"] * 1e3
    return row | {"engine": engine, "wall_us": 1e6 * row["sampling_s"] / grads, "cpu_us": 1e6 * cpu / grads}


def step_cost(n: int, transitions: int = 300, warmup: int = 1000, repeats: int = 3) -> dict[str, tuple]:
    """Microseconds per leapfrog step of each tree on bayestwin's density, one chain, one thread, same state.

    One chain starts at the prior medians (as the fits) and is warmed up (gradient warm-up, NumPyro's tree);
    then `transitions` NUTS transitions from that state with each tree, one compiled program per tree, each
    timed `repeats` times after a first (compiling) call, the trees interleaved; min of the repeats of wall and
    of process CPU time. Returns, per tree, (wall us, CPU us, leapfrog steps per transition).
    """
    import jax
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    from bayestwin.inference.adaptation import init_gradient_adaptation, update_gradient_adaptation, warmup_schedule
    from bayestwin.inference.sampler import init_near_prior_median
    from bayestwin.inference.trajectory import hmc_state_transition

    fn, args = _bayestwin_model(simulate(n))
    info, potential_gen, _, _ = initialize_model(jax.random.PRNGKey(0), fn, model_args=args, dynamic_args=True,
                                                 init_strategy=init_near_prior_median(radius=0.0))
    potential = potential_gen(*args)
    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
    state = init_kernel(info.z, warmup, adapt_step_size=False, adapt_mass_matrix=False,
                        rng_key=jax.random.PRNGKey(1))
    plan = warmup_schedule(warmup)

    @jax.jit
    def warm(s):
        s = init_gradient_adaptation(s, potential)
        return jax.lax.fori_loop(0, warmup, lambda i, c: update_gradient_adaptation(c, sample_kernel(c), potential,
                                                                                   schedule=plan), s)

    state = jax.block_until_ready(warm(state))
    trees = {"numpyro": lambda s: sample_kernel(s), "stan": lambda s: hmc_state_transition(s, potential),
             "stan_noextra": lambda s: hmc_state_transition(s, potential, extra_checks=False)}

    def program(step):
        def run(s):
            return jax.lax.scan(lambda c, _: _scan(step, c), s, None, length=transitions)[1].sum()
        return jax.jit(run)

    programs = {k: program(v) for k, v in trees.items()}
    steps = {k: int(f(state)) for k, f in programs.items()}  # compiles
    best = {k: [np.inf, np.inf] for k in programs}
    for _ in range(repeats):
        for k, f in programs.items():
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(f(state))
            best[k] = [min(best[k][0], time.perf_counter() - t0), min(best[k][1], time.process_time() - c0)]
    return {k: (1e6 * best[k][0] / steps[k], 1e6 * best[k][1] / steps[k], steps[k] / transitions) for k in programs}


def _scan(step, c):
    new = step(c)
    return new, new.num_steps


def _bayestwin_model(data: dict):
    from model_specs.oral_1cpt import spec

    from bayestwin.data import read_nonmem
    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.inference.population import build_population_model
    from bayestwin.models import get_model

    sp = spec()
    model = get_model(sp.model)
    table = read_nonmem(nonmem_frame(data), units={"time": "h", "amt": "mg", "dv": "mg/L"})
    arrays = cohort_arrays(table, sp, model)
    return build_population_model(sp, model, arrays.features), (arrays.doses, arrays.obs, dict(arrays.covariates))


def spread(rows: list[dict], key: str) -> str:
    v = np.array([r[key] for r in rows], float)
    return f"{v.mean():.3g} ({v.min():.3g}-{v.max():.3g})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12,200")
    ap.add_argument("--engines", default="numpyro,stan,nutpie")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--step-cost", default="", help="sizes: only the per-step cost of each tree (step_cost)")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    load0 = os.getloadavg()[0]
    print(f"load average {load0:.1f} at the start", flush=True)
    if a.step_cost:
        for n in (int(x) for x in a.step_cost.split(",") if x):
            for tree, (wall, cpu, per) in step_cost(n).items():
                print(f"N={n} {tree}: us per leapfrog step wall {wall:.2f}, CPU {cpu:.2f} ({per:.1f} steps per "
                      f"transition; load {os.getloadavg()[0]:.1f})", flush=True)
        return
    seeds = [int(x) for x in a.seeds.split(",") if x]
    engines = [e for e in a.engines.split(",") if e]
    out = [f"## NUTS tree: NumPyro's vs bayestwin's own (Stan's U-turn criterion) (issue 9, "
           f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC)", "",
           f"`python benchmarks/trajectory.py --sizes {a.sizes} --engines {a.engines} --seeds {a.seeds}`; "
           "both bayestwin rows with the gradient warm-up (`SamplerConfig(adaptation=\"gradient\", "
           "trajectory=...)`), 4 chains x 1,000 + 1,000, target 0.8, engines interleaved per seed in one process. "
           "Mean (range) over the sampler seeds; us per step: all chains' leapfrog steps (warm-up + draws).", ""]
    for n in (int(x) for x in a.sizes.split(",") if x):
        data = simulate(n)
        rows: dict[str, list[dict]] = {e: [] for e in engines}
        for seed in seeds:
            for engine in engines:
                t0 = time.perf_counter()
                r = fit(engine, data, dataclasses.replace(Settings(), seed=seed))
                rows[engine].append(r)
                print(f"N={n} seed {seed} {engine}: ESS {r['ess']:.0f} ({r['worst']}), per 1k grad "
                      f"{r['ess_per_k']:.2f}, steps/draw {r['steps']:.1f}, step {r['step_size']}, div {r['div']}, "
                      f"R-hat {r['rhat']:.3f}, ESS/s {r['ess_s']:.1f}, us/step wall {r['wall_us']:.2f} CPU "
                      f"{r['cpu_us']:.2f} ({time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f})",
                      flush=True)
        out += [f"**N = {n}**", "", "| engine | min bulk ESS | ESS per 1k gradients | leapfrog/draw | ESS/s | "
                "us/step wall | us/step CPU | divergences |", "|---|---|---|---|---|---|---|---|"]
        for engine, rs in rows.items():
            line = " | ".join(spread(rs, k) for k in KEYS)
            print(f"N={n} {engine} over seeds {seeds}: {line}", flush=True)
            out.append(f"| {engine} | {line} |")
        out.append("")
    load1 = os.getloadavg()[0]
    out.append(machine_line(("jax", "numpyro", "nutpie"), f"load average {load0:.1f} at the start, {load1:.1f} "
                                                           "at the end"))
    print("\n".join(out), flush=True)
    if a.write:
        write_section(ROOT / "docs" / "benchmarks.md", out)


if __name__ == "__main__":
    main()
