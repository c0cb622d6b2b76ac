"""How to lay 4 NUTS chains on a 2-core CPU (issue 9, NUT3): pmap, vectorised, 2 devices x 2, or one by one.

One process, the peer benchmark's oral one-compartment population model (``peerlib``; float64) at each size N:

1. **Density alone** (value + gradient on the flat unconstrained vector, ``--loop`` evaluations in a compiled
   ``lax.fori_loop`` per chain; bayestwin's density and the model written directly in NumPyro), 4 chains laid
   out as:

   * ``parallel``: ``pmap`` over 4 XLA host devices (what ``chain_method="parallel"`` runs);
   * ``vectorized``: ``vmap`` over the 4 chains on one device;
   * ``hybrid``: ``pmap`` over 2 devices of ``vmap`` over 2 chains each;
   * ``sequential``: one compiled chain called 4 times, one after another (NumPyro's ``"sequential"``).

2. **Whole NUTS runs** (``numpyro.infer.MCMC`` with bayestwin's population model and its sampler kernel,
   ``GradientNUTS`` or NumPyro's ``NUTS``, starts as ``init_near_prior_median``), the same 4 layouts
   (``hybrid`` through NumPyro's callable ``chain_method``, ``chain_mapper`` here): wall
   seconds of warm-up and of sampling (NumPyro's ``MCMC`` traces and compiles again on every run, even the same
   object: the JAX compile events recorded during each phase are subtracted; the sampling phase's figure is the
   reliable one, the warm-up's compile events overlap its run), leapfrog steps, CPU time of the sampling
   phase (``time.process_time``, compile time subtracted as wall: negative when compilation ran on several
   threads, then ignore it), and microseconds per gradient = seconds / leapfrog steps of all chains.
   Under ``vmap`` every iteration waits
   for the chain with the longest trajectory: "lockstep" = sum over iterations of 4 x the largest step count
   / the sum of all chains' steps (1 = no waiting). NUTS overhead per gradient = the run's figure minus the
   density's in the same layout.

3. **Whole runs compiled once** (the figures to trust; ``whole_runs``): 4 chains x (gradient warm-up + draws)
   in ONE compiled program per layout, timed on later calls (wall and CPU seconds, leapfrog steps).

Measured 2026-11-27 20:36-20:55 UTC (2-core box shared with other jobs, load 12-14: wall times carry it, CPU
seconds much less), 4 chains x (1,000 + 1,000), min (median) over 3 rounds (N = 12) / 2 rounds (N = 200):

* N = 12, CPU s: parallel 1.96 (1.98), sequential 1.93 (1.94), hybrid 2.38 (2.52), vectorized 5.08 (5.10);
  lockstep 1.63 for 4 chains, 1.28 for pairs.
* N = 200, CPU s: parallel 18.64 (18.93), sequential 18.50 (18.60), hybrid 26.15 (26.54); lockstep 1.08 / 1.06.
* Density alone, 4 chains, N = 200 (us per step, min): bayestwin parallel 551, vectorized 1,134, hybrid 625,
  sequential 901; NumPyro-direct 270 / 224 / 201 / 321. N = 12: bayestwin 66 / 138 / 48 / 72, NumPyro-direct
  44 / 29 / 38 / 45 (noisy at this load).

Reading: ``pmap`` over 4 host devices costs no more CPU than running the chains one by one, at both sizes, and
uses both cores; every ``vmap`` layout costs more CPU (lockstep, and bayestwin's density batches badly under
``vmap`` where NumPyro's does not). ``chain_method="auto"`` keeps ``"parallel"`` (``auto_chain_method``).

Rounds are interleaved (layout by layout, repeated ``--rounds`` times) and the minimum and median reported; the
machine is shared, so the load average is printed. Usage: ``python benchmarks/chain_layout.py [--sizes 12,200]
[--rounds 3] [--warmup 1000] [--draws 1000] [--layouts parallel,hybrid,vectorized,sequential] [--no-density]
[--mcmc] [--kernel gradient]``.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bayestwin  # noqa: E402,F401  (4 XLA host devices before JAX starts)

LAYOUTS = ("parallel", "vectorized", "hybrid", "sequential")


def density_layouts(value_and_grad, x0, k: int) -> dict[str, object]:
    """``layout -> callable()`` running `k` evaluations for each of 4 chains, compiled now."""
    import jax
    import jax.numpy as jnp
    from peerlib.profile import evaluation_loop

    loop = evaluation_loop(value_and_grad, k)
    x4 = jnp.stack([x0 + 1e-3 * i for i in range(4)])
    one = jax.jit(loop)
    runs = {
        "parallel": functools.partial(jax.pmap(loop), x4),
        "vectorized": functools.partial(jax.jit(jax.vmap(loop)), x4),
        "hybrid": functools.partial(jax.pmap(jax.vmap(loop), devices=jax.devices()[:2]), x4.reshape(2, 2, -1)),
        "sequential": lambda: [one(x4[i]) for i in range(4)],
    }
    for f in runs.values():
        jax.block_until_ready(f())
    return runs


def time_density(runs: dict, k: int, rounds: int) -> dict[str, tuple[float, float]]:
    """``layout -> (min, median)`` wall us per step of all 4 chains."""
    import jax

    out: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            out[name].append(1e6 * (time.perf_counter() - t0) / k)
    return {name: (min(v), float(np.median(v))) for name, v in out.items()}


def population(n: int):
    """bayestwin's population model of the peer data: ``(model function, args)`` as ``fit_population`` builds."""
    from model_specs.oral_1cpt import spec
    from peerlib.models import nonmem_frame, simulate

    from bayestwin.data import read_nonmem
    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.inference.population import build_population_model
    from bayestwin.models import get_model

    s = spec()
    model = get_model(s.model)
    table = read_nonmem(nonmem_frame(simulate(n)), units={"time": "h", "amt": "mg", "dv": "mg/L"})
    arrays = cohort_arrays(table, s, model)
    fn = build_population_model(s, model, arrays.features)
    return fn, (arrays.doses, arrays.obs, {k: np.asarray(v) for k, v in arrays.covariates.items()})


