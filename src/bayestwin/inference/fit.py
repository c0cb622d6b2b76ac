"""Population fits: a ``TwinSpec`` + an ``EventTable`` -> a labelled, gated, versioned posterior.

Every ``PopulationFit`` has a content-based ``version`` (``pop-`` + 16 hex digits, see
:func:`population_version`) and the ``parent`` version it was refitted from (``None`` for a first fit).
``fit.refit(cohort)`` fits the same spec to a (grown) cohort and returns the child version; twins record
the version they were conditioned on, and ``Twin.rebase`` moves a twin to a newer one.

Examples
--------
>>> from bayestwin.data import load_dataset
>>> from bayestwin.spec import example_spec
>>> fit = fit_population(example_spec(), load_dataset("theo_sd"),
...                      sampler=SamplerConfig(chains=2, warmup=100, draws=100))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayestwin.data.event_table import EventTable
from bayestwin.diagnostics.convergence import ConvergenceGate, ConvergenceReport, check_convergence
from bayestwin.diagnostics.groups import InferenceGroups
from bayestwin.exceptions import ConvergenceError, ConvergenceWarning, SpecError, StoreIntegrityError
from bayestwin.inference.arrays import CohortArrays, cohort_arrays
from bayestwin.inference.population import build_population_model
from bayestwin.inference.population_meta import (
    checked_quantities,
    population_quantities,
    population_version,
)
from bayestwin.inference.population_meta import fit_id as _fit_id
from bayestwin.inference.sampler import SamplerConfig, parallel_chains_ok, run_nuts
from bayestwin.models.registry import get_model
from bayestwin.spec.twin_spec import TwinSpec

if TYPE_CHECKING:  # pragma: no cover - the store sits above inference; it is only passed in; arviz loads slowly
    import arviz as az

    from bayestwin.store import TwinStore

__all__ = ["PopulationFit", "fit_population", "load_population", "population_quantities", "population_version"]

log = logging.getLogger(__name__)
class _InferenceDataField:
    """The ``idata`` field of ``PopulationFit``: an ``InferenceGroups`` given to it becomes the InferenceData when read.

    A population read without arviz (``PopulationFit.from_netcdf``) keeps its groups; ``fit.idata`` builds the
    ``arviz.InferenceData`` (importing arviz) on first access and keeps it. The fit's own methods read the groups.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_value"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:  # dataclasses: the field has no default
            raise AttributeError(self.slot)
        value = obj.__dict__[self.slot]
        if isinstance(value, InferenceGroups):
            value = obj.__dict__[self.slot] = value.to_inference_data()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class PopulationFit:
    """A cohort posterior with its provenance and convergence verdict.

    Attributes
    ----------
    spec : TwinSpec
        The model specification that was fitted.
    idata : arviz.InferenceData
        Labelled posterior (dims ``chain, draw, patient``), log-likelihood and
        observed data (dim ``observation``), sample stats; units in ``attrs``. May be given as an
        ``InferenceGroups`` (read without arviz): it becomes the InferenceData when first read.
    diagnostics : ConvergenceReport
        The gate's verdict on every population and per-patient quantity.
    arrays : CohortArrays or None
        The padded data the model saw (``None`` for a fit loaded from a store: the store keeps its hash).
    data_digest : str
        ``EventTable.digest()`` of the fitted data.
    fit_id : str
        Stable id of (spec, data, sampler settings).
    wall_time_s : float
        Sampling wall time, compilation included.
    sampler : SamplerConfig
        The NUTS settings.
    notes : tuple of str
        Remarks on the data and the starts.
    parent : str or None
        Version of the population this one was refitted from (``PopulationFit.refit``); ``None`` for a
        first fit.
    version : str
        Content-based version id, computed from the rest (:func:`population_version`).
    """

    spec: TwinSpec
    idata: az.InferenceData = _InferenceDataField()  # type: ignore[assignment]
    diagnostics: ConvergenceReport
    arrays: CohortArrays | None
    data_digest: str
    fit_id: str
    wall_time_s: float
    sampler: SamplerConfig
    notes: tuple[str, ...] = field(default=())
    parent: str | None = None
    version: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", population_version(self.spec.digest(), self.data_digest, self.parent,
                                                               self._groups().posterior))

    def _groups(self) -> Any:
        """The posterior's groups as given (InferenceData or InferenceGroups): read without building arviz's."""
        return self.__dict__["_idata_value"]

    @property
    def n_patients(self) -> int:
        """Number of patients in the fitted cohort."""
        if self.arrays is not None:
            return self.arrays.n_patients
        return int(self._groups().posterior.sizes.get("patient", 0))

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
        import arviz as az

        names = population_quantities(self.spec)
        table = az.summary(self.idata, var_names=names, hdi_prob=0.95, round_to="none")
        table.insert(0, "unit", [self.idata.posterior[n].attrs.get("unit", "") for n in table.index])
        return table

    def population_draws(self, k: int | None = None) -> dict[str, np.ndarray]:
        """Population-level draws flattened over chains, evenly thinned to `k` (all if None).

        Includes typical values (fixed ones repeated), covariate coefficients,
        omegas, the correlation Cholesky factor (if any) and residual SDs.
        """
        post = self._groups().posterior
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

    def refit(self, cohort: EventTable, *, gate: ConvergenceGate | None = None, **changes: Any) -> PopulationFit:
        """Fit the same spec to `cohort` (typically grown) and return the next version, whose parent is this one.

        Parameters
        ----------
        cohort : EventTable
            The cohort to fit (all of it: a refit starts from the spec's priors, not from this posterior).
        gate : ConvergenceGate, optional
            Convergence thresholds; by default this fit's.
        **changes
            ``SamplerConfig`` fields to change (e.g. ``draws=2000, seed=3``); the rest as in this fit.

        Examples
        --------
        >>> from bayestwin.data import load_dataset
        >>> new = old.refit(load_dataset("theo_sd"), seed=2)  # doctest: +SKIP
        >>> new.parent == old.version  # doctest: +SKIP
        True
        """
        known = [f.name for f in fields(SamplerConfig)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise TypeError(f"refit got unknown sampler settings {unknown}; SamplerConfig has {known}")
        new = fit_population(self.spec, cohort, sampler=replace(self.sampler, **changes),
                             gate=gate or self.diagnostics.gate)
        return replace(new, parent=self.version)

    @classmethod
    def from_netcdf(cls, path: str | os.PathLike[str], spec: TwinSpec, *, gate: ConvergenceGate | None = None,
                    sampler: SamplerConfig | None = None) -> PopulationFit:
        """The population fit saved in `path` by ``fit.idata.to_netcdf(path)``, read without importing arviz.

        The file is read once; its posterior and sample stats are decoded now (xarray, h5netcdf engine, as
        ``arviz.from_netcdf`` reads them) and the convergence gate runs on them; ``idata`` becomes the
        ``arviz.InferenceData`` of every group (arviz imported then) when first read. ``fit_id`` and
        ``data_digest`` come from the posterior's attributes (written by ``fit_population``); ``arrays`` is
        ``None``. Same draws, same version as the fit that was saved.

        Raises
        ------
        SpecError
            If the posterior records another spec digest than `spec`'s.

        Examples
        --------
        >>> fit.idata.to_netcdf("population.nc")  # doctest: +SKIP
        >>> pop = PopulationFit.from_netcdf("population.nc", spec)  # doctest: +SKIP
        >>> pop.version == fit.version  # doctest: +SKIP
        True
        """
        import io

        import h5netcdf
        import xarray as xr

        data = Path(path).read_bytes()  # once: the groups read later come from these bytes, not a changed file

        def read(name: str) -> Any:
            with xr.open_dataset(io.BytesIO(data), group=name, engine="h5netcdf", cache=False) as ds:
                return ds.load()

        with h5netcdf.File(io.BytesIO(data), "r") as f:
            names, root = list(f.groups), dict(f.attrs)
        # the posterior and sample stats now (the gate, the twin's prior); the others when idata is built
        datasets = {name: read(name) for name in names if name in ("posterior", "sample_stats")}

        def build() -> az.InferenceData:
            import arviz as az

            with warnings.catch_warnings():  # arviz warns about groups outside its schema; kept as written
                warnings.simplefilter("ignore", UserWarning)
                return az.InferenceData(attrs=root, **{n: datasets[n] if n in datasets else read(n) for n in names})

        groups = InferenceGroups(datasets, build=build)
        attrs = datasets["posterior"].attrs
        recorded = attrs.get("spec_digest")
        if recorded is not None and recorded != spec.digest():
            raise SpecError(f"the population in {os.fspath(path)!r} was fitted with spec {recorded[:19]}, not "
                            f"{spec.name!r} ({spec.digest()[:19]}); pass the spec it was fitted with")
        gate = gate or ConvergenceGate()
        return cls(spec=spec, idata=groups, diagnostics=check_convergence(groups, checked_quantities(spec, groups),
                                                                          gate=gate),
                   arrays=None, data_digest=str(attrs.get("data_digest", "")), fit_id=str(attrs.get("fit_id", "")),
                   wall_time_s=0.0, sampler=sampler or SamplerConfig())

    @classmethod
    def from_store(cls, store: TwinStore, version: str | None = None) -> PopulationFit:
        """The population `version` (default: the latest committed) of `store`; see :func:`load_population`."""
        return load_population(store, version)

    def __repr__(self) -> str:
        d = self.diagnostics
        verdict = "OK" if self.ok else "FAILED"
        return (f"PopulationFit({self.version}, spec={self.spec.name!r}, patients={self.n_patients}, "
                f"convergence {verdict}: R-hat <= {d.max_rhat:.3f}, ESS >= {d.min_ess:.0f}, "
                f"{d.divergences} divergences)")


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
    from bayestwin.inference.labels import population_inference_data  # imports arviz

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
    report = check_convergence(idata, var_names=checked_quantities(spec, idata), gate=gate)
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




def load_population(store: TwinStore, version: str | None = None) -> PopulationFit:
    """Rebuild the ``PopulationFit`` of population `version` (default: the latest) committed to `store`.

    The posterior comes back bit for bit (patients under their store pseudonyms), the spec from its
    stored JSON, the convergence report by re-running the gate with the stored thresholds on the stored
    draws. ``arrays`` is ``None`` (the store keeps the data's hash, not the data). The version is
    recomputed from the loaded content and must equal the stored one.

    Raises
    ------
    StoreError
        If the store has no such population.
    StoreIntegrityError
        If the loaded spec or draws do not reproduce the stored hashes.

    Examples
    --------
    >>> pop = load_population(store, "pop-0123456789abcdef")  # doctest: +SKIP
    >>> twin = Twin(pop.spec, population=pop).fit(events)  # doctest: +SKIP
    """
    stored = store.load_population(version, lazy=True)  # the posterior's groups, without arviz (fit.idata: lazily)
    spec = TwinSpec.from_dict(stored.spec)
    if spec.digest() != stored.spec_hash:
        raise StoreIntegrityError(f"population {stored.version} in {store.path}: its stored spec hashes to "
                                  f"{spec.digest()}, not the committed {stored.spec_hash}; the row was altered or "
                                  "the spec format changed. Restore the store from a backup, or refit.")
    gate = ConvergenceGate(**(stored.diagnostics.get("gate") or {}))  # defaults where a commit gave none
    info = stored.fit
    fit = PopulationFit(spec=spec, idata=stored.posterior, arrays=None, data_digest=stored.data_hash,
                        diagnostics=check_convergence(stored.posterior, checked_quantities(spec, stored.posterior),
                                                      gate=gate),
                        fit_id=str(info.get("fit_id", "")), wall_time_s=float(info.get("wall_time_s", 0.0)),
                        sampler=SamplerConfig(**(info.get("sampler") or {})), notes=tuple(info.get("notes", ())),
                        parent=stored.parent)
    if fit.version != stored.version:
        raise StoreIntegrityError(f"population {stored.version} in {store.path} loads as {fit.version}: its draws, "
                                  "spec, data hash or parent differ from what was committed. Restore the store from "
                                  "a backup, or refit the population.")
    return fit
