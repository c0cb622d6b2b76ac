"""Why the compiled twin program diverged more than ``MCMC.run``: divergences, step sizes, mass matrices per seed.

Issue 9: with ``bayestwin.inference.twin_program`` as ``Twin.fit``'s default, the eight-schools twin (population
fitted on schools 1-7, school 8's twin) had 2-5 divergent transitions on each of seeds 4-8 where numpyro's
``MCMC.run`` had 0-1. This script fits the same twin posterior (same population prior, same data, same NUTS
settings) through several *paths* over many seeds and reports, per path, the divergences per fit, the bulk
ESS per draw of the latent parameters, and each chain's adapted step size and inverse mass matrix:

- ``program``: ``twin_program`` itself (what ``Twin.fit`` runs);
- ``mcmc``: ``run_nuts`` (``optimized_starts`` + ``MCMC.run``, chains one after another), what ``Twin.fit``
  runs by default;
- ``mcmc_vec`` / ``mcmc_par``: the same with ``chain_method="vectorized"`` (numpyro vmaps the chains) or
  ``"parallel"`` (``pmap`` over the 4 CPU devices bayestwin asks for: what ``chain_method="auto"`` runs);
- ``functional[...]``: the program's functional NUTS rebuilt here with ONE component swapped (starts taken
  from ``optimized_starts``, chains one after another instead of in lockstep, the step-size search on),
  to attribute a difference to one component.

Run ``python validation/twin_program_divergences.py --case eight_schools --seeds 20 --paths program mcmc``;
the population fit is the one of ``tests/validation/test_posteriordb_eight_schools.py`` (theophylline: theo_sd
without patient 5, the twin on patient 5). Prints one table per path and a one-sided Mann-Whitney test of
"the path's divergences per fit exceed MCMC.run's". Not run by CI (minutes of sampling).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.infer.hmc import hmc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayestwin.inference import SamplerConfig, fit_population  # noqa: E402
from bayestwin.inference.arrays import cohort_arrays  # noqa: E402
from bayestwin.inference.fleet_kernel import quadratic_form, sufficient_statistics_apply  # noqa: E402
from bayestwin.inference.individual import (  # noqa: E402
    build_individual_model,
    mixture_log_weights,
    mixture_scaling,
    population_prior,
)
from bayestwin.inference.sampler import adam_descent, optimized_starts, run_nuts  # noqa: E402
from bayestwin.inference.twin_program import TwinConfig, twin_program  # noqa: E402
from bayestwin.models import get_model  # noqa: E402


@dataclasses.dataclass
class Case:
    """One twin posterior: the program's inputs and the sampler settings of its test."""

    name: str
    spec: Any
    model: Any
    features: frozenset[str]
    args: dict[str, jax.Array]
    doses: Any
    obs: Any
    n_components: int
    sampler: SamplerConfig


def twin_inputs(name: str, spec: Any, pop: Any, events: Any, n_components: int, sampler: SamplerConfig) -> Case:
    """The arguments ``Twin.fit`` builds for `events` (one patient) on population `pop` (as in ``Twin._fit``)."""
    model = get_model(spec.model)
    arrays = cohort_arrays(events, spec, model)
    covs = {k: (np.asarray(v[0]) if np.ndim(v) == 2 else float(v[0])) for k, v in arrays.covariates.items()}
    prior = population_prior(spec, pop.population_draws(n_components), covs)
    center, scale = mixture_scaling(prior)
    args = {k: jnp.asarray(v) for k, v in prior.items()} | {"center": jnp.asarray(center), "scale": jnp.asarray(scale)}
    if sufficient_statistics_apply(spec, arrays.features) and spec.bsv_parameters:
        args["quadratic"] = jnp.asarray(quadratic_form(prior["mu"], prior["chol_inv"]))
    doses = jax.tree_util.tree_map(lambda x: x[0], arrays.doses)
    obs = jax.tree_util.tree_map(lambda x: x[0], arrays.obs)
    return Case(name, spec, model, arrays.features, args, doses, obs, n_components, sampler)