def chain_mapper(method: str, chains: int, devices: int = 2):
    """NumPyro's ``chain_method`` for a layout: its own names, or for ``"hybrid"`` a transform (NumPyro accepts a
    callable mapping the per-chain program over the leading chain axis): ``pmap`` over `devices` of ``vmap``."""
    import jax

    if method != "hybrid":
        return method
    per = chains // devices

    def transform(f):
        mapped = jax.pmap(jax.vmap(f), devices=jax.local_devices()[:devices])

        def run(xs):
            out = mapped(jax.tree.map(lambda a: a.reshape(devices, per, *a.shape[1:]), xs))
            return jax.tree.map(lambda a: a.reshape(chains, *a.shape[2:]), out)

        return run

    return transform


def make_mcmc(fn, layout: str, warmup: int, draws: int, kernel: str):
    """The ``MCMC`` object of `layout` (kept across rounds: its compiled programs are reused)."""
    from numpyro.infer import MCMC, NUTS

    from bayestwin.inference.adaptation import GradientNUTS
    from bayestwin.inference.sampler import init_near_prior_median

    init = functools.partial(init_near_prior_median, radius=0.5)
    k = (GradientNUTS(fn, target_accept_prob=0.8, init_strategy=init) if kernel == "gradient"
         else NUTS(fn, target_accept_prob=0.8, init_strategy=init))
    return MCMC(k, num_warmup=warmup, num_samples=draws, num_chains=4, chain_method=chain_mapper(layout, 4),
                progress_bar=False)


def nuts_run(mcmc, args, seed: int) -> dict[str, float]:
    """One warm-up + sampling run of `mcmc`: seconds (compilation subtracted), CPU seconds, steps, lockstep."""
    import jax
    from peerlib.engines import clock

    clk = clock()
    key_w, key_s = jax.random.split(jax.random.PRNGKey(seed))
    mcmc._warmup_state = None  # start again from the init strategy (private: a benchmark only)
    c0, t0 = time.process_time(), time.perf_counter()
    mcmc.warmup(key_w, *args, collect_warmup=True, extra_fields=("num_steps",))
    jax.block_until_ready(mcmc.get_extra_fields())
    c1, t1 = time.process_time(), time.perf_counter()
    warm_steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
    mcmc.run(key_s, *args, extra_fields=("num_steps",))
    jax.block_until_ready(mcmc.get_samples())
    c2, t2 = time.process_time(), time.perf_counter()
    steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
    comp_w, comp_s = clk.between(t0, t1), clk.between(t1, t2)
    warm_s, draw_s = t1 - t0 - comp_w, t2 - t1 - comp_s
    lock = lambda s: float(4 * s.max(axis=0).sum() / s.sum())  # noqa: E731
    return {"warm_s": warm_s, "draw_s": draw_s, "warm_steps": float(warm_steps.sum()), "steps": float(steps.sum()),
            "us_grad_warm": 1e6 * warm_s / warm_steps.sum(), "us_grad": 1e6 * draw_s / steps.sum(),
            "cpu_us_grad_warm": 1e6 * (c1 - c0 - comp_w) / warm_steps.sum(),
            "cpu_us_grad": 1e6 * (c2 - c1 - comp_s) / steps.sum(), "compile_s": comp_w + comp_s,
            "lock_warm": lock(warm_steps), "lock": lock(steps), "steps_per_draw": float(steps.mean())}


