"""Simulation-based calibration (SBC) of a population model, with the replications vectorised.

For r = 1..R: draw every parameter from the prior, simulate a cohort's observations from them on a fixed
design, fit the model to those observations with NUTS, and record the rank of each true value among L
thinned posterior draws. If the sampler computes the posterior implied by the model, each rank is
uniform on {0, ..., L} (Talts et al. 2018, arXiv:1804.06788); a prior or likelihood that does not match
the one used to simulate, a dropped Jacobian, or a sampler that misses part of the posterior shows as
non-uniform ranks.

Every replication's fit is the same compiled program (fixed design, data passed as arguments): NUTS
written as a ``lax.scan`` over ``numpyro.infer.hmc.hmc``'s functional kernel, ``vmap``-ed over a batch
of (replication, chain) pairs and ``pmap``-ed over the host devices. Ranked quantities: every scalar
population parameter (typical values, covariate coefficients, BSV SDs, residual SDs) and the individual
parameters of the first patient.

Uniformity test: a chi-square test of the ranks binned into B equal-width bins (expected counts computed
exactly from the number of rank values in each bin; B chosen so that at least 5 are expected per bin), one
p-value per quantity. Multiple testing: Bonferroni -- the model fails SBC when any p-value is below
``alpha / Q`` for Q quantities (family-wise false-failure rate at most ``alpha``, default 0.01).

Examples
--------
A run (about a minute; tests/validation/test_sbc.py runs one):

>>> from bayestwin.models import get_model
>>> from bayestwin.testing import default_spec
>>> res = run_sbc(default_spec(get_model("pk.one_cmt_iv")), n_replications=30)   # doctest: +SKIP
>>> print(res.format())                                                            # doctest: +SKIP
SBC check.pk.one_cmt_iv (pk.one_cmt_iv): PASSED -- 30 replications, ranks among 100 draws, 6 bins; ...

The tests on ranks (here 400 replications of uniform ranks among 99 draws):

>>> import numpy as np, pandas as pd
>>> ranks = pd.DataFrame({"tv_cl": np.random.default_rng(0).integers(0, 100, 400)})
>>> rep = pd.DataFrame({"max_rhat": np.ones(400), "divergences": 0, "mean_steps": 7.0})
>>> res = SBCResult("m", "s", ranks, n_draws=99, replications=rep, alpha=0.01, wall_s=0.0, settings={})
>>> res.n_bins, res.ok
(20, True)
"""

from __future__ import annotations

import dataclasses
import math
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import Predictive
from scipy import stats

from bayestwin.exceptions import SpecError
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.batch import run_batched_nuts
from bayestwin.inference.outputs import output_columns, select_outputs, sigma_groups, simulate_observations
from bayestwin.inference.population import build_population_model, predict_cohort
from bayestwin.inference.sampler import parallel_chains_ok
from bayestwin.models.registry import get_model
from bayestwin.spec import Prior, TwinSpec
from bayestwin.testing.centring import dense_mass_for
from bayestwin.testing.design import DEFAULT_TIMES, simulate_cohort

__all__ = ["SBCResult", "misspecified_prior", "run_sbc"]

_LATENT = ("eta", "eta_z", "latent_c", "corr_chol", "obs_loglik")