def eight_schools() -> Case:
    """School 8's twin on the population of schools 1-7 (the settings of the posteriordb test)."""
    from model_specs.eight_schools import events, spec

    data = json.loads((ROOT / "tests" / "data" / "posteriordb_eight_schools" / "data.json").read_text())
    table = events(data)
    sampler = SamplerConfig(chains=4, warmup=500, draws=1000, seed=4, target_accept=0.9)
    pop = fit_population(spec(), table.exclude(table.frame["id"] == 8, reason="the new school"), sampler=sampler)
    assert pop.ok, pop.diagnostics.format()
    return twin_inputs("eight_schools", spec(), pop, table.patient(8), 200, sampler)


def theophylline() -> Case:
    """Patient 5's twin on the population of the other theo_sd patients (default sampler settings)."""
    from model_specs.theophylline import spec

    from bayestwin.data import load_dataset

    table = load_dataset("theo_sd")
    sampler = SamplerConfig(chains=4, warmup=500, draws=1000, seed=4)
    pop = fit_population(spec(), table.exclude(table.frame["id"] == 5, reason="the new patient"), sampler=sampler)
    assert pop.ok, pop.diagnostics.format()
    return twin_inputs("theophylline", spec(), pop, table.patient(5), 200, sampler)


# --- the paths ------------------------------------------------------------------------------------------------
Fit = dict[str, np.ndarray]  # latent (chain, draw, d), diverging (chain, draw), step_size (chain,), inv_mass (chain, d)


def path_program(case: Case, seed: int) -> Fit:
    config = TwinConfig.from_sampler(dataclasses.replace(case.sampler, seed=seed))
    run = twin_program(case.spec, case.model, case.features, case.n_components, config)
    out = run(np.int64(seed), case.args, case.doses, case.obs)
    return {"latent": np.asarray(out.latent), "diverging": np.asarray(out.diverging),
            "step_size": np.asarray(out.step_size), "inv_mass": np.asarray(out.inverse_mass_matrix),
            "start": np.asarray(out.start_potential)}


def _path_mcmc(case: Case, seed: int, chain_method: str) -> Fit:
    fn = build_individual_model(case.spec, case.model, case.features)
    sampler = dataclasses.replace(case.sampler, seed=seed, chain_method=chain_method)
    mcmc = run_nuts(fn, (case.args, case.doses, case.obs), sampler)
    last = mcmc.last_state
    inv = last.adapt_state.inverse_mass_matrix
    inv = next(iter(inv.values())) if isinstance(inv, dict) else inv
    return {"latent": np.asarray(mcmc.get_samples(group_by_chain=True)["log_theta"]),
            "diverging": np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"]),
            "step_size": np.asarray(last.adapt_state.step_size), "inv_mass": np.asarray(inv),
            "start": np.asarray(mcmc.bayestwin_starts.potential_after)}


def path_mcmc(case: Case, seed: int) -> Fit:
    return _path_mcmc(case, seed, "sequential")


def path_mcmc_vec(case: Case, seed: int) -> Fit:
    return _path_mcmc(case, seed, "vectorized")


def path_mcmc_par(case: Case, seed: int) -> Fit:
    return _path_mcmc(case, seed, "parallel")


_FUNCTIONAL: dict[Any, Callable[..., Any]] = {}


