"""Population fits: a ``TwinSpec`` + an ``EventTable`` -> a labelled, gated posterior.

Examples
--------
>>> from bayestwin.data import load_dataset
>>> from bayestwin.spec import example_spec
>>> fit = fit_population(example_spec(), load_dataset("theo_sd"),
...                      sampler=SamplerConfig(chains=2, warmup=100, draws=100))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field

import arviz as az
import numpy as np
import pandas as pd

from bayestwin.data.event_table import EventTable
from bayestwin.diagnostics.convergence import ConvergenceGate, ConvergenceReport, check_convergence
from bayestwin.exceptions import ConvergenceError, ConvergenceWarning
from bayestwin.inference.arrays import CohortArrays, cohort_arrays
from bayestwin.inference.labels import population_inference_data
from bayestwin.inference.population import build_population_model
from bayestwin.inference.sampler import SamplerConfig, parallel_chains_ok, run_nuts
from bayestwin.models.registry import get_model
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["PopulationFit", "fit_population", "population_quantities"]

log = logging.getLogger(__name__)


def population_quantities(spec: TwinSpec) -> list[str]:
    """Names of the population-level posterior variables of `spec` (typical values, coefficients, SDs)."""
    names = [f"tv_{p.name}" for p in spec.parameters if p.estimated]
    names += [f"beta_{p.name}_{e.covariate}" for p in spec.parameters for e in p.covariates if e.fixed is None]
    names += [f"omega_{n}" for n in spec.bsv_parameters]
    names += list(spec.sigma_names)
    return names


@dataclass(frozen=True)
class PopulationFit:
    """A cohort posterior with its provenance and convergence verdict.

    Attributes
    ----------
    spec : TwinSpec
        The model specification that was fitted.
    idata : arviz.InferenceData
        Labelled posterior (dims ``chain, draw, patient``), log-likelihood and
        observed data (dim ``observation``), sample stats; units in ``attrs``.
    diagnostics : ConvergenceReport
        The gate's verdict on every population and per-patient quantity.
    arrays : CohortArrays
        The padded data the model saw.
    data_digest : str
        ``EventTable.digest()`` of the fitted data.
    fit_id : str
        Stable id of (spec, data, sampler settings).
    wall_time_s : float
        Sampling wall time, compilation included.
    sampler : SamplerConfig
        The NUTS settings.
    """

    spec: TwinSpec
    idata: az.InferenceData
    diagnostics: ConvergenceReport
    arrays: CohortArrays
    data_digest: str
    fit_id: str
    wall_time_s: float
    sampler: SamplerConfig
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the fit passed the convergence gate."""
        return self.diagnostics.ok

    def require_converged(self, *, override: bool = False) -> None:
        """Raise ``ConvergenceError`` if the fit failed its gate, unless `override` is true."""
        if not self.ok and not override:
            raise ConvergenceError(
                f"population fit {self.fit_id} failed its convergence gate; its posterior must not be used:\n"
                f"{self.diagnostics.format()}\nRefit with more draws or a better-conditioned spec, or pass "
                "override_convergence=True to use it anyway (the override is recorded in the output).")

    def summary(self) -> pd.DataFrame:
        """Posterior summary of the population quantities, with a unit column."""
        names = population_quantities(self.spec)
        table = az.summary(self.idata, var_names=names, hdi_prob=0.95, round_to="none")
        table.insert(0, "unit", [self.idata.posterior[n].attrs.get("unit", "") for n in table.index])
        return table

    def population_draws(self, k: int | None = None) -> dict[str, np.ndarray]:
        """Population-level draws flattened over chains, evenly thinned to `k` (all if None).

        Includes typical values (fixed ones repeated), covariate coefficients,
        omegas, the correlation Cholesky factor (if any) and residual SDs.
        """
        post = self.idata.posterior
        n = post.sizes["chain"] * post.sizes["draw"]
        idx = np.arange(n) if k is None or k >= n else np.linspace(0, n - 1, k).round().astype(int)
        out: dict[str, np.ndarray] = {}
        names = population_quantities(self.spec) + (["corr_chol"] if "corr_chol" in post else [])
        for name in names:
            value = post[name].to_numpy()
            out[name] = value.reshape(n, *value.shape[2:])[idx]
        for p in self.spec.parameters:
            if p.fixed is not None:
                out[f"tv_{p.name}"] = np.full(len(idx), p.fixed)
            for e in p.covariates:
                if e.fixed is not None:
                    out[f"beta_{p.name}_{e.covariate}"] = np.full(len(idx), e.fixed)
        return out

    def __repr__(self) -> str:
        d = self.diagnostics
        verdict = "OK" if self.ok else "FAILED"
        return (f"PopulationFit(spec={self.spec.name!r}, patients={self.arrays.n_patients}, "
                f"convergence {verdict}: R-hat <= {d.max_rhat:.3f}, ESS >= {d.min_ess:.0f}, "
                f"{d.divergences} divergences)")


