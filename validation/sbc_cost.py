"""Where an SBC fit spends its leapfrog steps: a measurement tool for the ODE models' SBC cost (issues 5, 7).

For a few SBC replications of a built-in model (the same prior draws and simulated data as
``bayestwin.validation.run_sbc``), run one NUTS chain per replication and report, per fit: mean leapfrog
steps per iteration in the first and second half of warm-up and in sampling, the adapted step size, the
fraction of sampling iterations that hit the maximum tree depth, divergences, and wall time. Optionally the
same fits in lockstep (``vmap`` over the replications) to measure what the slowest lane costs the others.

Usage::

    python validation/sbc_cost.py pk.one_cmt_oral_mm --replications 3 --warmup 300 --draws 200 \
        [--centred] [--diagonal] [--patients 12] [--times 0.5,1,2,4,6,8,12,24] [--dose-levels 0.1,1,10] \
        [--warm-depth 6] [--lockstep]

Prints one JSON line per fit and a summary line. Not a test: ``make validate`` does not run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc
from numpyro.infer.util import initialize_model

from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.population import build_population_model
from bayestwin.inference.sampler import init_near_prior_median
from bayestwin.models import get_model
from bayestwin.testing import DEFAULT_TIMES, default_spec, simulate_cohort
from bayestwin.validation.sbc import _simulate


def build(name: str, *, centred: bool | None, n_patients: int, times: tuple[float, ...], n_rep: int,
          seed: int = 0, dose_levels: tuple[float, ...] = (1.0,)):
    """Data of `n_rep` SBC replications (as run_sbc draws them) and the fitting model.

    `dose_levels`: patient i gets ``100 * dose_levels[i % len(dose_levels)]`` (run_sbc: 100 for all).
    """
    model = get_model(name)
    spec = default_spec(model)
    if centred is not None:
        spec = dataclasses.replace(spec, centered=centred)
    table, _ = simulate_cohort(spec, n_patients=n_patients, times=times, dose=100.0, seed=seed)
    arrays = cohort_arrays(table, spec, model)
    levels = jnp.asarray([dose_levels[i % len(dose_levels)] for i in range(n_patients)])
    arrays = dataclasses.replace(arrays, doses=arrays.doses._replace(amt=arrays.doses.amt * levels[:, None]))
    covs = {k: jnp.asarray(v) for k, v in arrays.covariates.items()}
    key_prior, key_noise = jax.random.split(jax.random.PRNGKey(seed))
    truth, values = _simulate(spec, model, arrays, covs, n_rep, key_prior, key_noise)
    fit_fn = build_population_model(spec, model, arrays.features)
    return spec, model, arrays, covs, truth, values, fit_fn


def make_fit(fit_fn, data0, *, warmup: int, draws: int, dense: bool, max_tree_depth: int | tuple[int, int],
             target: float):
    """One NUTS chain as a pure function of (key, data): per-iteration steps, step size, divergence."""
    info = initialize_model(jax.random.PRNGKey(0), fit_fn, model_args=data0, dynamic_args=True,
                            init_strategy=init_near_prior_median(radius=0.0))
    z0 = info.param_info.z
    init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")

    def one(key, data):
        state = init_kernel(z0, warmup, model_args=data, rng_key=key, max_tree_depth=max_tree_depth,
                            target_accept_prob=target, dense_mass=dense)

        def step(s, _):
            s = sample_kernel(s, model_args=data)
            return s, (s.num_steps, s.adapt_state.step_size, s.diverging)

        state, warm = jax.lax.scan(step, state, None, length=warmup)
        state, samp = jax.lax.scan(step, state, None, length=draws)
        return warm, samp

    return one


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--replications", type=int, default=3)
    p.add_argument("--first", type=int, default=0, help="first replication to fit")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--patients", type=int, default=12)
    p.add_argument("--times", default=",".join(map(str, DEFAULT_TIMES)))
    p.add_argument("--dose-levels", default="1", help="dose multipliers cycled over patients, e.g. 0.1,1,10")
    p.add_argument("--centred", action="store_true")
    p.add_argument("--diagonal", action="store_true")
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--warm-depth", type=int, default=0, help="max tree depth in warm-up (default: --depth)")
    p.add_argument("--target", type=float, default=0.8)
    p.add_argument("--lockstep", action="store_true", help="also fit the replications vmapped together")
    a = p.parse_args()
    times = tuple(float(t) for t in a.times.split(","))
    n = a.first + a.replications
    spec, _, arrays, covs, truth, values, fit_fn = build(
        a.model, centred=True if a.centred else None, n_patients=a.patients, times=times, n_rep=n,
        dose_levels=tuple(float(x) for x in a.dose_levels.split(",")))
    obs = arrays.obs

    def data(r):
        return (arrays.doses, obs._replace(value=values[r]), covs)

    one = make_fit(fit_fn, data(0), warmup=a.warmup, draws=a.draws, dense=not a.diagonal,
                   max_tree_depth=(a.warm_depth or a.depth, a.depth), target=a.target)
    fit = jax.jit(one)
    cfg = {"model": a.model, "centred": bool(spec.centered), "dense": not a.diagonal, "patients": a.patients,
           "samples": len(times),
           "dose_levels": a.dose_levels, "warmup": a.warmup, "draws": a.draws, "depth": a.depth,
           "warm_depth": a.warm_depth or a.depth, "target": a.target}
    t0 = time.perf_counter()
    fit.lower(jax.random.PRNGKey(0), data(0)).compile()
    cfg["compile_s"] = round(time.perf_counter() - t0, 1)
    sat = 2 ** a.depth - 1
    rows = []
    for r in range(a.first, n):
        t0 = time.perf_counter()
        warm, samp = jax.block_until_ready(fit(jax.random.PRNGKey(100 + r), data(r)))
        wall = time.perf_counter() - t0
        ws, _, _ = (np.asarray(x) for x in warm)
        ss, eps, div = (np.asarray(x) for x in samp)
        h = a.warmup // 2
        row = {"rep": r, "warm1_steps": float(ws[:h].mean()), "warm2_steps": float(ws[h:].mean()),
               "samp_steps": float(ss.mean()), "step_size": float(eps[-1]), "saturated": float((ss >= sat).mean()),
               "divergences": int(div.sum()), "wall_s": round(wall, 1),
               "ms_per_step": round(1e3 * wall / (ws.sum() + ss.sum()), 3),
               "truth": {k: round(float(truth[k][r]), 3) for k in truth if np.ndim(truth[k]) == 1}}
        rows.append(row)
        print(json.dumps(cfg | row), flush=True)
    summ = {k: float(np.median([r[k] for r in rows])) for k in
            ("warm1_steps", "warm2_steps", "samp_steps", "step_size", "saturated", "wall_s", "ms_per_step")}
    print("SUMMARY", json.dumps(cfg | {"median": summ, "replications": a.replications}), flush=True)
    if a.lockstep and a.replications > 1:
        reps = np.arange(a.first, n)
        keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(100 + reps))
        batch = (arrays.doses, obs._replace(value=values[reps]), covs)
        axes = (None, obs._replace(**{f: None for f in obs._fields if f != "value"}, value=0), None)
        lock = jax.jit(jax.vmap(one, in_axes=(0, axes)))
        lock.lower(keys, batch).compile()
        t0 = time.perf_counter()
        jax.block_until_ready(lock(keys, batch))
        wall = time.perf_counter() - t0
        print("LOCKSTEP", json.dumps({"lanes": a.replications, "wall_s": round(wall, 1),
                                      "sum_of_single_s": round(sum(r["wall_s"] for r in rows), 1),
                                      "max_single_s": max(r["wall_s"] for r in rows)}), flush=True)


if __name__ == "__main__":
    main()