def functional(case: Case, seed: int, *, starts: str = "program", batch: str = "vmap", heuristic: bool = False,
               keys: str = "program") -> Fit:
    """The program's NUTS rebuilt with one component swapped.

    starts: ``program`` (uniform jitter + Adam inside, as the program) or ``mcmc`` (``optimized_starts`` with
    ``run_nuts``'s key); batch: ``vmap`` (lockstep, as the program) or ``map`` (``lax.map``: one chain after
    another in one program); heuristic: numpyro's ``find_heuristic_step_size``; keys: ``program`` (the
    program's NUTS keys) or ``mcmc`` (the keys ``MCMC.run`` gives each chain's ``init_kernel`` for this seed:
    ``split(split(PRNGKey(seed))[0], chains)[c]``, split once more by ``HMC.init``).
    """
    cfg = case.sampler
    n_bsv = len(case.spec.bsv_parameters)
    key = (case.name, batch, heuristic, keys)
    # MCMC's model-based NUTS keeps the mass matrix as numpyro blocks ({("z",): matrix}): its momentum
    # generator then splits its key once more per block, so the same keys give other momenta
    mass: Any = ([("z",)] if cfg.dense_mass else []) if keys == "mcmc" else cfg.dense_mass
    if key not in _FUNCTIONAL:
        log_weights = mixture_log_weights(case.spec, case.model, case.features)

        def potential(z: jax.Array, prior: Any, doses: Any, obs: Any) -> jax.Array:
            terms = log_weights(prior, prior["center"] + prior["scale"] * z, doses, obs)
            return -(logsumexp(terms) - jnp.log(terms.shape[0]))

        init_kernel, sample_kernel = hmc(
            potential_fn_gen=lambda p, d, o: (lambda zd: potential(zd["z"], p, d, o)), algo="NUTS")

        def chain(rng: jax.Array, z0: jax.Array, data: tuple[Any, ...]) -> tuple[jax.Array, ...]:
            state = init_kernel({"z": z0}, cfg.warmup, model_args=data, rng_key=rng,
                                max_tree_depth=cfg.max_tree_depth, target_accept_prob=cfg.target_accept,
                                dense_mass=mass, find_heuristic_step_size=heuristic)

            def step(s: Any, _: None) -> tuple[Any, tuple[jax.Array, ...]]:
                s = sample_kernel(s, model_args=data)
                return s, (s.z["z"], s.diverging)

            state, (z, div) = jax.lax.scan(step, state, None, length=cfg.warmup + cfg.draws)
            inv = state.adapt_state.inverse_mass_matrix
            return (z[cfg.warmup:], div[cfg.warmup:], state.adapt_state.step_size,
                    inv[("z",)] if isinstance(inv, dict) else inv)

        @jax.jit
        def starts_program(seed: jax.Array, data: tuple[Any, ...]) -> tuple[jax.Array, jax.Array, jax.Array]:
            keys = jax.random.split(jax.random.PRNGKey(seed), cfg.chains)
            k_start, k_nuts = (jax.vmap(lambda k, i=i: jax.random.split(k, 3)[i])(keys) for i in range(2))
            z0 = jax.vmap(lambda k: jax.random.uniform(k, (n_bsv,), minval=-0.5, maxval=0.5))(k_start)
            z0, pe = jax.vmap(lambda z: adam_descent(lambda x: potential(x, *data), z, cfg.init_steps, 0.05))(z0)
            best = jnp.argmin(pe)
            restarted = pe > pe[best] + max(50.0, float(n_bsv))
            return jnp.where(restarted[:, None], z0[best][None, :], z0), pe, k_nuts

        @jax.jit
        def nuts_program(k_nuts: jax.Array, z0: jax.Array, data: tuple[Any, ...]) -> tuple[jax.Array, ...]:
            if batch == "vmap":
                return jax.vmap(lambda k, z: chain(k, z, data))(k_nuts, z0)
            return jax.lax.map(lambda kz: chain(kz[0], kz[1], data), (k_nuts, z0))

        _FUNCTIONAL[key] = (starts_program, nuts_program)
    starts_program, nuts_program = _FUNCTIONAL[key]
    data = (case.args, case.doses, case.obs)
    z0, pe, k_nuts = starts_program(np.int64(seed), data)
    if starts == "mcmc":  # run_nuts's starts for this seed
        fn = build_individual_model(case.spec, case.model, case.features)
        init_key = jax.random.split(jax.random.PRNGKey(seed))[1]
        s = optimized_starts(fn, data, init_key, cfg.chains, cfg.init_steps)
        z0, pe = jnp.asarray(s.params["z"]), jnp.asarray(s.potential_after)
    if keys == "mcmc":
        run_key = jax.random.split(jax.random.PRNGKey(seed))[0]
        k_nuts = jax.vmap(lambda k: jax.random.split(k)[0])(jax.random.split(run_key, cfg.chains))
    z, div, step_size, inv_mass = nuts_program(k_nuts, z0, data)
    return {"latent": np.asarray(case.args["center"] + case.args["scale"] * z), "diverging": np.asarray(div),
            "step_size": np.asarray(step_size), "inv_mass": np.asarray(inv_mass), "start": np.asarray(pe)}