@dataclass(frozen=True)
class SBCResult:
    """Ranks and uniformity tests of one SBC run.

    Attributes
    ----------
    model, spec : str
        Structural model and spec names.
    ranks : pandas.DataFrame
        One row per replication, one column per quantity: the number of the L posterior draws below the
        true value (0..L).
    n_draws : int
        L, the thinned posterior draws each rank is taken among.
    replications : pandas.DataFrame
        Per replication: worst split R-hat over the ranked quantities (NaN with one chain), divergent
        transitions, mean leapfrog steps per iteration.
    alpha : float
        Family-wise significance level of the uniformity tests.
    wall_s : float
        Wall time of the run, compilation included.
    settings : dict
        What was run (replications, patients, chains, warm-up, draws, thinning, batching).
    """

    model: str
    spec: str
    ranks: pd.DataFrame
    n_draws: int
    replications: pd.DataFrame
    alpha: float
    wall_s: float
    settings: dict[str, Any]

    @property
    def n_bins(self) -> int:
        """Bins of the chi-square test: at most 20, at least 5 expected ranks per bin."""
        return int(max(2, min(20, len(self.ranks) // 5, self.n_draws + 1)))

    def tests(self) -> pd.DataFrame:
        """Per quantity: chi-square statistic, degrees of freedom, p-value, and whether it passes.

        A quantity passes when its p-value is at least ``alpha / Q`` (Bonferroni over Q quantities).
        """
        b = self.n_bins
        values = np.arange(self.n_draws + 1)
        edges = np.linspace(0, self.n_draws + 1, b + 1)
        which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, b - 1)
        expected = np.bincount(which, minlength=b) / (self.n_draws + 1) * len(self.ranks)
        rows = []
        threshold = self.alpha / self.ranks.shape[1]
        for q in self.ranks.columns:
            observed = np.bincount(which[self.ranks[q].to_numpy()], minlength=b)
            chi2 = float(((observed - expected) ** 2 / expected).sum())
            p = float(stats.chi2.sf(chi2, b - 1))
            rows.append({"quantity": q, "chi2": chi2, "df": b - 1, "p_value": p, "passed": p >= threshold})
        return pd.DataFrame(rows).set_index("quantity")

    @property
    def ok(self) -> bool:
        """True when every quantity's ranks pass the Bonferroni-corrected uniformity test."""
        return bool(self.tests()["passed"].all())

    def format(self) -> str:
        """A short report: verdict, smallest p-value, sampler health."""
        t = self.tests()
        worst = t["p_value"].idxmin()
        rep = self.replications
        return (f"SBC {self.spec} ({self.model}): {'PASSED' if self.ok else 'FAILED'} -- {len(self.ranks)} "
                f"replications, ranks among {self.n_draws} draws, {self.n_bins} bins; smallest p-value "
                f"{t['p_value'].min():.2g} ({worst}) vs Bonferroni threshold {self.alpha / len(t):.2g}; "
                f"{int((rep['divergences'] > 0).sum())} replications with divergences; {self.wall_s:.0f} s")

    def ecdf_difference(self, grid: int = 101) -> pd.DataFrame:
        """ECDF of the normalised ranks minus the uniform CDF, per quantity, on `grid` points in [0, 1].

        Columns: ``x``, one column per quantity, and ``band`` -- the half-width of a pointwise 95 % band
        for R uniform ranks (binomial), to draw as a +-envelope.
        """
        x = np.linspace(0.0, 1.0, grid)
        u = (self.ranks.to_numpy() + 0.5) / (self.n_draws + 1)
        out = {"x": x}
        for j, q in enumerate(self.ranks.columns):
            out[q] = (u[:, j][None, :] <= x[:, None]).mean(axis=1) - x
        r = len(self.ranks)
        out["band"] = 1.96 * np.sqrt(x * (1 - x) / r)
        return pd.DataFrame(out)

    def plot_ecdf(self, ax: Any = None) -> Any:
        """ECDF-difference plot of every quantity against the pointwise 95 % band (needs matplotlib)."""
        import matplotlib.pyplot as plt

        d = self.ecdf_difference()
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        ax.fill_between(d["x"], -d["band"], d["band"], color="0.85", label="95 % band (pointwise)")
        for q in self.ranks.columns:
            ax.plot(d["x"], d[q], lw=1, label=q)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set(xlabel="normalised rank", ylabel="ECDF - uniform", title=f"SBC {self.spec}")
        ax.legend(fontsize=6, ncol=2)
        return ax


def misspecified_prior(spec: TwinSpec, factor: float = 1 / 3) -> TwinSpec:
    """`spec` with the scale of every prior multiplied by `factor`: the deliberately broken fitting model.

    Simulating from `spec` and fitting with this variant must fail SBC (the power check). Log-normal
    priors keep their median; half-normal and other scale families have their scale multiplied.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> misspecified_prior(example_spec(), 0.5).parameter("cl").bsv.param("sigma")
    0.25
    """
    def scaled(prior: Prior | None) -> Prior | None:
        if prior is None:
            return None
        params = dict(prior.params)
        key = "sigma" if "sigma" in params else "scale" if "scale" in params else None
        if key is None:
            raise SpecError(f"misspecified_prior: cannot rescale a {prior.family} prior")
        return Prior(prior.family, params | {key: params[key] * factor})

    params = tuple(dataclasses.replace(p, typical=scaled(p.typical), bsv=scaled(p.bsv)) for p in spec.parameters)
    errors = tuple(dataclasses.replace(e, priors=tuple((k, scaled(v)) for k, v in e.priors)) for e in spec.error)
    return dataclasses.replace(spec, name=f"{spec.name}.prior_x{factor:.3g}", parameters=params, error=errors)


def run_sbc(
    spec: TwinSpec, *, fit_spec: TwinSpec | None = None, n_replications: int = 200, n_patients: int = 12,
    times: Sequence[float] = DEFAULT_TIMES, dose: float = 100.0, chains: int = 2, warmup: int = 500,
    draws: int = 500, thin: int = 5, max_tree_depth: int | tuple[int, int] = 8, target_accept: float = 0.8,
    dense_mass: bool | None = None, batch: int = 4, alpha: float = 0.01, seed: int = 0, parallel_ok: bool | None = None,
    adaptation: str = "stan", trajectory: str = "numpyro", replication_ids: Sequence[int] | None = None,
) -> SBCResult:
    """Simulation-based calibration of `spec` with `n_replications` prior draws.

    Parameters
    ----------
    spec : TwinSpec
        Simulates the data (its priors are the truth's distribution); no covariates.
    fit_spec : TwinSpec, optional
        Fits the data (default `spec`). A different one is a misspecification SBC should detect
        (``misspecified_prior``).
    n_patients, times, dose : design
        Each replication observes `n_patients` patients after one `dose` at `times` (every output).
    chains, warmup, draws, thin :
        NUTS per replication; ranks are among ``chains * draws // thin`` thinned draws.
    max_tree_depth, target_accept, dense_mass :
        NUTS settings; the mass matrix is adapted in warm-up, by default dense for a ``centered=True``
        `fit_spec` and diagonal otherwise (``bayestwin.testing.centring.dense_mass_for``, the rule of
        ``check_model``'s recovery fit; dense for every spec until 2026-11-27). ``max_tree_depth=(6, 8)``:
        depth 6 in warm-up, 8 after it (see ``validation/device_sbc.md``: with 1000 warm-up iterations it
        cut the two-compartment oral fits from ~181k to ~79k leapfrog steps). Measured on the one-compartment
        IV model (32 replications, 12 patients): centred + dense 27 leapfrog steps per iteration and 39 s;
        centred + diagonal 77 and 85 s; non-centred + diagonal 91 and 98 s (worst R-hat 1.10 vs 1.65 and
        1.84).
    batch : int
        (replication, chain) fits vectorised together on each device; one compiled program serves all, and it
        is kept (``run_batched_nuts``'s ``cache_key``, see ``_program_key``): a later call with the same
        fitting spec, design and settings -- other replications, seed or ``n_replications`` -- compiles no NUTS
        program (measured 2026-11-27, pk.one_cmt_iv, 3 patients, 2 replications: 23.1 CPU-s the first call,
        3.0 the second; the simulation is still compiled per call).
    alpha : float
        Family-wise level of the uniformity tests (Bonferroni).
    adaptation : {"stan", "gradient"}
        Warm-up adaptation (``SamplerConfig.adaptation``); ``"gradient"`` needs ``dense_mass=False``.
    trajectory : {"numpyro", "stan"}
        NUTS tree (``SamplerConfig.trajectory``); ``"stan"`` needs ``adaptation="gradient"``.
    parallel_ok : bool, optional
        Whether fits may be ``pmap``-ed over the host devices (default: ``parallel_chains_ok``, which says no
        for every ODE model because reverse mode through diffrax fails under ``pmap``). True is safe for ODE
        models on the lean ``dopri5`` solver with forward sensitivities (every built-in ODE model without
        ``f``/``tlag``): measured on pk.one_cmt_oral_mm on 2 host devices, the same leapfrog steps as on one
        device and draws equal to 2e-3 after 50 iterations (floating-point reassociation), in 25 vs 59 s.
    replication_ids : sequence of int, optional
        Run these replications of a larger SBC (`n_replications` is then ignored). Replication i's prior draw,
        observation noise and NUTS chains come from keys folded with i, so its result does not depend on
        which other replications run with it: blocks run at different times or on different machines
        (``validation/sbc_blocks.py``) add up, with ``bayestwin.validation.combine_sbc``, to one SBC. These
        keys differ from the default ones (a split over all replications), so ids 0..R-1 are other
        replications than a default run of R.
    """
    started = _time.perf_counter()
    fit_spec = fit_spec or spec
    dense_mass = dense_mass_for(fit_spec) if dense_mass is None else dense_mass
    if spec.covariates or fit_spec.covariates:
        raise SpecError("run_sbc simulates a design without covariates; give a spec without covariate effects")
    model = get_model(spec.model)
    table, _ = simulate_cohort(spec, n_patients=n_patients, times=times, dose=dose, seed=seed)
    arrays = cohort_arrays(table, spec, model)
    covs = {k: jnp.asarray(v) for k, v in arrays.covariates.items()}
    doses, obs = arrays.doses, arrays.obs
    key_prior, key_noise = jax.random.split(jax.random.PRNGKey(seed))

    ids = None if replication_ids is None else np.asarray(replication_ids, dtype=np.int64)
    if ids is not None:
        if ids.ndim != 1 or len(ids) == 0 or (ids < 0).any() or len(np.unique(ids)) != len(ids):
            raise SpecError(f"run_sbc: replication_ids must be distinct non-negative integers, got {ids!r}")
        n_replications = len(ids)
    truth, values = _simulate(spec, model, arrays, covs, n_replications, key_prior, key_noise, ids)
    fit_fn = build_population_model(fit_spec, model, arrays.features)
    parallel = parallel_chains_ok(model, arrays.features) if parallel_ok is None else parallel_ok
    # fixed parameters without BSV are constants: their per-patient sites would rank degenerately
    constant = {p.name for p in spec.parameters if p.fixed is not None and not p.has_bsv}
    names = [n for n in _quantities(truth) if n.removesuffix("[1]") not in constant]
    n_rep = n_replications
    args = (jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n_rep, *a.shape)), doses),
            obs._replace(**{f: jnp.broadcast_to(getattr(obs, f), (n_rep, *obs.time.shape))
                            for f in obs._fields if f != "value"}, value=values),
            jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n_rep, *a.shape)), covs))
    out = run_batched_nuts(fit_fn, args, warmup=warmup, draws=draws, chains=chains, thin=thin,
                           keep=lambda s: jnp.stack([_pick(s, n) for n in names]), max_tree_depth=max_tree_depth,
                           target_accept=target_accept, dense_mass=dense_mass, batch=batch,
                           parallel_ok=parallel, seed=seed + 1, adaptation=adaptation, trajectory=trajectory,
                           cache_key=_program_key(fit_spec, model.name, arrays.features, names), fit_ids=ids)
    n_kept = draws // thin
    draws_arr = out.draws  # (replication, chain, draw, quantity)
    true_arr = np.stack([np.asarray(_pick(truth, n)) for n in names], axis=-1)  # (replication, quantity)
    ranks = (draws_arr < true_arr[:, None, None, :]).sum(axis=(1, 2))
    index = pd.Index(np.arange(n_replications) if ids is None else ids, name="replication")
    rep = pd.DataFrame({
        "max_rhat": _max_rhat(draws_arr),
        "divergences": out.divergences.sum(axis=1),
        "mean_steps": out.mean_steps.mean(axis=1),
    }, index=index)
    settings = {"replications": n_replications, "patients": n_patients, "chains": chains, "warmup": warmup,
                "draws": draws, "thin": thin, "max_tree_depth": max_tree_depth, "target_accept": target_accept,
                "dense_mass": dense_mass, "adaptation": adaptation,
                **({"trajectory": trajectory} if trajectory != "numpyro" else {}),
                "devices": jax.local_device_count() if parallel else 1,
                "batch": batch, "fit_spec": fit_spec.name, "seed": seed,
                **({"replication_keys": "fold_in", "platform": jax.default_backend(), "spec_digest": spec.digest(),
                    "fit_spec_digest": fit_spec.digest()} if ids is not None else {})}
    return SBCResult(model=model.name, spec=fit_spec.name, ranks=pd.DataFrame(ranks, columns=names, index=index),
                     n_draws=chains * n_kept, replications=rep, alpha=alpha,
                     wall_s=_time.perf_counter() - started, settings=settings)


