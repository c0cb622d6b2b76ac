"""Twin-level simulation-based calibration: one patient's parameters given a population, all replications at once.

The clinical use of a model is the twin: one patient's parameters ``u`` (and the population component ``k``
that fixes the residual SD and the parameters without BSV) given K draws ``phi_k`` of the population,

    p(u, k | y) ∝ N(u; mu_k, Sigma_k) p(y | theta(u, phi_k), sigma_k)    (k uniform on 1..K),

the posterior ``Twin.fit`` and ``fit_fleet`` sample (``bayestwin.inference.individual``). Twin-level SBC
checks that posterior: for r = 1..R draw ``k`` uniformly, ``u ~ N(mu_k, Sigma_k)``, simulate the patient's
observations on a fixed design with residual SD ``sigma_k``, fit the twin, and rank the true ``u`` (each
parameter with BSV) and the true residual SDs and parameters without BSV (functions of ``k``) among L thinned
posterior draws. Every rank is uniform on {0..L} when the sampler computes that posterior (Talts et al. 2018).
Ties (a draw whose component is the true one gives exactly the true SD) are broken uniformly at random,
the standard treatment of discrete quantities.

This is **not** the population-level SBC of ``run_sbc``: the population posterior is given (K fixed draws),
not inferred, so it checks the twin's prior mixture, likelihood, ODE solution and sampler for one patient,
not a cohort fit. It is what makes the ODE models checkable on a few cores: a twin has 4-7 latent dimensions
instead of ~70.

All R replications are fitted by ONE compiled program, the one behind ``fit_fleet``
(``bayestwin.inference.fleet_kernel.fleet_program``), with the replications as its patients: each adapts
its own step size and mass matrix, the lanes run in lockstep (``vmap``) and the groups one after another.

Uniformity test: the chi-square test of binned ranks of ``SBCResult`` (at most 20 bins, at least 5
expected per bin), Bonferroni over the Q ranked quantities (family-wise false-failure rate at most ``alpha``).
Power check: fitting with a broken population (``scale_bsv(draws, 1/3)``: every BSV SD divided by 3, the
twin prior three times too narrow) must fail.

Examples
--------
>>> from bayestwin.models import get_model
>>> from bayestwin.testing import default_spec
>>> spec = default_spec(get_model("pk.one_cmt_iv"))
>>> population = synthetic_population(spec, n_components=4, seed=0)
>>> sorted(population), population["omega_cl"].shape
(['omega_cl', 'omega_v', 'sigma_prop', 'tv_cl', 'tv_v'], (4,))
>>> bool((scale_bsv(population, 0.5)["omega_v"] == 0.5 * population["omega_v"]).all())
True
>>> res = run_twin_sbc(spec, population, n_replications=30)   # doctest: +SKIP
>>> print(res.format())                                        # doctest: +SKIP
SBC twin:check.pk.one_cmt_iv (pk.one_cmt_iv): PASSED -- 30 replications, ranks among 100 draws, 6 bins; ...
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayestwin.data import EventTable, read_nonmem
from bayestwin.exceptions import SpecError
from bayestwin.inference.arrays import CohortArrays, cohort_arrays
from bayestwin.inference.fit import population_quantities
from bayestwin.inference.fleet_kernel import FleetConfig, fleet_program, quadratic_form, sufficient_statistics_apply
from bayestwin.inference.individual import mixture_scaling, population_prior
from bayestwin.inference.latent import to_natural
from bayestwin.inference.outputs import output_columns, select_outputs, sigma_groups, simulate_observations
from bayestwin.inference.priors import to_numpyro
from bayestwin.models.registry import get_model
from bayestwin.spec import TwinSpec
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.testing.centring import dense_mass_for
from bayestwin.testing.design import DEFAULT_TIMES
from bayestwin.validation.sbc import SBCResult, _max_rhat

__all__ = ["run_twin_sbc", "scale_bsv", "synthetic_population", "twin_design"]

#: A dose of the design: (time, amount, compartment name or None for the model's default).
Dose = tuple[float, float, str | None]


def twin_design(spec: TwinSpec, doses: Sequence[Dose] = ((0.0, 100.0, None),),
                times: Sequence[float] = DEFAULT_TIMES) -> EventTable:
    """One patient's events: `doses`, and every observed output of `spec` sampled at `times` (DV placeholders).

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.testing import default_spec
    >>> table = twin_design(default_spec(get_model("pk.one_cmt_oral")), times=(1.0, 4.0))
    >>> table.n_patients, len(table.observations)
    (1, 2)
    """
    model = get_model(spec.model)
    dosed = bool(model.compartments)
    obs_cmt = ("central" if "central" in model.compartments else model.compartments[-1]) if dosed else 0
    rows: list[dict[str, Any]] = []
    if dosed:
        rows += [{"ID": 1, "TIME": float(t), "EVID": 1, "AMT": float(a), "DV": ".",
                  "CMT": cmt or model.default_dose_compartment, "DVID": 1} for t, a, cmt in doses]
    for k, _ in enumerate(spec.observed_outputs, start=1):
        rows += [{"ID": 1, "TIME": float(t), "EVID": 0, "AMT": 0.0, "DV": 1.0, "CMT": obs_cmt, "DVID": k}
                 for t in times]
    frame = pd.DataFrame(rows).sort_values(["TIME", "EVID"], ascending=[True, False], kind="stable")
    units = {"time": spec.unit("time"), "amt": spec.unit("amt"), "dv": spec.unit(spec.observed_outputs[0])}
    units |= {f"dv[{k}]": spec.unit(o) for k, o in enumerate(spec.observed_outputs, start=1) if k > 1}
    return read_nonmem(frame.reset_index(drop=True), units=units)


def synthetic_population(spec: TwinSpec, n_components: int = 100, *, spread: float = 0.05,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """K synthetic population-posterior draws: the prior medians of `spec`'s population parameters, jittered.

    Centre: the median of 4,000 draws from the prior of every population quantity (typical values, BSV SDs,
    residual SDs; ``population_quantities``). Each of the `n_components` draws multiplies every positive
    quantity by ``exp(spread * N(0, 1))`` and shifts every other one by ``spread`` times its prior SD: what a
    posterior from a cohort of a few tens of patients looks like (relative SD ~10 %). Fixed typical values are
    kept; correlated BSV gets the identity correlation. Keyed as ``PopulationFit.population_draws``.

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.testing import default_spec
    >>> pop = synthetic_population(default_spec(get_model("pk.one_cmt_oral")), n_components=3)
    >>> round(float(np.median(pop["tv_ka"])), 1), pop["sigma_prop"].shape
    (1.0, (3,))
    """
    if spec.covariates:
        raise SpecError(f"synthetic_population: spec {spec.name!r} has covariate effects; give a spec without "
                        "covariates (the twin-level SBC design has none)")
    priors = {f"tv_{p.name}": p.typical for p in spec.parameters if p.estimated}
    priors |= {f"omega_{p.name}": p.bsv for p in spec.parameters if p.has_bsv}
    priors |= {site: dict(spec.error[j].priors)[sd] for site, j, sd in spec.sigma_sites}
    rng = np.random.default_rng(seed)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(priors))
    out: dict[str, np.ndarray] = {}
    for key, name in zip(keys, population_quantities(spec), strict=True):
        values = np.asarray(to_numpyro(priors[name], site=name).sample(key, (4000,)), dtype=float)
        centre = float(np.median(values))
        noise = rng.normal(size=n_components)
        out[name] = (centre * np.exp(spread * noise) if values.min() > 0
                     else centre + spread * float(values.std()) * noise)
    for p in spec.parameters:
        if p.fixed is not None:
            out[f"tv_{p.name}"] = np.full(n_components, float(p.fixed))
    if spec.correlation is not None:
        d = len(spec.bsv_parameters)
        out["corr_chol"] = np.broadcast_to(np.eye(d), (n_components, d, d)).copy()
    return out


def scale_bsv(population: Mapping[str, np.ndarray], factor: float, *, sigma: float = 1.0) -> dict[str, np.ndarray]:
    """`population` with every BSV SD (``omega_*``) times `factor` and every residual SD (``sigma_*``) times `sigma`.

    A broken twin prior for the power check: ``scale_bsv(pop, 1/3)`` makes the prior of every parameter with
    BSV three times too narrow; ``sigma=1/3`` also makes the fit trust the observations three times too much
    (the twin analogue of ``misspecified_prior``, which divides every prior scale by 3).

    Examples
    --------
    >>> pop = {"omega_cl": np.array([0.3]), "tv_cl": np.array([2.0]), "sigma_prop": np.array([0.2])}
    >>> broken = scale_bsv(pop, 0.5)
    >>> broken["omega_cl"].tolist(), broken["tv_cl"].tolist(), broken["sigma_prop"].tolist()
    ([0.15], [2.0], [0.2])
    >>> scale_bsv(pop, 1.0, sigma=0.5)["sigma_prop"].tolist()
    [0.1]
    """
    def scaled(name: str, v: np.ndarray) -> np.ndarray:
        if name.startswith("omega_"):
            return np.asarray(v) * factor
        return np.asarray(v) * sigma if name.startswith("sigma_") else np.asarray(v)

    return {k: scaled(k, v) for k, v in population.items()}


def _fit_prior(spec: TwinSpec, draws: Mapping[str, np.ndarray], features: frozenset[str]) -> dict[str, np.ndarray]:
    """The twin's mixture prior in the fleet program's layout (as ``fit_fleet`` builds it, no covariates)."""
    prior = dict(population_prior(spec, draws, {}))
    prior["center"], prior["scale"] = mixture_scaling(prior)
    if sufficient_statistics_apply(spec, features) and spec.bsv_parameters:
        prior["quadratic"] = quadratic_form(prior["mu"], prior["chol_inv"])
    return prior


_SIMULATORS: dict[Any, Any] = {}


def _simulator(spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str]) -> Any:
    """Compiled ``(keys, u, comp, prior, doses, obs) -> observations`` per spec (traced once per shape)."""
    key = (spec.digest(), model.name, features)
    if key in _SIMULATORS:
        return _SIMULATORS[key]
    bsv = [spec.parameter(name) for name in spec.bsv_parameters]
    others = [p.name for p in spec.parameters if not p.has_bsv]
    columns = output_columns(spec, model)

    def one(key: jax.Array, u_r: jax.Array, k: jax.Array, prior: Mapping[str, jax.Array], doses: Any,
            obs: Any) -> jax.Array:
        times = jnp.where(jnp.isfinite(obs.time), obs.time, 0.0)
        theta = ({p.name: to_natural(p, u_r[j]) for j, p in enumerate(bsv)}
                 | {name: prior["fixed"][k, j] for j, name in enumerate(others)})
        pred = select_outputs(model.predict(theta, doses, times, features=features), obs.output, columns)
        sigmas = sigma_groups(spec, {s: prior[s][k] for s in spec.sigma_names})
        y = simulate_observations(key, pred, obs.output, errors=spec.error, sigmas=sigmas)
        return jnp.where(obs.mask, y, obs.value)

    _SIMULATORS[key] = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, None, None)))
    return _SIMULATORS[key]


def _simulate(spec: TwinSpec, model: AbstractStructuralModel, arrays: CohortArrays, prior: Mapping[str, np.ndarray],
              n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True components (n,), latent values (n, n_bsv) and observations (n, n_obs) drawn from the twin prior."""
    k_comp, k_eta, k_noise = jax.random.split(jax.random.PRNGKey(seed), 3)
    n_k = len(prior["log_norm"])
    comp = jax.random.randint(k_comp, (n,), 0, n_k)
    z = jax.random.normal(k_eta, (n, len(spec.bsv_parameters)))
    u = jnp.asarray(prior["mu"])[comp] + jnp.einsum("nij,nj->ni", jnp.asarray(prior["chol"])[comp], z)
    doses = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[0], arrays.doses)
    obs = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[0], arrays.obs)
    sim_prior = {name: jnp.asarray(prior[name]) for name in ("fixed", *spec.sigma_names)}
    values = np.asarray(_simulator(spec, model, arrays.features)(jax.random.split(k_noise, n), u, comp, sim_prior,
                                                                 doses, obs))
    bad = ~np.isfinite(values[:, np.asarray(obs.mask)])
    if bad.any():
        raise SpecError(f"run_twin_sbc: {int(bad.any(axis=1).sum())} of {n} simulated patients have non-finite "
                        f"observations (first: replication {int(np.argmax(bad.any(axis=1)))}); the population "
                        "reaches parameter values where the model breaks down -- narrow it")
    return np.asarray(comp), np.asarray(u), values