def whole_runs(fn, args, warmup: int, draws: int, layouts: list[str]) -> dict[str, object]:
    """``layout -> callable()``: 4 chains of warm-up (gradient-based) + draws in ONE compiled program, compiled now.

    NumPyro's functional NUTS with ``bayestwin.inference.adaptation``'s warm-up (as ``run_batched_nuts`` runs
    it); each chain returns its leapfrog steps per iteration. Timing a second call of the same compiled program
    leaves compilation out exactly (``MCMC`` recompiles on every run).
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    from bayestwin.inference.adaptation import init_gradient_adaptation, update_gradient_adaptation, warmup_schedule
    from bayestwin.inference.sampler import init_near_prior_median

    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    z0 = initialize_model(keys, fn, model_args=args, init_strategy=init_near_prior_median(radius=0.5))[0].z
    potential = initialize_model(keys[0], fn, model_args=args)[1]
    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")
    plan = warmup_schedule(warmup)

    def one(key, z):
        state = init_kernel(z, warmup, rng_key=key, adapt_step_size=False, adapt_mass_matrix=False,
                            target_accept_prob=0.8)
        state = init_gradient_adaptation(state, potential)

        def warm(s, _):
            s = update_gradient_adaptation(s, sample_kernel(s), potential, schedule=plan, target_accept=0.8)
            return s, s.num_steps

        def draw(s, _):
            s = sample_kernel(s)
            return s, s.num_steps

        state, n_warm = jax.lax.scan(warm, state, None, length=warmup)
        state, n_draw = jax.lax.scan(draw, state, None, length=draws)
        return jnp.concatenate([n_warm, n_draw])

    run_keys = jax.random.split(jax.random.PRNGKey(1), 4)
    pair = lambda a: a.reshape(2, 2, *a.shape[1:])  # noqa: E731
    par, hyb = jax.pmap(one), jax.pmap(jax.vmap(one), devices=jax.devices()[:2])
    vec, single = jax.jit(jax.vmap(one)), jax.jit(one)
    runs = {
        "parallel": lambda: par(run_keys, z0),
        "hybrid": lambda: hyb(pair(run_keys), jax.tree.map(pair, z0)).reshape(4, -1),
        "vectorized": lambda: vec(run_keys, z0),
        "sequential": lambda: jnp.stack([single(run_keys[i], jax.tree.map(lambda a, i=i: a[i], z0))
                                         for i in range(4)]),
    }
    return {lay: runs[lay] for lay in layouts}


def main(argv: list[str] | None = None) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12,200")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loop", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--draws", type=int, default=300)
    ap.add_argument("--kernel", default="gradient", choices=("gradient", "stan"))
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--no-density", action="store_true")
    ap.add_argument("--mcmc", action="store_true", help="also time numpyro's MCMC (recompiles every run)")
    a = ap.parse_args(argv)
    layouts = [x for x in a.layouts.split(",") if x]
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; {platform.machine()}, {os.cpu_count()} CPUs; jax "
          f"{jax.__version__}, {jax.device_count()} host devices; load average {os.getloadavg()[0]:.1f}", flush=True)
    from peerlib.models import simulate
    from peerlib.profile import bayestwin_density, numpyro_density

    for n in (int(x) for x in a.sizes.split(",") if x):
        print(f"\n**N = {n}**", flush=True)
        dens = {}
        if not a.no_density:
            data = simulate(n)
            vg, _r, _u, x0 = bayestwin_density(data)
            nvg, nx0 = numpyro_density(data)
            for name, (f, x) in {"bayestwin": (vg, x0), "NumPyro direct": (nvg, nx0)}.items():
                dens[name] = time_density(density_layouts(f, x, a.loop), a.loop, 2 * a.rounds + 1)
            print("\n| density | " + " | ".join(LAYOUTS) + " |\n|---|" + "---|" * len(LAYOUTS))
            for name, res in dens.items():
                print(f"| {name}: us per step of 4 chains, min (median) | "
                      + " | ".join(f"{res[lay][0]:.1f} ({res[lay][1]:.1f})" for lay in LAYOUTS) + " |")
            print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
        fn, args = population(n)
        compiled = whole_runs(fn, args, a.warmup, a.draws, layouts)
        for lay, f in compiled.items():  # compile (jax caches the pmap/jit of the same function object)
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            print(f"N={n} {lay}: first call (compiles) {time.perf_counter() - t0:.1f} s", flush=True)
        whole: dict[str, list[tuple[float, float]]] = {lay: [] for lay in layouts}
        for _ in range(a.rounds):
            for lay, f in compiled.items():
                c0, t0 = time.process_time(), time.perf_counter()
                steps = np.asarray(jax.block_until_ready(f()))
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                whole[lay].append((wall, cpu, steps))
                print(f"N={n} {lay}: {wall:.2f} s wall, {cpu:.2f} s CPU, {steps.sum():.0f} leapfrog steps "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        print(f"\nWhole runs, 4 chains x ({a.warmup} gradient warm-up + {a.draws} draws), one compiled program per "
              f"layout, {a.rounds} rounds: min (median)\n")
        print("| layout | wall s | CPU s | us per gradient (wall) | leapfrog steps (4 chains) | lockstep "
              "(4 x max / sum) | lockstep of pairs |\n|---|---|---|---|---|---|---|")
        for lay, rs in whole.items():
            w, c = [r[0] for r in rs], [r[1] for r in rs]
            st = rs[0][2]
            lock4 = 4 * st.max(axis=0).sum() / st.sum()
            lock2 = 2 * (st[:2].max(axis=0).sum() + st[2:].max(axis=0).sum()) / st.sum()
            print(f"| {lay} | {min(w):.2f} ({np.median(w):.2f}) | {min(c):.2f} ({np.median(c):.2f}) | "
                  f"{1e6 * min(w) / st.sum():.1f} ({1e6 * np.median(w) / st.sum():.1f}) | {st.sum():.0f} | "
                  f"{lock4:.2f} | {lock2:.2f} |")
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
        if not a.mcmc:
            continue
        runs: dict[str, list[dict]] = {lay: [] for lay in layouts}
        made = {lay: make_mcmc(fn, lay, a.warmup, a.draws, a.kernel) for lay in layouts}
        for r in range(a.rounds):  # MCMC traces and compiles on every run: compile events are subtracted
            for lay in layouts:
                res = nuts_run(made[lay], args, seed=r)
                runs[lay].append(res)
                print(f"N={n} {lay} round {r}: " + ", ".join(f"{k} {v:.3g}" for k, v in res.items())
                      + f" (load {os.getloadavg()[0]:.1f})", flush=True)
        print(f"\nNUTS ({a.kernel} warm-up), 4 chains x {a.warmup} + {a.draws}, {a.rounds} rounds: min (median)\n")
        print("| layout | warm-up s | sampling s | us per gradient, warm-up | us per gradient, draws | CPU us per "
              "gradient, warm-up / draws | lockstep warm-up / draws | leapfrog per draw | NUTS overhead per "
              "gradient (us) |\n|---|---|---|---|---|---|---|---|---|")
        for lay, rs in runs.items():
            def mm(key, rs=rs):
                v = [x[key] for x in rs]
                return f"{min(v):.3g} ({np.median(v):.3g})"
            over = ""
            if dens:
                per_grad = min(x["us_grad"] for x in rs)
                over = f"{per_grad - dens['bayestwin'][lay][0] / 4:.1f}"
            print(f"| {lay} | {mm('warm_s')} | {mm('draw_s')} | {mm('us_grad_warm')} | {mm('us_grad')} | "
                  f"{np.median([x['lock_warm'] for x in rs]):.2f} / {np.median([x['lock'] for x in rs]):.2f} | "
                  f"{np.median([x['steps_per_draw'] for x in rs]):.1f} | {over} |")
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
