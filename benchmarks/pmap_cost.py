"""Why bayestwin's population density costs more than NumPyro-direct under pmap, before and after (issue 9, PMAP).

One process. For each size N, three densities of the peer model (``peerlib.models``; float64, value + gradient on
the flat unconstrained vector):

* ``before``: bayestwin with the bolus element of commit 2b2d228, differentiated by JAX
  (``peerlib.old_kernels.autodiff_bolus``);
* ``now``: bayestwin with ``bayestwin.dynamics.bolus.bolus_unit`` (derivatives written out);
* ``NumPyro direct``: the model written directly (``peerlib.models.numpyro_model``).

Load-independent evidence first: XLA's cost analysis of each compiled value-and-gradient (flops, transcendental
calls, bytes accessed), and of its parts (prediction, likelihood, priors; ``density_cost._parts``). Then time:
each density inside a compiled loop of ``--loop`` evaluations, one chain (``jit``) and 4 chains under ``pmap``
over the 4 XLA host devices (as sampling runs them), in interleaved rounds; wall time and this process's CPU time
(``time.process_time``: all its threads; less sensitive than wall time to the other jobs on a shared machine)
per step of all chains. Before and now are also compared value by value at random points.

Usage: ``python benchmarks/pmap_cost.py [--sizes 12,200] [--rounds 15] [--loop 300]``.
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

COST_KEYS = ("flops", "transcendentals", "bytes accessed")


def cost(value_and_grad, x0) -> dict[str, float]:
    """XLA's cost analysis of the compiled `value_and_grad` at `x0` (flops, transcendentals, bytes accessed)."""
    import jax

    analysis = jax.jit(value_and_grad).lower(x0).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return {k: float(analysis.get(k, float("nan"))) for k in COST_KEYS}


def _compiled_loops(value_and_grad, x0, k: int) -> dict[int, tuple]:
    """``chains -> (compiled loop, its input)`` for 1 chain (jit) and 4 chains (pmap), compiled now."""
    import jax
    import jax.numpy as jnp
    from peerlib.profile import evaluation_loop

    loop = evaluation_loop(value_and_grad, k)
    out = {1: (jax.jit(loop), x0), 4: (jax.pmap(loop), jnp.stack([x0] * 4))}
    for f, x in out.values():
        jax.block_until_ready(f(x))
    return out


def _agreement(before, now, x0, unravel_n: int, seed: int = 0) -> tuple[float, float]:
    """Largest relative difference of value and of gradient between two densities at x0 and 4 random points."""
    import jax
    import numpy as np

    rng = np.random.default_rng(seed)
    points = [np.asarray(x0)] + [np.asarray(x0) + rng.normal(0.0, 0.3, unravel_n) for _ in range(4)]
    fb, fn = jax.jit(before), jax.jit(now)
    worst_v = worst_g = 0.0
    for x in points:
        (vb, gb), (vn, gn) = fb(x), fn(x)
        worst_v = max(worst_v, float(abs(vn - vb) / abs(vb)))
        gb, gn = np.asarray(gb), np.asarray(gn)
        worst_g = max(worst_g, float(np.max(np.abs(gn - gb) / (np.abs(gb) + 1e-12 * np.max(np.abs(gb))))))
    return worst_v, worst_g


