"""ESS per gradient over several sampler seeds: bayestwin's warm-ups vs nutpie (issue 9, NUT3).

One run's minimum bulk ESS varies by about +-15 % between seeds, so a comparison of adaptations on one seed
cannot tell a 1.3x gap from noise. This script fits the peer benchmark's oral one-compartment population model
(``peerlib``; data fixed, simulated with the peer seed) with every requested engine and every seed, and
reports per run and per engine (mean, standard deviation, range over seeds): minimum bulk ESS over the seven
population parameters, ESS per 1,000 gradient evaluations (warm-up and draws, all chains), leapfrog steps per
draw and per warm-up iteration, the adapted step size (mean over chains), divergences, and ESS per second of
sampling (compilation excluded; load-dependent).

Engines: ``stan`` / ``gradient`` (``fit_population`` with ``SamplerConfig(adaptation=...)``, warm-up counted
by ``peerlib.engines._CountingMCMC``), ``nutpie`` (its own sampler, PyMC model, numba).

Measured 2026-11-27 19:44-20:14 UTC (4 chains x 1,000 + 1,000, target 0.8, 2-core box shared with other
jobs, load 10-19), mean (sd) over sampler seeds 1, 2, 3:

* N = 200: ESS per 1k gradients gradient 3.52 (0.06) vs nutpie 3.42 (0.41); min ESS 852 (836-862) vs 907
  (784-983); leapfrog steps per draw 30.2 vs 32.4; step size 0.240 vs 0.245. **No gap in ESS per gradient**:
  the "1.3x ESS" of earlier runs was nutpie's best seed (983) against one bayestwin seed.
* N = 12: ESS per 1k gradients 5.01 (0.48) vs nutpie 5.89 (0.43) (nutpie 1.18x, ~2.4 standard errors);
  min ESS 813 (721-899) vs 1,239 (1,162-1,299); steps per draw 19.4 vs 25.4 at step sizes 0.356 vs 0.374: nutpie
  integrates ~1.4x longer per draw (see ``--turning``).
* N = 12, gradient warm-up with ``--turning full`` (20:54-20:58 UTC, load 11-16): ESS per 1k gradients 5.67
  (0.56; 5.27-6.31) vs 5.01 with NumPyro's test and nutpie's 5.89; min ESS 1,377 (1,215-1,592) vs 813;
  leapfrog steps per draw 30.1 (nutpie 25.4: it stops earlier through its two extra sub-tree checks); step
  size 0.360; ESS/s 177 vs 122 (loads differ). The whole-sum U-turn test closes the per-gradient gap to nutpie
  within noise (nutpie / whole-sum 1.04x). Not yet run at N = 200 (no per-gradient gap there to close).

``--turning full`` (an experiment, bayestwin engines only): NumPyro's U-turn test subtracts half of each end's
momentum from the trajectory's momentum sum before the two dot products (``numpyro.infer.hmc_util.
_momentum_angle``, Betancourt 2017, A.4.2); Stan and nutpie (nuts-rs 0.17.4, ``EuclideanPoint::is_turning``)
use the whole sum. This option replaces NumPyro's function by the whole-sum test for the run (a benchmark-only
patch; nuts-rs also checks the two cross-subtree pairs at every merge, which is not replicated here).

Usage: ``python benchmarks/ess_seeds.py [--sizes 200] [--engines gradient,nutpie] [--seeds 1,2,3]
[--turning full]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
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
from peerlib.models import simulate  # noqa: E402

import bayestwin  # noqa: E402,F401  (4 XLA host devices before JAX starts)

KEYS = ("ess", "ess_per_k", "steps", "warm_steps", "step_size", "div", "ess_s")


def fit(engine: str, data: dict, s: Settings):
    if engine == "nutpie":
        return run_nutpie(data, s)
    return run_bayestwin(data, s, adaptation=engine, count_warmup=True)


def patch_turning() -> None:
    """NumPyro's U-turn test with the whole momentum sum (Stan's and nuts-rs's), for this process."""
    import jax.numpy as jnp
    import numpyro.infer.hmc_util as hu
    from jax.flatten_util import ravel_pytree

    original = hu._momentum_angle

    def whole_sum(inverse_mass_matrix, r_left, r_right, r_sum):
        if isinstance(inverse_mass_matrix, dict) or jnp.ndim(inverse_mass_matrix) != 1:
            return original(inverse_mass_matrix, r_left, r_right, r_sum)
        r_left, r_right, r_sum = (ravel_pytree(r)[0] for r in (r_left, r_right, r_sum))
        return (jnp.dot(inverse_mass_matrix * r_left, r_sum), jnp.dot(inverse_mass_matrix * r_right, r_sum))

    hu._momentum_angle = whole_sum


def spread(rows: list[dict]) -> str:
    parts = []
    for k in KEYS:
        v = np.array([np.nan if r[k] is None else r[k] for r in rows], float)
        parts.append(f"{k} {np.mean(v):.3g} (sd {np.std(v, ddof=1) if v.size > 1 else 0:.2g}, "
                     f"{np.min(v):.3g}-{np.max(v):.3g})")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="200")
    ap.add_argument("--engines", default="gradient,nutpie")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--turning", default="numpyro", choices=("numpyro", "full"))
    a = ap.parse_args(argv)
    if a.turning == "full":
        patch_turning()
    warnings.simplefilter("ignore")
    print(f"load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    seeds = [int(x) for x in a.seeds.split(",") if x]
    for n in (int(x) for x in a.sizes.split(",") if x):
        data = simulate(n)
        for engine in a.engines.split(","):
            rows = []
            for seed in seeds:
                t0 = time.perf_counter()
                row = summarise(fit(engine, data, dataclasses.replace(Settings(), seed=seed)))
                rows.append(row)
                print(f"N={n} {engine} seed {seed}: ESS {row['ess']:.0f} ({row['worst']}), per 1k grad "
                      f"{row['ess_per_k']:.2f}, steps/draw {row['steps']:.1f}, warm-up {row['warm_steps']}, step "
                      f"{row['step_size']}, div {row['div']}, R-hat {row['rhat']:.3f}, ESS/s {row['ess_s']:.1f} "
                      f"({time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f})", flush=True)
            print(f"N={n} {engine} over seeds {seeds}: {spread(rows)}", flush=True)


if __name__ == "__main__":
    main()