def _fit_id(spec: TwinSpec, data_digest: str, sampler: SamplerConfig) -> str:
    payload = json.dumps({"spec": spec.digest(), "data": data_digest, "sampler": asdict(sampler)}, sort_keys=True)
    return "fit-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def fit_population(
    spec: TwinSpec,
    table: EventTable,
    *,
    sampler: SamplerConfig | None = None,
    gate: ConvergenceGate | None = None,
) -> PopulationFit:
    """Fit the hierarchical model of `spec` to the cohort in `table` with NUTS.

    Parameters
    ----------
    spec : TwinSpec
        Model specification (its structural model must be registered).
    table : EventTable
        Validated cohort data; converted to the spec's units.
    sampler : SamplerConfig, optional
        NUTS settings (default ``SamplerConfig.default()``: 4 chains x 1000).
    gate : ConvergenceGate, optional
        Convergence thresholds (default R-hat 1.01, ESS 400, no divergences, E-BFMI 0.2).

    Returns
    -------
    PopulationFit
        Always returned; check ``.ok``. A failed fit also emits a
        ``ConvergenceWarning`` with what failed and what to try.
    """
    sampler = sampler or SamplerConfig.default()
    model = get_model(spec.model)
    arrays = cohort_arrays(table, spec, model)
    fn = build_population_model(spec, model, arrays.features)
    start = time.perf_counter()
    mcmc = run_nuts(fn, (arrays.doses, arrays.obs, {k: np.asarray(v) for k, v in arrays.covariates.items()}),
                    sampler, parallel_ok=parallel_chains_ok(model, arrays.features))
    wall = time.perf_counter() - start
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    idata = population_inference_data(samples, extra, spec, model, arrays)
    # per-patient parameters that vary (a fixed value without BSV or covariates is a constant: no R-hat)
    checked = population_quantities(spec) + [p.name for p in spec.parameters
                                             if p.estimated or p.has_bsv or p.covariates]
    report = check_convergence(idata, var_names=[n for n in checked if n in idata.posterior], gate=gate)
    digest = table.digest()
    starts = mcmc.bayestwin_starts
    notes = arrays.notes + ((starts.describe(),) if starts is not None else ())
    if starts is not None:
        idata.sample_stats.attrs.update({"start_potential_energy": [float(v) for v in starts.potential_after],
                                         "restarted_chains": [int(c) for c in np.flatnonzero(starts.restarted)]})
    fit = PopulationFit(spec=spec, idata=idata, diagnostics=report, arrays=arrays, data_digest=digest,
                        fit_id=_fit_id(spec, digest, sampler), wall_time_s=wall, sampler=sampler, notes=notes)
    idata.posterior.attrs.update({"fit_id": fit.fit_id, "spec_digest": spec.digest(), "data_digest": digest,
                                  "convergence_ok": int(report.ok)})
    if not report.ok:
        warnings.warn(f"population fit of {spec.name!r} FAILED its convergence gate:\n{report.format()}",
                      ConvergenceWarning, stacklevel=2)
    log.info("population fit %s: %s (%.1f s)", fit.fit_id, report.format().splitlines()[0], wall)
    return fit