def _program_key(fit_spec: TwinSpec, model: str, features: frozenset[str] | None, names: Sequence[str]) -> tuple:
    """``run_batched_nuts`` cache key of an SBC fit: what its model and ``keep`` function depend on.

    The fitting spec (by digest), the structural model, the design's static dose features and the ranked
    quantities; the data, replication count, seed and design values are arguments of the compiled program, and
    the sampler settings and shapes are part of ``run_batched_nuts``'s own key. Repeated ``run_sbc`` calls
    with the same key (e.g. ``check_model``'s SBC and a later full run, or runs with another seed) compile
    nothing.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> _program_key(example_spec(), "pk.one_cmt_oral", None, ["tv_cl"])[2:]
    ('pk.one_cmt_oral', None, ('tv_cl',))
    """
    return ("bayestwin.validation.run_sbc", fit_spec.digest(), model, features, tuple(names))


def _simulate(spec: TwinSpec, model: Any, arrays: Any, covs: Mapping[str, jax.Array], n: int,
              key_prior: jax.Array, key_noise: jax.Array, ids: np.ndarray | None = None,
              ) -> tuple[dict[str, jax.Array], jax.Array]:
    """Prior draws of every site and, per draw, observations simulated on the design.

    With `ids`, draw i uses keys folded with ``ids[i]`` (independent of the other draws); else a split of the
    keys over all `n` draws.
    """
    fn = build_population_model(spec, model, arrays.features)
    if ids is None:
        truth = Predictive(fn, num_samples=n)(key_prior, arrays.doses, arrays.obs, covs)
        noise_keys = jax.random.split(key_noise, n)
    else:
        one = Predictive(fn, num_samples=1)
        folded = jnp.asarray(ids.astype(np.uint32))
        truth = jax.vmap(lambda i: jax.tree_util.tree_map(lambda a: a[0], one(
            jax.random.fold_in(key_prior, i), arrays.doses, arrays.obs, covs)))(folded)
        noise_keys = jax.vmap(lambda i: jax.random.fold_in(key_noise, i))(folded)
    columns = output_columns(spec, model)
    obs = arrays.obs

    def simulate(th: Mapping[str, jax.Array], key: jax.Array) -> jax.Array:
        theta = {p: th[p] for p in spec.parameter_names}
        pred = select_outputs(predict_cohort(model, theta, arrays.doses, obs.time, arrays.features), obs.output,
                              columns)
        groups = sigma_groups(spec, {s: th[s] for s in spec.sigma_names})
        y = simulate_observations(key, pred, obs.output, errors=spec.error, sigmas=groups)
        return jnp.where(obs.mask, y, obs.value)

    values = jax.jit(jax.vmap(simulate))(truth, noise_keys)
    bad = ~np.isfinite(np.asarray(values)[:, np.asarray(obs.mask)])
    if bad.any():
        raise SpecError(f"run_sbc: {int(bad.any(axis=1).sum())} prior draws simulate non-finite observations; "
                        "the priors reach parameter values where the model breaks down -- narrow them")
    return truth, values


