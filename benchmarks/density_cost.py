"""Where one log density + gradient of the population model goes, old kernels vs new (issue 9, brief DENS).

One process, one chain, each evaluation inside a compiled ``lax.fori_loop`` (what NUTS pays inside its compiled
while loop, no Python dispatch). Every candidate is compiled first, then timed in interleaved rounds (the
machine is shared: the minimum over rounds is the cost, the median shows the load). For each size N:

* the whole density: bayestwin with the kernels as they were (``peerlib.old_kernels``), bayestwin now, and the
  model written directly in NumPyro (``peerlib.models.numpyro_model``);
* its parts, with the current kernels: prediction (``predict_cohort``), the observation likelihood, and the
  priors with the random effects (the density with the likelihood factor hidden);
* the prediction with the old kernels, and the Bateman function written directly.

Usage: ``python benchmarks/density_cost.py [--sizes 12,200] [--rounds 15] [--loop 300]``.
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


def _loop(value_and_grad, k: int):
    import jax
    from peerlib.profile import evaluation_loop

    return jax.jit(evaluation_loop(value_and_grad, k))


def _parts(data: dict) -> dict[str, tuple]:
    """``name -> (value_and_grad, x0)`` of the density's parts with the current kernels."""
    import jax
    import jax.numpy as jnp
    from model_specs.oral_1cpt import spec
    from numpyro import handlers
    from numpyro.infer.util import potential_energy
    from peerlib.models import nonmem_frame
    from peerlib.profile import bayestwin_density

    from bayestwin.data import read_nonmem
    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.inference.likelihood import observation_loglik
    from bayestwin.inference.population import build_population_model, predict_cohort
    from bayestwin.models import get_model

    s = spec()
    model = get_model(s.model)
    arrays = cohort_arrays(read_nonmem(nonmem_frame(data), units={"time": "h", "amt": "mg", "dv": "mg/L"}), s, model)
    n = arrays.n_patients
    obs = arrays.obs
    x_pred = jnp.log(jnp.stack([jnp.full(n, 1.0), jnp.full(n, 4.0), jnp.full(n, 70.0)]))

    def prediction(x):
        theta = {"ka": jnp.exp(x[0]), "cl": jnp.exp(x[1]), "v": jnp.exp(x[2])}
        return jnp.sum(predict_cohort(model, theta, arrays.doses, obs.time, arrays.features))

    def likelihood(x):  # the predictions and log sigma as free inputs
        pred = jnp.reshape(x[:-1], obs.time.shape)
        return jnp.sum(observation_loglik(obs.value, pred, kind="proportional", sigmas={"sigma_prop": jnp.exp(x[-1])},
                                          cens=obs.cens, limit=obs.limit, mask=obs.mask, censored=False))

    x_lik = jnp.concatenate([jnp.where(obs.mask, obs.value, 1.0).ravel() * 1.1, jnp.array([-2.0])])
    vg, _ravel, unravel, x0 = bayestwin_density(data)
    fn = build_population_model(s, model, arrays.features)
    args = (arrays.doses, arrays.obs, dict(arrays.covariates))

    blocked = handlers.block(fn, hide=["obs_loglik"])

    def priors(x):  # the density without its likelihood factor (XLA drops the unused prediction)
        return -potential_energy(blocked, args, {}, unravel(x))

    return {"whole density (new kernels)": (vg, x0), "prediction only: predict_cohort": (
        jax.value_and_grad(prediction), x_pred), "likelihood only (proportional, uncensored)": (
        jax.value_and_grad(likelihood), x_lik), "priors + random effects (+ transforms)": (
        jax.value_and_grad(priors), x0)}


def _bateman(data: dict):
    import jax
    import jax.numpy as jnp

    pid, t, dose = (jnp.asarray(data[k]) for k in ("pid", "t", "dose"))
    n = int(dose.size)
    x0 = jnp.log(jnp.stack([jnp.full(n, 1.0), jnp.full(n, 4.0), jnp.full(n, 70.0)]))

    def naive(x):
        ka, cl, v = (jnp.exp(x[j])[pid] for j in range(3))
        ke = cl / v
        return jnp.sum(dose[pid] * ka / (v * (ka - ke)) * (jnp.exp(-ke * t) - jnp.exp(-ka * t)))
    return jax.value_and_grad(naive), x0


def measure(n: int, rounds: int, k: int) -> dict[str, tuple[float, float]]:
    """``name -> (min, median)`` microseconds per log density + gradient for `n` patients."""
    import jax
    import numpy as np
    from peerlib.models import simulate
    from peerlib.old_kernels import old_kernels
    from peerlib.profile import bayestwin_density, numpyro_density

    data = simulate(n)
    runs = {}
    vg, _r, _u, x0 = bayestwin_density(data)
    parts = _parts(data)
    with old_kernels():  # traced and compiled while the old superpose is in place
        old = _loop(vg, k)
        jax.block_until_ready(old(x0))
        old_pred = _loop(parts["prediction only: predict_cohort"][0], k)
        jax.block_until_ready(old_pred(parts["prediction only: predict_cohort"][1]))
    runs["whole density (old kernels)"] = (old, x0)
    for name, (f, x) in parts.items():
        if name.startswith("whole"):
            runs[name] = (_loop(f, k), x)
    nvg, nx0 = numpyro_density(data)
    runs["whole density: NumPyro written directly"] = (_loop(nvg, k), nx0)
    for name, (f, x) in parts.items():
        if not name.startswith("whole"):
            runs[name + " (new)" if "predict" in name else name] = (_loop(f, k), x)
    runs["prediction only: predict_cohort (old)"] = (old_pred, parts["prediction only: predict_cohort"][1])
    runs["prediction only: Bateman function written directly"] = (_loop(*_bateman(data)[:1], k), _bateman(data)[1])
    for f, x in runs.values():
        jax.block_until_ready(f(x))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (f, x) in runs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(x))
            times[name].append(1e6 * (time.perf_counter() - t0) / k)
    return {name: (min(v), float(np.median(v))) for name, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    """Print the table (markdown) for each size."""
    import jax

    jax.config.update("jax_enable_x64", True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12,200")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--loop", type=int, default=300)
    a = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} CPUs;"
          f" jax {jax.__version__}; "
          f"1 chain, {a.loop} evaluations per compiled loop, {a.rounds} interleaved rounds; load average "
          f"{load0:.1f} at the start", flush=True)
    for n in (int(x) for x in a.sizes.split(",") if x):
        res = measure(n, a.rounds, a.loop)
        print(f"\nN = {n}\n\n| us per log density + gradient | min | median |\n|---|---|---|")
        for name, (mn, md) in res.items():
            print(f"| {name} | {mn:.1f} | {md:.1f} |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