def _ranks(true: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each ``true[r]`` among ``draws[r]`` (flattened), ties broken uniformly at random."""
    flat = draws.reshape(draws.shape[0], -1)
    below = (flat < true[:, None]).sum(axis=1)
    ties = (flat == true[:, None]).sum(axis=1)
    return below + rng.integers(0, ties + 1)


def run_twin_sbc(
    spec: TwinSpec, population: Mapping[str, np.ndarray], *, fit_population: Mapping[str, np.ndarray] | None = None,
    n_replications: int = 200, doses: Sequence[Dose] = ((0.0, 100.0, None),), times: Sequence[float] = DEFAULT_TIMES,
    chains: int = 2, warmup: int = 300, draws: int = 200, thin: int = 4, max_tree_depth: int = 8,
    target_accept: float = 0.8, dense_mass: bool | None = None, lanes: int = 8, init: str = "optimize",
    alpha: float = 0.01, seed: int = 0,
) -> SBCResult:
    """Twin-level SBC of `spec` given population draws `population`; see the module docstring.

    Parameters
    ----------
    spec : TwinSpec
        The model (no covariates).
    population : dict of str to numpy.ndarray
        K population draws keyed as ``PopulationFit.population_draws`` (e.g. ``fit.population_draws(200)`` or
        :func:`synthetic_population`); simulation draws each patient from their mixture.
    fit_population : dict, optional
        The draws the twins are fitted with (default `population`); another one, e.g.
        ``scale_bsv(population, 1/3)``, is a broken prior SBC must detect.
    doses, times : design
        Every replication's doses ``(time, amount, compartment or None)`` and sample times (every output).
    chains, warmup, draws, thin :
        NUTS per replication (as ``fit_fleet``: own adaptation per chain, optimised starts); ranks among
        ``chains * draws // thin`` draws.
    max_tree_depth, target_accept, dense_mass, lanes :
        NUTS settings, and the replications sampled in lockstep; `dense_mass` defaults to
        ``dense_mass_for(spec, level="twin")`` (dense: a patient's few correlated parameters).
    init : str
        Chain starts: ``"optimize"`` (``fit_fleet``'s default: 100 Adam steps from the jittered mixture
        centre) or ``"prior"`` (the jittered centre itself; compiles faster: the reduced test uses it).
    alpha : float
        Family-wise level of the uniformity tests (Bonferroni).

    Returns
    -------
    SBCResult
        Ranks (columns: each parameter with BSV, then residual SDs and parameters without BSV), tests,
        per-replication sampler health; ``spec`` is ``"twin:" + spec.name``.
    """
    started = _time.perf_counter()
    dense_mass = dense_mass_for(spec, level="twin") if dense_mass is None else dense_mass
    model = get_model(spec.model)
    design = twin_design(spec, doses, times)
    arrays = cohort_arrays(design, spec, model)
    sim_prior = population_prior(spec, population, {})
    k = len(sim_prior["log_norm"])
    prior = _fit_prior(spec, population if fit_population is None else fit_population, arrays.features)
    if len(prior["log_norm"]) != k:
        raise SpecError(f"run_twin_sbc: fit_population has {len(prior['log_norm'])} draws, population {k}; give "
                        "the same number (K) to both")
    comp, u_true, values = _simulate(spec, model, arrays, sim_prior, n_replications, seed)

    n_pad = -(-n_replications // lanes) * lanes
    idx = np.minimum(np.arange(n_pad), n_replications - 1)  # pad to whole lanes with copies (dropped below)
    stacked = {name: np.broadcast_to(v, (n_pad, *np.shape(v))) for name, v in prior.items()}
    doses_r = jax.tree_util.tree_map(lambda a: np.broadcast_to(np.asarray(a)[0], (n_pad, *np.shape(a)[1:])),
                                     arrays.doses)
    obs_r = jax.tree_util.tree_map(lambda a: np.broadcast_to(np.asarray(a)[0], (n_pad, *np.shape(a)[1:])),
                                   arrays.obs)._replace(value=values[idx])
    config = FleetConfig(chains=chains, warmup=warmup, draws=draws, target_accept=float(target_accept),
                         max_tree_depth=int(max_tree_depth), dense_mass=bool(dense_mass), init=init,
                         init_steps=100, lanes=lanes)
    run = fleet_program(spec, model, arrays.features, k, config)
    out = jax.tree_util.tree_map(lambda a: np.asarray(a)[:n_replications],
                                 run(np.int64(seed + 1), np.arange(n_pad), stacked, doses_r, obs_r))
    keep = slice(thin - 1, None, thin)
    latent = out.latent[:, :, keep]  # (replication, chain, L / chains, n_bsv)
    component = out.component[:, :, keep]
    rng = np.random.default_rng(seed + 2)
    ranks: dict[str, np.ndarray] = {}
    traces = []
    for j, name in enumerate(spec.bsv_parameters):
        ranks[name] = _ranks(u_true[:, j], latent[..., j], rng)
        traces.append(latent[..., j])
    others = [p.name for p in spec.parameters if not p.has_bsv and p.fixed is None]
    all_others = [p.name for p in spec.parameters if not p.has_bsv]
    for name in [*spec.sigma_names, *others]:
        table = (np.asarray(sim_prior[name]) if name in spec.sigma_names
                 else np.asarray(sim_prior["fixed"])[:, all_others.index(name)])
        fitted = (np.asarray(prior[name]) if name in spec.sigma_names
                  else np.asarray(prior["fixed"])[:, all_others.index(name)])
        ranks[name] = _ranks(table[comp], fitted[component], rng)
        traces.append(fitted[component])
    rep = pd.DataFrame({
        "max_rhat": _max_rhat(np.stack(traces, axis=-1)),
        "divergences": out.diverging.sum(axis=(1, 2)),
        "mean_steps": out.num_steps.mean(axis=(1, 2)),
    }).rename_axis("replication")
    settings = {"level": "twin", "replications": n_replications, "components": k, "chains": chains,
                "warmup": warmup, "draws": draws, "thin": thin, "max_tree_depth": max_tree_depth,
                "target_accept": target_accept, "dense_mass": dense_mass, "lanes": lanes, "init": init,
                "doses": [list(d) for d in doses], "times": list(times), "seed": seed,
                "broken": fit_population is not None}
    return SBCResult(model=model.name, spec=f"twin:{spec.name}", ranks=pd.DataFrame(ranks), n_draws=latent.shape[1]
                     * latent.shape[2], replications=rep, alpha=alpha, wall_s=_time.perf_counter() - started,
                     settings=settings)
