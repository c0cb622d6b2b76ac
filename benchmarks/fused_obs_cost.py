"""Today's population observation block vs the fused one (``bayestwin.inference.fused_obs``), under pmap (issue 9).

One process, float64, the peer model of ``peerlib.models`` (one-compartment oral PK, one dose, ten samples per
patient, proportional error, the ``oral_1cpt`` spec). Both candidates are bayestwin's whole population potential
(NumPyro ``potential_fn``, value + gradient, as the sampler calls it) built by ``build_population_model`` with
``fused=False`` (today's generic path: ``predict_cohort`` + ``outputs_loglik`` by autodiff) and ``fused=True``
(the observation block with its gradient written out). Each runs inside a compiled ``lax.fori_loop`` of
``--loop`` evaluations, 4 chains under ``pmap`` over the 4 XLA host devices (how ``fit_population`` samples) and
optionally one chain (``jit``), in ``--rounds`` interleaved rounds; CPU = this process's CPU time per step of all
chains, min and median. Agreement of value and gradient is checked first at the start point and random points.

Usage: ``python benchmarks/fused_obs_cost.py [--sizes 12,200] [--rounds 21] [--loop 300] [--chains 4]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bayestwin  # noqa: E402,F401  (before jax: 4 host devices, as in sampling)


def densities(n: int) -> tuple[dict, object]:
    """``({name: value_and_grad on the flat vector}, x0)`` of today's and the fused population potential."""
    import jax
    from jax.flatten_util import ravel_pytree
    from model_specs.oral_1cpt import spec
    from numpyro.infer.util import initialize_model
    from peerlib.models import nonmem_frame, simulate

    from bayestwin.data import read_nonmem
    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.inference.population import build_population_model
    from bayestwin.models import get_model

    data = simulate(n)
    s = spec()
    model = get_model(s.model)
    arrays = cohort_arrays(read_nonmem(nonmem_frame(data), units={"time": "h", "amt": "mg", "dv": "mg/L"}), s, model)
    args = (arrays.doses, arrays.obs, dict(arrays.covariates))
    out = {}
    x0 = None
    for name, fused in (("today (fused=False)", False), ("fused block (fused=True)", True)):
        fn = build_population_model(s, model, arrays.features, fused=fused)
        info, potential, _, _ = initialize_model(jax.random.PRNGKey(0), fn, model_args=args)
        z0, unravel = ravel_pytree(info.z)
        x0 = z0 if x0 is None else x0
        out[name] = jax.value_and_grad(lambda x, p=potential, u=unravel: -p(u(x)))
    return out, x0


def main(argv: list[str] | None = None) -> None:
    """Print agreement and a markdown timing table per size."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from grad_floor import hlo_counts
    from peerlib.profile import evaluation_loop

    jax.config.update("jax_enable_x64", True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12,200")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--loop", type=int, default=300)
    ap.add_argument("--chains", default="4", help="1: one chain (jit); c > 1: c chains under pmap")
    a = ap.parse_args(argv)
    chains = tuple(int(c) for c in a.chains.split(","))
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} CPUs; "
          f"jax {jax.__version__}; {a.loop} evaluations per loop, {a.rounds} interleaved rounds; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start", flush=True)
    for n in (int(x) for x in a.sizes.split(",") if x):
        cands, x0 = densities(n)
        ref = jax.jit(cands["today (fused=False)"])
        new = jax.jit(cands["fused block (fused=True)"])
        rng = np.random.default_rng(1)
        dv = dg = 0.0
        for x in [np.asarray(x0)] + [rng.normal(0.0, 0.7, x0.size) for _ in range(6)]:
            (v0, g0), (v1, g1) = ref(x), new(x)
            dv = max(dv, abs(float(v1 - v0)) / abs(float(v0)))
            dg = max(dg, float(np.max(np.abs(g1 - g0)) / np.max(np.abs(g0))))
        print(f"\n**N = {n}**: agreement over 7 points: value {dv:.1e}, gradient {dg:.1e} (relative to its largest "
              "entry)\n", flush=True)
        counts = {name: hlo_counts(f, x0) for name, f in cands.items()}
        loops = {}
        for name, f in cands.items():
            loop = evaluation_loop(f, a.loop)
            for c in chains:
                xs = jnp.asarray(x0) if c == 1 else jnp.stack([jnp.asarray(x0) * (1.0 + 0.01 * i) for i in range(c)])
                run = jax.jit(loop) if c == 1 else jax.pmap(loop)
                jax.block_until_ready(run(xs))
                loops[(name, c)] = (run, xs)
        cpu: dict = {key: [] for key in loops}
        wall: dict = {key: [] for key in loops}
        for _ in range(a.rounds):
            for key, (run, xs) in loops.items():
                c0, t0 = time.process_time(), time.perf_counter()
                jax.block_until_ready(run(xs))
                wall[key].append(1e6 * (time.perf_counter() - t0) / a.loop)
                cpu[key].append(1e6 * (time.process_time() - c0) / a.loop)
        print("| candidate | chains | CPU us min | CPU median | wall us min | wall median | Mflop | transc. |\n"
              "|---|---|---|---|---|---|---|---|")
        for (name, c), xs in cpu.items():
            h = counts[name]
            print(f"| {name} | {c} | {min(xs):.1f} | {np.median(xs):.1f} | {min(wall[(name, c)]):.1f} | "
                  f"{np.median(wall[(name, c)]):.1f} | {h['Mflop']:.3f} | {h['transcendentals']:.0f} |")
        for c in chains:
            old, new_ = cpu[("today (fused=False)", c)], cpu[("fused block (fused=True)", c)]
            print(f"\n{c} chain(s): fused / today CPU min {min(new_) / min(old):.3f}, median "
                  f"{np.median(new_) / np.median(old):.3f}; per-round ratio median "
                  f"{np.median(np.array(new_) / np.array(old)):.3f}")
        print(f"\nload average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