def measure(n: int, rounds: int, k: int) -> dict:
    """Cost analyses, agreement and timings at `n` patients (see the module docstring)."""
    import jax
    import numpy as np
    from density_cost import _parts
    from peerlib.models import simulate
    from peerlib.old_kernels import autodiff_bolus
    from peerlib.profile import bayestwin_density, numpyro_density

    data = simulate(n)
    out: dict = {"cost": {}, "parts": {}, "time": {}}
    loops = {}
    with autodiff_bolus():  # traced and compiled while the old element is in place
        vg_b, _r, _u, x0 = bayestwin_density(data)
        out["cost"]["before"] = cost(vg_b, x0)
        out["parts"]["before"] = {name: cost(f, x) for name, (f, x) in _parts(data).items() if "whole" not in name}
        loops["before"] = _compiled_loops(vg_b, x0, k)
        before_jit = jax.jit(vg_b)
        before_jit(x0)
    vg_n, _r, _u, x0 = bayestwin_density(data)
    out["cost"]["now"] = cost(vg_n, x0)
    out["parts"]["now"] = {name: cost(f, x) for name, (f, x) in _parts(data).items() if "whole" not in name}
    loops["now"] = _compiled_loops(vg_n, x0, k)
    out["agreement"] = _agreement(before_jit, vg_n, x0, int(x0.size))
    nvg, nx0 = numpyro_density(data)
    out["cost"]["NumPyro direct"] = cost(nvg, nx0)
    loops["NumPyro direct"] = _compiled_loops(nvg, nx0, k)
    wall = {(name, c): [] for name in loops for c in loops[name]}
    cpu = {key: [] for key in wall}
    for _ in range(rounds):
        for name, c in wall:
            f, x = loops[name][c]
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(f(x))
            wall[(name, c)].append(1e6 * (time.perf_counter() - t0) / k)
            cpu[(name, c)].append(1e6 * (time.process_time() - c0) / k)
    out["time"] = {key: (min(wall[key]), float(np.median(wall[key])), min(cpu[key]), float(np.median(cpu[key])))
                   for key in wall}
    return out


def _print(n: int, res: dict) -> None:
    print(f"\n**N = {n}**\n\nXLA cost analysis of the compiled log density + gradient (per evaluation, one chain):\n")
    print("| density | Mflop | transcendental calls | bytes accessed (MB) |\n|---|---|---|---|")
    for name, c in res["cost"].items():
        print(f"| {name} | {c['flops'] / 1e6:.3f} | {c['transcendentals']:.0f} | {c['bytes accessed'] / 1e6:.2f} |")
    print("\nParts (value + gradient of each alone; `density_cost._parts`), Mflop before -> now:\n")
    for name in res["parts"]["now"]:
        b, w = res["parts"]["before"][name]["flops"], res["parts"]["now"][name]["flops"]
        print(f"* {name}: {b / 1e6:.3f} -> {w / 1e6:.3f}")
    v, g = res["agreement"]
    print(f"\nBefore vs now at x0 and 4 random points: largest relative difference {v:.1e} (value), {g:.1e} "
          "(gradient).\n")
    print("| density | chains | wall us per step, min | median | CPU us per step, min | median |\n"
          "|---|---|---|---|---|---|")
    for (name, c), (wmin, wmed, cmin, cmed) in res["time"].items():
        print(f"| {name} | {c} | {wmin:.1f} | {wmed:.1f} | {cmin:.1f} | {cmed:.1f} |")
    t = res["time"]
    for c in (1, 4):
        for stat, j in (("wall min", 0), ("wall median", 1), ("CPU min", 2), ("CPU median", 3)):
            b, w, p = t[("before", c)][j], t[("now", c)][j], t[("NumPyro direct", c)][j]
            print(f"* {c} chain(s), {stat}: before / NumPyro-direct {b / p:.2f}x, now / NumPyro-direct "
                  f"{w / p:.2f}x, now / before {w / b:.2f}x")


def main(argv: list[str] | None = None) -> None:
    """Print the tables (markdown) for each size."""
    import jax

    jax.config.update("jax_enable_x64", True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12,200")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--loop", type=int, default=300)
    a = ap.parse_args(argv)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} CPUs; jax {jax.__version__}"
          f", {jax.device_count()} host devices; {a.loop} evaluations per compiled loop, {a.rounds} interleaved "
          f"rounds; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    for n in (int(x) for x in a.sizes.split(",") if x):
        _print(n, measure(n, a.rounds, a.loop))
        print(f"\nload average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
