"""Posterior predictive kernel (issue 9): 200 patients x 4,000 draws x 100 times, bayestwin vs NumPyro vs by hand.

Issue 9 asks for the posterior predictive of 200 patients, each with its own 4,000 posterior draws, at 100
times in <= 1 s ("measured at 3.9 s with NumPyro's Predictive and 2.0 s hand-jitted"). One process, the same
draws for everyone: the theophylline spec (one-compartment oral model, additive error), each patient with
one oral dose (250-400 mg at t = 0) and 4,000 draws of (ka, CL, V, sigma) scattered around its own values;
predictions (IPRED) and new observations (IPRED + residual noise) at 100 times in 0.25-24 h, float64:

- bayestwin: ``cohort_predictive_draws`` (one compiled call over patients; the twin's own
  ``predictive_draws`` program vmapped over patients) with each residual-noise generator: ``noise="jax"``
  (JAX's threefry inside the compiled program: the path before 2026-11-27 17:00, and the GPU default) and
  ``noise="numpy"`` (numpy's PCG64 + ziggurat on a thread pool, ``inference.noise``: the CPU default), with
  the IPRED program alone and the numpy noise alone as a breakdown; and the loop of ``predictive_draws`` over
  the 200 patients that 200 ``Twin.forecast`` calls run (one compilation, 200 calls; default generator);
- NumPyro's ``Predictive`` (jitted; default ``parallel=False`` and ``parallel=True``) on a model with the
  Bateman function written directly, samples ``(4000, 200)``;
- a hand-jitted ``vmap`` of the same Bateman function plus noise (and without noise: the floor).

It also checks that numpy's generators release the GIL while they fill an array (the threads of the numpy
noise run in parallel only then): a second thread's Python loop runs meanwhile (many iterations) and not
during a pure-Python loop that holds the GIL (a few, at each switch interval).

Each is called once (compilation), then timed 3 times (wall and process CPU, median); the IPRED of every
path is compared with the hand-written one (largest relative difference) and each path's standardised
residuals (observation - IPRED) / sigma are checked to be N(0, 1) (mean and SD over 80 M values).

Usage: ``python benchmarks/predictive.py [--no-write] [--patients 200 --draws 4000 --times 100]`` (~2 min;
the arrays take ~3 GB of memory at the default size).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_line, write_section

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], Any], repeats: int = 3) -> tuple[Any, float, float, float]:
    """A call's result, the median wall and CPU seconds of `repeats` calls after a first one, and the first's wall."""
    import jax

    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    walls, cpus = [], []
    for _ in range(repeats):
        del out
        w, c = time.perf_counter(), time.process_time()
        out = jax.block_until_ready(fn())
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return out, statistics.median(walls), statistics.median(cpus), first


def gil_check(size: int = 20_000_000) -> tuple[int, int, int]:
    """Main-thread loop iterations while a thread fills `size` normals with numpy, and while one holds the GIL."""
    import threading

    import numpy as np

    out = np.empty(size)
    gen = np.random.Generator(np.random.PCG64(1))
    counts = []
    for work in (lambda: gen.standard_normal(out=out), lambda: sum(range(size))):
        done = threading.Event()
        thread = threading.Thread(target=lambda w=work, d=done: (w(), d.set()))
        count = 0
        thread.start()
        while not done.is_set():
            count += 1
        thread.join()
        counts.append(count)
    return counts[0], counts[1], size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true", help="do not write the section of docs/benchmarks.md")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--times", type=int, default=100)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist
    from model_specs.theophylline import spec as theophylline_spec
    from numpyro.infer import Predictive

    from bayestwin.dynamics.events import Doses
    from bayestwin.inference.predictive import cohort_predictive_draws, predictive_draws
    from bayestwin.models import get_model

    n, s, nt = args.patients, args.draws, args.times
    spec = theophylline_spec()
    model = get_model(spec.model)
    rng = np.random.default_rng(2026)
    centre = {"ka": 1.5 * np.exp(0.6 * rng.normal(size=n)), "cl": 2.8 * np.exp(0.3 * rng.normal(size=n)),
              "v": 31.5 * np.exp(0.15 * rng.normal(size=n))}
    theta = {k: c[:, None] * np.exp(0.1 * rng.normal(size=(n, s))) for k, c in centre.items()}
    sigma = 0.7 * np.exp(0.1 * rng.normal(size=(n, s)))
    amt = rng.uniform(250.0, 400.0, size=n)
    one = Doses.single(time=0.0, amt=1.0)
    doses = jax.tree_util.tree_map(lambda a: jnp.stack([a] * n), one)._replace(
        amt=jnp.asarray(np.stack([np.asarray(one.amt) * a for a in amt])))
    times = np.linspace(0.25, 24.0, nt)
    results: dict[str, dict[str, float]] = {}

    def record(name: str, out: Any, wall: float, cpu: float, first: float) -> None:
        results[name] = {"wall": wall, "cpu": cpu, "first": first, "load": os.getloadavg()[0]}
        print(f"{name}: warm {wall:.3f} s wall, {cpu:.3f} s CPU; first call {first:.2f} s; load "
              f"{os.getloadavg()[0]:.1f}", flush=True)

    # hand-jitted: the Bateman function and additive noise, vmapped over patients and draws
    @jax.jit
    def by_hand(key: jax.Array, ka: jax.Array, cl: jax.Array, v: jax.Array, sg: jax.Array, amount: jax.Array,
                t: jax.Array) -> tuple[jax.Array, jax.Array]:
        ke = cl / v
        ipred = (amount[:, None, None] * ka[..., None] / (v[..., None] * (ka - ke)[..., None])
                 * (jnp.exp(-ke[..., None] * t) - jnp.exp(-ka[..., None] * t)))
        return ipred, ipred + sg[..., None] * jax.random.normal(key, ipred.shape)

    hand_args = (jax.random.PRNGKey(1), *(jnp.asarray(theta[k]) for k in ("ka", "cl", "v")), jnp.asarray(sigma),
                 jnp.asarray(amt), jnp.asarray(times))
    out, wall, cpu, first = timed(lambda: by_hand(*hand_args))
    reference = np.asarray(out[0])
    record("hand-jitted vmap", out, wall, cpu, first)
    checks: dict[str, tuple[float, float, float]] = {}

    def check(name: str, ipred: np.ndarray, pred: np.ndarray) -> None:
        rel = float(np.max(np.abs(ipred - reference) / np.maximum(np.abs(reference), 1e-12)))
        z = (pred - ipred) / sigma[..., None]
        checks[name] = (rel, float(z.mean()), float(z.std()))
        print(f"  {name}: IPRED max rel. diff vs hand {rel:.1e}; residual/sigma mean {z.mean():+.5f} SD "
              f"{z.std():.5f}", flush=True)

    check("hand-jitted vmap", reference, np.asarray(out[1]))
    del out
    ipred_only = jax.jit(lambda *a: by_hand(*a)[0])
    out, wall, cpu, first = timed(lambda: ipred_only(*hand_args))
    record("hand-jitted vmap, IPRED only (no noise)", out, wall, cpu, first)
    del out

    ipred_np = np.empty(0)
    for noise in ("jax", "numpy"):
        name = f"bayestwin cohort_predictive_draws, noise={noise!r}"
        out, wall, cpu, first = timed(lambda g=noise: cohort_predictive_draws(
            spec, model, theta, {"sigma_add": sigma}, doses, times, seed=1, noise=g))
        record(name, out, wall, cpu, first)
        check(name, out[0][..., 0], out[1][..., 0])
        if noise == "numpy":
            ipred_np = out[0]
        del out
    # breakdown of the numpy path: the compiled IPRED program, then the noise
    from bayestwin.dynamics.closed_form import dose_features
    from bayestwin.inference.noise import observe_numpy
    from bayestwin.inference.outputs import output_columns, sigma_groups
    from bayestwin.inference.predictive import _cohort_program

    program = _cohort_program(spec, model, tuple(output_columns(spec, model)),
                              dose_features(jax.tree_util.tree_map(lambda a: np.asarray(a).ravel(), doses)),
                              noise=False)
    jt = {k: jnp.asarray(v) for k, v in theta.items()}
    out, wall, cpu, first = timed(lambda: program(jt, {}, None, doses, jnp.asarray(times)))
    record("  of which the compiled IPRED program", out, wall, cpu, first)
    del out
    groups = sigma_groups(spec, {"sigma_add": sigma})
    out, wall, cpu, first = timed(lambda: observe_numpy(ipred_np, spec.error, groups, seed=1))
    record("  of which the numpy noise (observe_numpy)", out, wall, cpu, first)
    del out
    ipred_np = np.empty(0)  # frees 640 MB
    gil = gil_check()

    def loop() -> tuple[np.ndarray, np.ndarray]:
        parts = [predictive_draws(spec, model, {k: v[i] for k, v in theta.items()}, {"sigma_add": sigma[i]},
                                  jax.tree_util.tree_map(lambda a, i=i: a[i], doses), times, seed=i)
                 for i in range(n)]
        return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])

    out, wall, cpu, first = timed(loop, repeats=1)
    record("bayestwin predictive_draws loop (one Twin.forecast per patient)", out, wall, cpu, first)
    check("bayestwin predictive_draws loop (one Twin.forecast per patient)", out[0][..., 0], out[1][..., 0])
    del out

    def numpyro_model(amount: jax.Array, t: jax.Array) -> None:
        with numpyro.plate("patient", n):
            ka = numpyro.sample("ka", dist.LogNormal(0.0, 1.0))
            cl = numpyro.sample("cl", dist.LogNormal(0.0, 1.0))
            v = numpyro.sample("v", dist.LogNormal(3.0, 1.0))
            sg = numpyro.sample("sigma", dist.HalfNormal(1.0))
            ke = cl / v
            ipred = numpyro.deterministic("ipred", amount[:, None] * ka[:, None] / (v[:, None] * (ka - ke)[:, None])
                                          * (jnp.exp(-ke[:, None] * t) - jnp.exp(-ka[:, None] * t)))
            numpyro.sample("y", dist.Normal(ipred, sg[:, None]).to_event(1))

    samples = {"ka": theta["ka"].T, "cl": theta["cl"].T, "v": theta["v"].T, "sigma": sigma.T}  # (draw, patient)
    for parallel in (False, True):
        predictive = Predictive(numpyro_model, posterior_samples={k: jnp.asarray(v) for k, v in samples.items()},
                                return_sites=["ipred", "y"], parallel=parallel)
        run = jax.jit(lambda key, p=predictive: p(key, jnp.asarray(amt), jnp.asarray(times)))
        out, wall, cpu, first = timed(lambda r=run: r(jax.random.PRNGKey(2)))
        name = f"NumPyro Predictive (jitted, parallel={parallel})"
        record(name, out, wall, cpu, first)
        check(name, np.moveaxis(np.asarray(out["ipred"]), 0, 1), np.moveaxis(np.asarray(out["y"]), 0, 1))
        del out

    ours = results["bayestwin cohort_predictive_draws, noise='numpy'"]
    before = results["bayestwin cohort_predictive_draws, noise='jax'"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    lines = [
        f"## Posterior predictive kernel with numpy's noise generator on CPU (issue 9, "
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC)", "",
        machine_line(("jax", "numpy", "numpyro"), f"{cores} usable; shared with other jobs: load average "
                     f"{os.getloadavg()[0]:.1f} at the end, each row's in the table"), "",
        f"`python benchmarks/predictive.py`: {n} patients, each with its own {s} posterior draws of (ka, CL, V, "
        f"sigma_add) (theophylline spec, one oral dose of 250-400 mg), predictions and new observations at {nt} "
        "times, float64; one process, the same draws for every path. Warm: the median of 3 calls after a first "
        "call that compiles (the predictive_draws loop: 1 call). CPU = process CPU time (all threads); on a "
        f"busy machine CPU / {cores} approximates the wall time of an idle one when every thread is busy.", "",
        "| path | warm wall | warm CPU | first call | load | IPRED max rel. diff vs hand | residual/sigma mean, SD |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        rel, mean, sd = checks.get(name, (float("nan"),) * 3)
        check_cells = "- | -" if name not in checks else f"{rel:.1e} | {mean:+.4f}, {sd:.4f}"
        lines.append(f"| {name} | **{r['wall']:.2f} s** | {r['cpu']:.2f} s | {r['first']:.1f} s | {r['load']:.1f} | "
                     f"{check_cells} |")
    verdict = ("met in wall time" if ours["wall"] <= 1.0 else "NOT met in wall time at this load") + (
        f"; CPU {ours['cpu']:.2f} s / {cores} cores = {ours['cpu'] / cores:.2f} s "
        + ("(met on idle cores)" if ours["cpu"] / cores <= 1.0 else "(not met even on idle cores)"))
    ratio = {name: r["wall"] / ours["wall"] for name, r in results.items()}
    lines += ["", f"Target <= 1 s for bayestwin's cohort_predictive_draws (numpy noise, the CPU default): {verdict}. "
              f"Before (noise='jax', the path of 11:33 UTC) / after: {before['wall'] / ours['wall']:.1f}x wall, "
              f"{before['cpu'] / ours['cpu']:.1f}x CPU. Ratios (warm wall) over bayestwin: NumPyro Predictive "
              f"{ratio['NumPyro Predictive (jitted, parallel=False)']:.1f}x (parallel=True: "
              f"{ratio['NumPyro Predictive (jitted, parallel=True)']:.1f}x), hand-jitted "
              f"{ratio['hand-jitted vmap']:.1f}x.", "",
              f"GIL check: while numpy's PCG64 filled {gil[2]:,} normals in a thread, the main thread's Python loop "
              f"ran {gil[0]:,} iterations; while a pure-Python loop held the GIL, {gil[1]:,}: numpy's fill "
              + ("releases the GIL." if gil[0] > 20 * max(gil[1], 1) else "did NOT clearly release the GIL."), ""]
    print("\n".join(lines))
    if not args.no_write:

        write_section(ROOT / "docs" / "benchmarks.md", lines)


if __name__ == "__main__":
    main()
