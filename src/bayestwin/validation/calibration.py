"""Forecast calibration on real data: leave-future-out twins, coverage, PIT, CRPS and MIPD accuracy.

For each patient: fit the population on the *other* patients (K-fold cross-fitting: patients are split
into `n_folds` folds, and each fold's patients get the population fitted to the remaining folds; with as
many folds as patients, one patient is left out per fit: ``fit_fold_populations``), condition
the patient's twin on their first `n_conditioning` observations, and forecast every later observation
(under the patient's actual doses). Each held-out observation is then scored against

* the twin's posterior predictive (interval coverage at 50/80/90/95 %, the PIT value, CRPS, and the
  median as a point forecast),
* the population-only predictive (the patient's covariates, no patient data), and
* the last observed value of the same output (what a clinician would otherwise extrapolate).

Point-forecast accuracy in the MIPD convention: prediction error ``PE = (forecast - observed) / observed``,
MDPE = median PE (bias), MDAPE = median |PE| (precision), RMSE on the data scale.

The twins of all patients are fitted in one compiled program (``bayestwin.inference.batch.run_batched_nuts``),
each with the same mixture prior as ``Twin.fit`` built from its own fold's population.

Examples
--------
>>> import numpy as np
>>> crps_from_draws(np.array([[0.0, 1.0, 2.0]]), np.array([1.0])).round(4).tolist()   # exact for 3 draws
[0.2222]
"""

from __future__ import annotations

import itertools
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayestwin.data import EventTable
from bayestwin.exceptions import SpecError
from bayestwin.inference import SamplerConfig
from bayestwin.inference.arrays import SEGMENT_STARTS, cohort_arrays
from bayestwin.inference.batch import run_batched_nuts
from bayestwin.inference.individual import (
    build_individual_model,
    component_log_weights,
    mixture_scaling,
    population_prior,
)
from bayestwin.inference.latent import to_natural
from bayestwin.inference.outputs import output_columns, select_outputs, sigma_groups, simulate_observations
from bayestwin.inference.population import predict_cohort
from bayestwin.models.registry import get_model
from bayestwin.spec import TwinSpec
from bayestwin.validation.bootstrap import cluster_bootstrap_coverage, cluster_bootstrap_interval
from bayestwin.validation.folds import FoldPopulations, fit_fold_populations

__all__ = ["LEVELS", "CalibrationResult", "calibration_by_group", "crps_from_draws", "leave_future_out"]

#: Central interval levels scored.
LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
#: Coverage targets of the issue: level -> (low, high).
TARGETS: dict[float, tuple[float, float]] = {0.8: (0.75, 0.85), 0.95: (0.91, 0.98)}