def _quantities(truth: Mapping[str, jax.Array]) -> list[str]:
    """Scalar population sites, then the first patient's individual parameters (``cl[1]``...)."""
    names = [k for k, v in truth.items() if k not in _LATENT and np.ndim(v) == 1]
    names += [f"{k}[1]" for k, v in truth.items() if k not in _LATENT and np.ndim(v) == 2]
    return sorted(names, key=lambda n: (n.endswith("]"), n))


def _pick(values: Mapping[str, Any], name: str) -> Any:
    """Value of quantity `name` from a dict of site values (leading axes kept)."""
    if name.endswith("[1]"):
        return values[name[:-3]][..., 0]
    return values[name]


def _max_rhat(draws: np.ndarray) -> np.ndarray:
    """Worst split R-hat over quantities, per replication (NaN with one chain and too few draws)."""
    r, c, n, _ = draws.shape
    if c * n < 8:
        return np.full(r, math.nan)
    half = n // 2
    split = np.concatenate([draws[:, :, :half], draws[:, :, half:2 * half]], axis=1)  # (r, 2c, half, q)
    within = split.var(axis=2, ddof=1).mean(axis=1)
    between = half * split.mean(axis=2).var(axis=1, ddof=1)
    var_plus = (half - 1) / half * within + between / half
    with np.errstate(divide="ignore", invalid="ignore"):
        rhat = np.sqrt(var_plus / within)
    return np.nanmax(rhat, axis=1)