PATHS: dict[str, Callable[[Case, int], Fit]] = {
    "program": path_program,
    "mcmc": path_mcmc,
    "mcmc_vec": path_mcmc_vec,
    "mcmc_par": path_mcmc_par,
    "functional": functional,
    "functional[starts=mcmc]": lambda c, s: functional(c, s, starts="mcmc"),
    "functional[batch=map]": lambda c, s: functional(c, s, batch="map"),
    "functional[heuristic]": lambda c, s: functional(c, s, heuristic=True),
    "functional[keys=mcmc]": lambda c, s: functional(c, s, keys="mcmc"),
    # MCMC.run rebuilt: its starts, its keys, its chains one after another
    "functional[mcmc]": lambda c, s: functional(c, s, starts="mcmc", keys="mcmc", batch="map"),
}


# --- summaries ------------------------------------------------------------------------------------------------
def bulk_ess_per_draw(latent: np.ndarray) -> float:
    """The smallest bulk ESS over the latent dimensions, divided by the number of kept draws."""
    chains, draws, d = latent.shape
    ess = [float(az.ess(latent[:, :, j], method="bulk")) for j in range(d)]
    return min(ess) / (chains * draws)


def one_sided_mann_whitney(a: np.ndarray, b: np.ndarray) -> float:
    """p-value of "a tends to exceed b" (Mann-Whitney U, normal approximation with tie correction)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="greater").pvalue)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["eight_schools", "theophylline"], default="eight_schools")
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0 .. n-1 (default 20)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--paths", nargs="+", default=["program", "mcmc"], choices=sorted(PATHS))
    parser.add_argument("--target-accept", type=float, help="override the case's target acceptance")
    parser.add_argument("--save", type=Path, help="write every fit's summary here (.npz)")
    a = parser.parse_args(argv)
    case = eight_schools() if a.case == "eight_schools" else theophylline()
    if a.target_accept is not None:
        case.sampler = dataclasses.replace(case.sampler, target_accept=a.target_accept)
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    results: dict[str, dict[str, list[Any]]] = {}
    for name in a.paths:
        rec: dict[str, list[Any]] = {"div": [], "ess": [], "step": [], "inv": [], "start": [], "time": []}
        for seed in seeds:
            t = time.perf_counter()
            fit = PATHS[name](case, seed)
            rec["time"].append(time.perf_counter() - t)
            rec["div"].append(int(fit["diverging"].sum()))
            rec["ess"].append(bulk_ess_per_draw(fit["latent"]))
            rec["step"].append(fit["step_size"])
            rec["inv"].append(fit["inv_mass"].reshape(fit["inv_mass"].shape[0], -1))
            rec["start"].append(fit["start"])
        results[name] = rec
        step, inv = np.concatenate(rec["step"]), np.concatenate(rec["inv"])
        print(f"[{case.name}] {name}: divergences per fit {rec['div']} (mean {np.mean(rec['div']):.2f}, "
              f"fits with any {np.mean(np.array(rec['div']) > 0):.2f}); bulk ESS/draw median "
              f"{np.median(rec['ess']):.3f} (min {np.min(rec['ess']):.3f}); step size per chain median "
              f"{np.median(step):.4g} [{np.quantile(step, 0.1):.4g}, {np.quantile(step, 0.9):.4g}]; "
              f"inverse mass diag median {np.median(inv, axis=0).round(4).tolist()}; "
              f"first fit {rec['time'][0]:.1f} s, others {np.median(rec['time'][1:] or [0]):.2f} s", flush=True)
    if "mcmc" in results:
        for name, rec in results.items():
            if name != "mcmc":
                p_div = one_sided_mann_whitney(np.array(rec["div"]), np.array(results["mcmc"]["div"]))
                p_ess = one_sided_mann_whitney(np.array(results["mcmc"]["ess"]), np.array(rec["ess"]))
                print(f"[{case.name}] {name} vs mcmc (one-sided Mann-Whitney): divergences greater p = {p_div:.3g}; "
                      f"ESS/draw smaller p = {p_ess:.3g}")
    if a.save:
        np.savez(a.save, **{f"{n}/{k}": np.asarray(v) for n, r in results.items() for k, v in r.items()})


if __name__ == "__main__":
    main()