def crps_from_draws(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of each row of `draws` (observations x draws) at `y`: ``E|X - y| - E|X - X'| / 2``.

    Uses the sorted-sample identity ``E|X - X'| = 2 / S**2 * sum_i (2i - S - 1) x_(i)``.
    """
    x = np.sort(np.asarray(draws, dtype=float), axis=1)
    s = x.shape[1]
    i = np.arange(1, s + 1)
    spread = 2.0 / s**2 * ((2 * i - s - 1) * x).sum(axis=1)
    return np.abs(x - np.asarray(y, dtype=float)[:, None]).mean(axis=1) - spread / 2


@dataclass(frozen=True)
class CalibrationResult:
    """Scores of every held-out observation of a leave-future-out study.

    ``predictions`` has one row per held-out observation: ``patient``, ``fold``, ``obs_index`` (0-based
    position among the patient's observations), ``time``, ``output``,
    ``unit``, ``dv``, ``twin_median``, ``population_median``, ``last_value``, ``pit``, ``crps``, and
    ``in_<level>`` (True when inside the twin's central interval), ``twin_<parameter>`` (the twin's posterior
    median of each parameter with BSV), plus the patient's covariates. ``populations`` has one row per fold:
    training patients, the gate's verdict, max R-hat, divergences and the posterior median of every
    population quantity (``tv_*``, ``omega_*``, residual SDs) that fold's twins were conditioned on.
    """

    dataset: str
    spec: str
    predictions: pd.DataFrame
    settings: dict[str, Any]
    wall_s: float
    notes: tuple[str, ...] = field(default=())
    populations: pd.DataFrame = field(default_factory=pd.DataFrame)

    def coverage(self, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
        """Empirical coverage of each central interval, its patient-cluster bootstrap 95 % interval and target.

        ``ok`` says whether the point estimate lies in the target range (the target is judged on it);
        ``ci_low``/``ci_high`` resample whole patients (their held-out observations are correlated:
        ``validation.bootstrap``), and ``band_consistent`` says whether that interval overlaps the target
        range, i.e. whether the data could not tell a miss from a pass.
        """
        p = self.predictions
        boot = cluster_bootstrap_coverage(p, LEVELS, n_boot=n_boot, seed=seed)
        rows = []
        for level in LEVELS:
            cov = float(p[f"in_{level:g}"].mean())
            lo, hi = TARGETS.get(level, (np.nan, np.nan))
            ci_lo, ci_hi = boot.loc[level, "ci_low"], boot.loc[level, "ci_high"]
            rows.append({"level": level, "coverage": cov, "ci_low": ci_lo, "ci_high": ci_hi, "n": len(p),
                         "patients": int(boot.loc[level, "patients"]), "target_low": lo, "target_high": hi,
                         "ok": bool(np.isnan(lo) or lo <= cov <= hi),
                         "band_consistent": bool(np.isnan(lo) or (ci_lo <= hi and ci_hi >= lo))})
        return pd.DataFrame(rows).set_index("level")

    def mipd(self) -> pd.DataFrame:
        """MDPE, MDAPE (in %) and RMSE of the twin median, the population-only median and the last value."""
        p = self.predictions
        rows = []
        for name, col in (("twin", "twin_median"), ("population only", "population_median"),
                          ("last observed value", "last_value")):
            ok = p[col].notna()
            pe = (p.loc[ok, col] - p.loc[ok, "dv"]) / p.loc[ok, "dv"]
            rows.append({"predictor": name, "n": int(ok.sum()), "MDPE_%": 100 * float(pe.median()),
                         "MDAPE_%": 100 * float(pe.abs().median()),
                         "RMSE": float(np.sqrt(((p.loc[ok, col] - p.loc[ok, "dv"]) ** 2).mean()))})
        return pd.DataFrame(rows).set_index("predictor")

    def pit_histogram(self, bins: int = 10) -> np.ndarray:
        """Counts of PIT values in `bins` equal bins of [0, 1] (flat when calibrated)."""
        return np.histogram(self.predictions["pit"], bins=bins, range=(0.0, 1.0))[0]

    def checks(self) -> dict[str, bool]:
        """The issue's targets: coverage ranges, |MDPE| <= 20 %, MDAPE <= 30 %, twin better than population."""
        cov = self.coverage()
        m = self.mipd()
        out = {f"coverage {level:g} in {TARGETS[level]}": bool(cov.loc[level, "ok"]) for level in TARGETS}
        out["|MDPE| <= 20 %"] = abs(m.loc["twin", "MDPE_%"]) <= 20
        out["MDAPE <= 30 %"] = m.loc["twin", "MDAPE_%"] <= 30
        out["twin MDAPE < population-only MDAPE"] = m.loc["twin", "MDAPE_%"] < m.loc["population only", "MDAPE_%"]
        return out

    @property
    def ok(self) -> bool:
        """True when every target of ``checks`` is met."""
        return all(self.checks().values())

    def format(self) -> str:
        """Headline figures in one paragraph."""
        cov = self.coverage()["coverage"]
        m = self.mipd()
        return (f"leave-future-out {self.dataset} ({self.spec}): {len(self.predictions)} held-out observations of "
                f"{self.predictions['patient'].nunique()} patients; coverage "
                + ", ".join(f"{lv:g}: {c:.3f}" for lv, c in cov.items())
                + f"; CRPS {self.predictions['crps'].mean():.3g}; twin MDPE {m.loc['twin', 'MDPE_%']:.1f} %, MDAPE "
                f"{m.loc['twin', 'MDAPE_%']:.1f} % (population only {m.loc['population only', 'MDAPE_%']:.1f} %, "
                f"last value {m.loc['last observed value', 'MDAPE_%']:.1f} %); {self.wall_s:.0f} s")


def leave_future_out(
    spec: TwinSpec, table: EventTable, *, n_conditioning: int = 2, n_folds: int = 3,
    population_sampler: SamplerConfig | None = None, warmup: int = 300, draws: int = 500, chains: int = 2,
    n_components: int = 200, dataset: str | None = None, seed: int = 0, populations: FoldPopulations | None = None,
    score_after: int | None = None,
) -> CalibrationResult:
    """Leave-future-out calibration of `spec` on `table` (see the module docstring).

    Parameters
    ----------
    n_conditioning : int
        Observations of each patient the twin is conditioned on; patients with no later observation are
        skipped (counted in ``notes``).
    n_folds : int
        Patient folds; each fold's population is fitted on the other folds. The number of patients leaves one
        patient out.
    population_sampler : SamplerConfig
        Settings of each fold's population fit (``fit_fold_populations``); a fit that fails its gate is
        recorded in ``notes`` and the study's result says so.
    warmup, draws, chains, n_components :
        Each twin's NUTS settings and mixture-prior size (as ``Twin``). The twins of every fold run in one
        compiled batch, each on its own fold's population.
    populations : FoldPopulations, optional
        Fold populations already fitted (``fit_fold_populations``) on this table: reused, so studies at
        several conditioning sizes share them (``conditioning_curve``).
    score_after : int, optional
        Score only observations after the patient's first `score_after` (default `n_conditioning`): studies
        at several conditioning sizes can be compared on the same observations.
    """
    started = _time.perf_counter()
    model = get_model(spec.model)
    score_after = n_conditioning if score_after is None else score_after
    if score_after < n_conditioning:
        raise ValueError(f"score_after={score_after} < n_conditioning={n_conditioning}: a conditioning "
                         "observation cannot be scored as a forecast")
    pops = populations or fit_fold_populations(spec, table, n_folds=n_folds, population_sampler=population_sampler,
                                               seed=seed)
    held = {pid for fold in pops.folds for pid in fold}
    if held != set(table.patients):
        raise ValueError(f"the fold populations were fitted on other patients ({len(held)} in their folds, "
                         f"{len(table.patients)} in the table); fit them on this table")
    fold_of = {pid: f for f, fold in enumerate(pops.folds) for pid in fold}
    frame, skipped = _score(spec, model, pops, fold_of, table, n_conditioning=n_conditioning,
                            score_after=score_after, warmup=warmup, draws=draws, chains=chains,
                            n_components=n_components, seed=seed)
    notes = list(pops.notes)
    if skipped:
        notes.append(f"{skipped} patient(s) with <= {score_after} observations skipped")
    settings = {"n_conditioning": n_conditioning, "score_after": score_after} | pops.settings | {
        "twin": {"warmup": warmup, "draws": draws, "chains": chains, "n_components": n_components},
        "population_wall_s": pops.wall_s, "failed_folds": pops.n_failed}
    return CalibrationResult(dataset=dataset or table.source, spec=spec.name, predictions=frame,
                             settings=settings, wall_s=_time.perf_counter() - started, notes=tuple(notes),
                             populations=pops.table)


def _log_theta(site: dict[str, jax.Array]) -> jax.Array:
    """What the twin fits keep: the patient's latent parameters."""
    return site["log_theta"]


def _score(spec: TwinSpec, model: Any, pops: FoldPopulations, fold_of: dict[Any, int], test: EventTable, *,
           n_conditioning: int, score_after: int, warmup: int, draws: int, chains: int, n_components: int,
           seed: int) -> tuple[pd.DataFrame, int]:
    """Condition every patient's twin on its fold's population and first observations; score the later ones."""
    arrays = cohort_arrays(test, spec, model)
    if SEGMENT_STARTS in arrays.covariates:
        raise SpecError("leave_future_out does not handle covariates that change within a patient yet")
    obs = arrays.obs
    mask = np.asarray(obs.mask)
    rank = np.cumsum(mask, axis=1) - 1  # 0-based index of each real observation in time order
    condition = mask & (rank < n_conditioning)
    future = mask & (rank >= score_after)
    usable = future.any(axis=1) & condition.any(axis=1)
    skipped = int((~usable).sum())
    pop_draws = [fit.population_draws(n_components) for fit in pops.fits]
    priors = []
    for i in range(arrays.n_patients):
        covs = {k: float(v[i]) for k, v in arrays.covariates.items()}
        prior = population_prior(spec, pop_draws[fold_of[arrays.patients[i]]], covs)
        center, scale = mixture_scaling(prior)
        priors.append(dict(prior) | {"center": center, "scale": scale})
    prior = {k: jnp.asarray(np.stack([p[k] for p in priors])) for k in priors[0]}
    cond_obs = obs._replace(mask=jnp.asarray(condition))
    fn = build_individual_model(spec, model, arrays.features)
    out = run_batched_nuts(fn, (prior, arrays.doses, cond_obs), warmup=warmup, draws=draws, chains=chains,
                           keep=_log_theta, seed=seed, batch=2,
                           cache_key=("calibration", spec.digest(), model.name, arrays.features))
    u = jnp.asarray(out.draws.reshape(arrays.n_patients, -1, out.draws.shape[-1]))  # (patient, draw, n_bsv)
    key_comp = jax.random.PRNGKey(seed)
    columns = output_columns(spec, model)

    def per_patient(pr: Any, d: Any, o: Any, co: Any, uu: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        k1, k2, k3, k4 = jax.random.split(k, 4)
        # the component (population draw: sigma, fixed effects) given u and the CONDITIONING data only; until
        # 2026-11-27 this used `o` (all observations), which let the held-out values choose the residual SDs
        logw = jax.vmap(lambda x: component_log_weights(spec, model, pr, x, d, co, arrays.features))(uu)
        comp = jax.random.categorical(k1, logw, axis=-1)
        twin = _predictive(spec, model, columns, pr, uu, comp, d, o, arrays.features, k2)
        # population only: component uniform, eta from the component's normal, no patient data
        comp0 = jax.random.randint(k3, (uu.shape[0],), 0, pr["mu"].shape[0])
        z = jax.random.normal(k4, uu.shape)
        u0 = pr["mu"][comp0] + jnp.einsum("dij,dj->di", pr["chol"][comp0], z)
        popu = _predictive(spec, model, columns, pr, u0, comp0, d, o, arrays.features, jax.random.fold_in(k2, 1))
        return twin, popu

    keys = jax.random.split(key_comp, arrays.n_patients)
    twin, popu = jax.jit(jax.vmap(per_patient))(prior, arrays.doses, obs, cond_obs, u, keys)
    u_np = np.asarray(u)
    twin_params = {f"twin_{n}": np.median(np.asarray(to_natural(spec.parameter(n), u_np[..., j])), axis=1)
                   for j, n in enumerate(spec.bsv_parameters)}  # posterior median per patient
    twin, popu = np.asarray(twin), np.asarray(popu)  # (patient, draw, time)
    rows = []
    value = np.asarray(obs.value)
    cens = np.asarray(obs.cens)
    out_idx = np.asarray(obs.output)
    t = np.asarray(obs.time)
    first = test.frame.groupby("id", sort=False)[list(test.covariates)].first()  # patient-level covariates
    for i in np.flatnonzero(usable):
        for j in np.flatnonzero(future[i] & (cens[i] == 0)):
            draws_ij = twin[i, :, j]
            seen = np.flatnonzero(condition[i] & (out_idx[i] == out_idx[i, j]))
            row = {"patient": arrays.patients[i], "fold": fold_of[arrays.patients[i]] + 1,
                   "obs_index": int(rank[i, j]), "time": float(t[i, j]),
                   "output": spec.error[int(out_idx[i, j])].output, "dv": float(value[i, j]),
                   "twin_median": float(np.median(draws_ij)), "population_median": float(np.median(popu[i, :, j])),
                   "last_value": float(value[i, seen[-1]]) if seen.size else np.nan,
                   "pit": float((draws_ij < value[i, j]).mean()),
                   "crps": float(crps_from_draws(draws_ij[None, :], np.array([value[i, j]]))[0])}
            for level in LEVELS:
                lo, hi = np.quantile(draws_ij, [(1 - level) / 2, (1 + level) / 2])
                row[f"in_{level:g}"] = bool(lo <= value[i, j] <= hi)
            row |= {name: float(v[i]) for name, v in twin_params.items()}
            row |= first.loc[arrays.patients[i]].to_dict()
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.insert(6, "unit", [arrays.units[o] for o in frame["output"]] if len(frame) else [])
    return frame, skipped


def _predictive(spec: TwinSpec, model: Any, columns: Sequence[int], prior: Any, u: jax.Array, comp: jax.Array,
                doses: Any, obs: Any, features: frozenset[str], key: jax.Array) -> jax.Array:
    """Observation-scale draws ``(draw, time)`` at `obs`'s times for latent parameters `u` and components `comp`.

    `u` holds the latent values of the BSV parameters (log for log-scale, the value itself for identity-scale
    ones: ``inference.latent.to_natural``); a ``known_sd`` output uses the forecast records' own DVSD.
    """
    bsv = spec.bsv_parameters
    others = [p.name for p in spec.parameters if not p.has_bsv]
    theta = {n: to_natural(spec.parameter(n), u[:, j]) for j, n in enumerate(bsv)} | {
        n: prior["fixed"][comp, j] for j, n in enumerate(others)}
    pred = predict_cohort(model, theta, jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (u.shape[0], *a.shape)),
                                                                doses),
                          jnp.broadcast_to(obs.time, (u.shape[0], *obs.time.shape)), features)
    pred = select_outputs(pred, obs.output, columns)  # (draw, time)
    sig = sigma_groups(spec, {s: prior[s][comp][:, None] for s in spec.sigma_names})
    return simulate_observations(key, pred, obs.output, errors=spec.error, sigmas=sig,
                                 sd=getattr(obs, "sd", None))


def calibration_by_group(
    result: CalibrationResult | pd.DataFrame, by: str, *, bins: int | Sequence[float] | None = None,
    threshold: float = 0.05, level: float = 0.8, n_boot: int = 1000, seed: int = 0,
) -> pd.DataFrame:
    """Coverage and MIPD errors split by covariate `by`, with bootstrap intervals and a gap flag.

    Parameters
    ----------
    result : CalibrationResult or DataFrame
        A study's result (or its ``predictions`` table, or any table with the same columns: ``patient``,
        ``dv``, ``twin_median``, ``in_<level>`` and the covariate column).
    by : str
        Patient-level covariate column (sex, age, weight, Apgar score ...).
    bins : int or sequence of float, optional
        Numeric covariates: number of quantile bands (default 3) or explicit band edges; a covariate with
        at most 5 distinct values is used as categories.
    threshold : float
        Flag a group whose coverage at `level` differs from the rest's by more than this (default 5 points).
    level : float
        The interval level compared (one of ``LEVELS``).
    n_boot : int
        Bootstrap resamples of patients (within group) for the 95 % intervals.

    Returns
    -------
    DataFrame
        One row per group: patients, observations, coverage at every level, the bootstrap 95 % interval of
        coverage at `level`, coverage of the rest, the gap, MDPE and MDAPE (%), and ``flag``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> p = pd.DataFrame({"patient": np.repeat(np.arange(40), 5), "dv": 10.0, "twin_median": 10.5,
    ...                   "SEX": np.repeat(np.arange(40) % 2, 5)})
    >>> for lv in LEVELS:
    ...     p[f"in_{lv:g}"] = rng.random(200) < np.where(p["SEX"] == 1, lv - 0.3, lv)
    >>> t = calibration_by_group(p, "SEX", n_boot=200)
    >>> t["flag"].tolist()
    [True, True]
    """
    p = result.predictions if isinstance(result, CalibrationResult) else result
    if by not in p.columns:
        raise KeyError(f"no covariate column {by!r} in the predictions; columns: {list(p.columns)}")
    x = p[by]
    if x.isna().any():
        raise ValueError(f"covariate {by!r} is missing for {int(x.isna().sum())} held-out observation(s) of patients "
                         f"{sorted(p.loc[x.isna(), 'patient'].unique().tolist())[:10]}; fill or drop them first")
    if pd.api.types.is_numeric_dtype(x) and x.nunique() > 5:
        edges = (np.quantile(x, np.linspace(0, 1, (bins or 3) + 1)) if bins is None or isinstance(bins, int)
                 else np.asarray(bins, dtype=float))
        edges = np.unique(edges)
        labels = [f"{lo:.4g}-{hi:.4g}" for lo, hi in itertools.pairwise(edges)]
        groups = pd.cut(x, edges, include_lowest=True, labels=labels).astype(str)
    else:
        groups = x.astype(str)
    col = f"in_{level:g}"
    rows = []
    for n_group, g in enumerate(sorted(groups.unique())):
        inside = p[groups == g]
        rest = p[groups != g]
        patients = inside["patient"].unique()
        by_patient = inside.groupby("patient")[col].agg(["sum", "count"])
        boot_lo, boot_hi = cluster_bootstrap_interval(by_patient["sum"].to_numpy(), by_patient["count"].to_numpy(),
                                                      n_boot=n_boot, seed=seed + n_group)
        pe = (inside["twin_median"] - inside["dv"]) / inside["dv"]
        cov = float(inside[col].mean())
        rest_cov = float(rest[col].mean()) if len(rest) else np.nan
        row = {by: g, "patients": len(patients), "observations": len(inside)}
        row |= {f"coverage_{lv:g}": float(inside[f"in_{lv:g}"].mean()) for lv in LEVELS if f"in_{lv:g}" in inside}
        row |= {f"coverage_{level:g}_low": boot_lo, f"coverage_{level:g}_high": boot_hi,
                "rest_coverage": rest_cov, "gap": cov - rest_cov,
                "MDPE_%": 100 * float(pe.median()), "MDAPE_%": 100 * float(pe.abs().median()),
                "flag": bool(abs(cov - rest_cov) > threshold)}
        rows.append(row)
    return pd.DataFrame(rows).set_index(by)
