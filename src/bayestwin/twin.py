"""The patient twin: configure, fit to the patient's history, update, forecast.

Follows the scikit-learn estimator pattern: ``__init__`` only stores its
arguments, ``fit`` starts afresh and returns ``self``, fitted state ends in
``_``, and ``forecast`` before ``fit`` raises ``NotFittedError``. A fitted twin records the version of
the population it was conditioned on (``population_version_``); ``rebase`` returns a new twin of the same
patient conditioned on another (usually newer) population version.

Examples
--------
>>> twin = Twin(example_spec(), population=None)
>>> twin
Twin(spec='example.one_cmt_oral') — not fitted; call .fit(events)
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from bayestwin.config import software_versions
from bayestwin.data.append import append_events
from bayestwin.data.event_table import EventTable
from bayestwin.diagnostics.convergence import ConvergenceGate, ConvergenceReport, check_convergence
from bayestwin.diagnostics.groups import InferenceGroups, group_draws, posterior_inference_data
from bayestwin.dynamics.events import Doses, bucket_size
from bayestwin.exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    InputError,
    NotFittedError,
    PopulationMismatchError,
    SpecError,
)
from bayestwin.forecast.forecast import Forecast, forecast_times, require_finite_predictions
from bayestwin.inference.arrays import CohortArrays, cohort_arrays
from bayestwin.inference.fit import PopulationFit
from bayestwin.inference.fleet_kernel import quadratic_form, sufficient_statistics_apply
from bayestwin.inference.individual import (
    PopulationPrior,
    build_individual_model,
    mixture_scaling,
    population_prior,
    weights_program,
)
from bayestwin.inference.kernels import WarmState, nuts_program
from bayestwin.inference.latent import to_natural
from bayestwin.inference.predictive import predictive_draws
from bayestwin.inference.sampler import SamplerConfig, parallel_chains_ok, run_nuts
from bayestwin.inference.twin_program import TwinConfig, twin_program, twin_program_applies
from bayestwin.models.registry import get_model
from bayestwin.spec import example_spec  # noqa: F401  (doctest namespace)
from bayestwin.spec.regimen import Regimen
from bayestwin.spec.twin_spec import TwinSpec
from bayestwin.units import conversion_factor

if TYPE_CHECKING:  # pragma: no cover - the store is only passed in; arviz is imported when idata_ is first read
    import arviz as az

    from bayestwin.store import TwinStore

__all__ = ["Twin", "append_events"]


class Twin:
    """A patient's digital twin: the population model conditioned on the patient's own data.

    Parameters
    ----------
    spec : TwinSpec
        The model; must be the spec the population was fitted with.
    population : PopulationFit
        Cohort posterior used as the patient's prior.
    sampler : SamplerConfig, optional
        NUTS settings for the patient's posterior.
    gate : ConvergenceGate, optional
        Convergence thresholds for the patient's posterior.
    n_components : int
        Population posterior draws used as prior mixture components (K).
    override_convergence : bool
        Use a population fit that failed its gate anyway (recorded in forecasts).
    update_warmup : int
        Warm-up iterations of a warm-started ``update`` (the full ``sampler.warmup`` for a cold fit).
    """

    def __init__(self, spec: TwinSpec, *, population: PopulationFit | None, sampler: SamplerConfig | None = None,
                 gate: ConvergenceGate | None = None, n_components: int = 200,
                 override_convergence: bool = False, update_warmup: int = 200) -> None:
        self.spec = spec
        self.population = population
        self.sampler = sampler
        self.gate = gate
        self.n_components = n_components
        self.override_convergence = override_convergence
        self.update_warmup = update_warmup

    @classmethod
    def from_store(cls, store: TwinStore, patient: object, version: int | None = None, *,
                   population: PopulationFit | None = None) -> Twin:
        """The fitted twin of `patient`'s `version` (default: the latest) in `store`, ready to update or forecast.

        Rebuilt from the version's spec, population, event snapshot, posterior and final sampler state;
        see :func:`bayestwin.twin_io.load_twin` (`population` saves loading the population again).
        """
        from bayestwin.twin_io import load_twin

        return load_twin(store, patient, version, population=population)

    # --- state ------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        """Whether ``fit`` has run."""
        return "_idata" in self.__dict__ or "_draws" in self.__dict__

    @property
    def idata_(self) -> az.InferenceData:
        """The patient's posterior (``chain, draw``) and sample stats, an ``arviz.InferenceData``.

        ``fit`` keeps the draws as arrays (the gate and ``forecast`` read those); this InferenceData, and
        arviz's import, are made the first time it is read.
        """
        if "_idata" not in self.__dict__:
            if "_draws" not in self.__dict__:
                raise AttributeError("idata_: this Twin is not fitted; call twin.fit(events)")
            self.__dict__["_idata"] = self.__dict__["_draws"].to_inference_data()
        return self.__dict__["_idata"]

    @idata_.setter
    def idata_(self, value: az.InferenceData) -> None:
        self.__dict__["_idata"] = value
        self.__dict__.pop("_draws", None)

    def __repr__(self) -> str:
        if not self.fitted:
            return f"Twin(spec={self.spec.name!r}) — not fitted; call .fit(events)"
        d = self.diagnostics_
        verdict = "fit OK" if d.ok else "fit FAILED"
        n_obs = len(self.arrays_.observations)
        return (f"Twin(spec={self.spec.name!r}, patient={self.patient_id_!r}, observations={n_obs}, "
                f"{verdict}: R-hat <= {d.max_rhat:.3f}, ESS >= {d.min_ess:.0f}, {d.divergences} divergences)")

    # --- fit ----------------------------------------------------------------------------------
    def fit(self, events: EventTable) -> Twin:
        """Infer the patient's parameters from `events` (one patient's history); return ``self``."""
        return self._fit(events, warm=None)

    def _fit(self, events: EventTable, warm: WarmState | None) -> Twin:
        if self.population is None:
            raise NotFittedError("this Twin has no population fit; pass population=fit_population(...)")
        if events.n_patients != 1:
            raise InputError(f"a Twin is fitted to one patient's events; got {events.n_patients} patients "
                             f"{events.patients[:5]} — select one with events.patient(id)")
        if self.population.spec.digest() != self.spec.digest():
            theirs, ours = self.population.spec, self.spec
            raise SpecError(f"the population was fitted with spec {theirs.name!r} ({theirs.digest()[:19]}), "
                            f"not {ours.name!r} ({ours.digest()[:19]}); fit the population with the same spec")
        overridden = not self.population.ok
        self.population.require_converged(override=self.override_convergence)
        sampler = self.sampler or SamplerConfig.default()
        model = get_model(self.spec.model)
        arrays = cohort_arrays(events, self.spec, model)
        covs = {k: (np.asarray(v[0]) if np.ndim(v) == 2 else float(v[0])) for k, v in arrays.covariates.items()}
        prior = population_prior(self.spec, self.population.population_draws(self.n_components), covs)
        center, scale = mixture_scaling(prior)
        # host (numpy) arrays: the compiled programs take them as they are, where jnp.asarray and indexing a
        # jax array would each dispatch (trace, lower, look up in the compilation cache) one small program
        args = {k: np.asarray(v) for k, v in prior.items()} | {"center": np.asarray(center),
                                                                "scale": np.asarray(scale)}
        if sufficient_statistics_apply(self.spec, arrays.features) and self.spec.bsv_parameters:
            args["quadratic"] = np.asarray(quadratic_form(prior["mu"], prior["chol_inv"]))
        doses = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], arrays.doses)
        obs = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], arrays.obs)
        start = time.perf_counter()
        log_theta, diverging, energy, comp = self._sample(model, arrays, args, doses, obs, sampler, warm)
        self.wall_time_s_ = time.perf_counter() - start
        # latent values of the BSV parameters (log-parameters on the log scale): (chain, draw, n_bsv)
        chains, draws = log_theta.shape[:2]
        flat = log_theta.reshape(chains * draws, -1)
        if comp is None:  # MCMC.run and the warm program: draw each draw's component from its weights here
            weights = weights_program(self.spec, model, arrays.features)(args, flat, doses, obs)
            comp = np.asarray(jax.random.categorical(jax.random.PRNGKey(sampler.seed + 1), weights, axis=-1))
        comp = comp.ravel()
        posterior: dict[str, np.ndarray] = {}
        bsv = self.spec.bsv_parameters
        others = [p.name for p in self.spec.parameters if not p.has_bsv]
        natural = lambda name, z: np.asarray(to_natural(self.spec.parameter(name), z))  # noqa: E731
        dims: dict[str, list[str]] = {}
        if "starts" in prior:  # time-varying covariates: (chain, draw, segment)
            n_seg = len(prior["starts"])
            for j, name in enumerate(bsv):
                z = flat[:, j][:, None] + prior["shift"][comp, :, j]
                posterior[name] = natural(name, z).reshape(chains, draws, n_seg)
            for j, name in enumerate(others):
                posterior[name] = prior["fixed"][comp, :, j].reshape(chains, draws, n_seg)
            dims = {name: ["segment"] for name in self.spec.parameter_names}
        else:
            for j, name in enumerate(bsv):
                posterior[name] = natural(name, flat[:, j]).reshape(chains, draws)
            for j, name in enumerate(others):
                posterior[name] = prior["fixed"][comp, j].reshape(chains, draws)
        for s in self.spec.sigma_names:
            posterior[s] = prior[s][comp].reshape(chains, draws)
        posterior["component"] = comp.reshape(chains, draws)
        stats = {"diverging": np.asarray(diverging), "energy": np.asarray(energy)}
        starts = np.asarray(prior["starts"]) if "starts" in prior else None
        units = {p.name: p.unit for p in self.spec.parameters}
        draws_ = InferenceGroups({"posterior": posterior, "sample_stats": stats}, build=functools.partial(
            posterior_inference_data, posterior, dims, stats, starts, units))
        self.__dict__.pop("_idata", None)
        self.__dict__["_draws"] = draws_
        self.__dict__["_segment_starts"] = starts
        self.diagnostics_: ConvergenceReport = check_convergence(draws_, var_names=list(bsv), gate=self.gate)
        self.events_ = events
        self.arrays_: CohortArrays = arrays
        pid = events.patients[0]
        self.patient_id_ = pid.item() if hasattr(pid, "item") else pid
        self.population_overridden_ = overridden
        self.population_version_: str = self.population.version
        if not self.diagnostics_.ok:
            warnings.warn(f"twin of patient {self.patient_id_!r} FAILED its convergence gate:\n"
                          f"{self.diagnostics_.format()}", ConvergenceWarning, stacklevel=2)
        return self

    def update(self, new_events: EventTable, *, warm: bool = True) -> Twin:
        """Add `new_events` (same patient) to the history and refit on all of it; return ``self``.

        The posterior is the posterior given the whole history, as after ``fit``. With `warm` (default) the
        sampler starts where the previous fit's chains ended, with their step sizes and mass matrices, and
        warms up for ``update_warmup`` iterations only; its program is compiled once per padded data size
        (``bayestwin.inference.kernels``), so an update in the same size bucket compiles nothing. If the
        warm fit fails its convergence gate, the twin refits cold (full warm-up) and records that in
        ``update_mode_``.
        """
        self._require_fitted("update")
        if [p.item() if hasattr(p, "item") else p for p in new_events.patients] != [self.patient_id_]:
            raise InputError(f"update expects events of patient {self.patient_id_!r}, got {new_events.patients}; "
                             "a twin belongs to one patient: update that patient's own twin")
        events = append_events(self.events_, new_events)
        if not warm:
            self._fit(events, warm=None)
            self.update_mode_ = "cold"
            return self
        self.update_mode_ = self._fit_warm(events, self.warm_)
        return self

    def rebase(self, population: PopulationFit, *, warm: bool = True) -> Twin:
        """A new twin of the same patient, conditioned on `population` (usually a newer version); ``self`` is kept.

        The new twin has this twin's settings and event history, and its posterior is the posterior given
        that history under the new population prior, as if it had been fitted with it. With `warm` (default)
        its chains start where this twin's ended and warm up for ``update_warmup`` iterations (step size and
        mass matrix adapt again), compiling nothing new; if that fit fails its convergence gate, it is refitted
        cold. The new twin records ``rebased_from_`` (this twin's population version), ``population_version_``
        (the new one) and ``rebase_mode_`` (``"warm"``, ``"cold"`` or why it fell back to cold).

        Raises
        ------
        NotFittedError
            If this twin is not fitted.
        PopulationMismatchError
            If `population` was fitted with another spec than this twin's.
        ConvergenceError
            If `population` failed its gate (unless the twin was made with ``override_convergence=True``).

        Examples
        --------
        >>> new_pop = old_pop.refit(cohort)  # doctest: +SKIP
        >>> rebased = twin.rebase(new_pop)  # doctest: +SKIP
        >>> (rebased.rebased_from_, rebased.population_version_) == (old_pop.version, new_pop.version)  # doctest: +SKIP
        True
        """
        self._require_fitted("rebase")
        if population.spec.digest() != self.spec.digest():
            theirs, ours = population.spec, self.spec
            raise PopulationMismatchError(
                f"cannot rebase the twin of patient {self.patient_id_!r} onto population {population.version}: it was "
                f"fitted with spec {theirs.name!r} ({theirs.digest()[:19]}), the twin with {ours.name!r} "
                f"({ours.digest()[:19]}). Refit the population with the twin's spec (population.refit works on the "
                "same spec), or fit a new Twin with the population's spec.")
        twin = Twin(self.spec, population=population, sampler=self.sampler, gate=self.gate,
                    n_components=self.n_components, override_convergence=self.override_convergence,
                    update_warmup=self.update_warmup)
        if warm:
            twin.rebase_mode_ = twin._fit_warm(self.events_, self.warm_)
        else:
            twin._fit(self.events_, warm=None)
            twin.rebase_mode_ = "cold"
        twin.rebased_from_ = self.population_version_
        return twin

    def _fit_warm(self, events: EventTable, warm: WarmState) -> str:
        """Fit warm-started from `warm`; refit cold if that fails its gate. Returns how it was fitted."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a failed warm fit is retried cold below
            self._fit(events, warm=warm)
        if self.diagnostics_.ok:
            return "warm"
        failed = self.diagnostics_.format()
        self._fit(events, warm=None)
        return f"cold (the warm-started fit failed its gate: {failed.splitlines()[0]})"

    def _sample(self, model: Any, arrays: CohortArrays, args: PopulationPrior, doses: Doses, obs: Any,
                sampler: SamplerConfig, warm: WarmState | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """NUTS on the patient's posterior: ``log_theta`` (chain, draw, n_bsv), divergences, energy, components.

        A cold fit runs the compiled twin program (``bayestwin.inference.twin_program``: starts, NUTS and
        the draws' components in one cached program) where it applies, else ``MCMC.run`` (components: None,
        drawn by the caller); a warm fit runs the cached warm program of ``bayestwin.inference.kernels``.
        """
        if warm is None and twin_program_applies(model, arrays.features, sampler):
            run = twin_program(self.spec, model, arrays.features, self.n_components, TwinConfig.from_sampler(sampler))
            out = run(np.int64(sampler.seed), args, doses, obs)
            self.warm_ = WarmState(positions={"z": out.positions}, step_size=out.step_size,
                                   inverse_mass_matrix=out.inverse_mass_matrix)
            return (np.asarray(out.latent), np.asarray(out.diverging), np.asarray(out.energy),
                    np.asarray(out.component))
        fn = build_individual_model(self.spec, model, arrays.features)
        parallel = parallel_chains_ok(model, arrays.features)
        if warm is None:
            mcmc = run_nuts(fn, (args, doses, obs), sampler, parallel_ok=parallel)
            extra = mcmc.get_extra_fields(group_by_chain=True)
            last = mcmc.last_state
            if sampler.chains == 1:  # MCMC keeps no chain axis for one chain
                last = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], last)
            inv = last.adapt_state.inverse_mass_matrix  # MCMC keeps numpyro's blocks: {("z",): matrix}
            self.warm_ = WarmState(positions=last.z, step_size=last.adapt_state.step_size,
                                   inverse_mass_matrix=next(iter(inv.values())) if isinstance(inv, dict) else inv)
            return (np.asarray(mcmc.get_samples(group_by_chain=True)["log_theta"]), np.asarray(extra["diverging"]),
                    np.asarray(extra["energy"]), None)
        run = nuts_program(fn, key=("twin", self.spec.digest(), model.name, arrays.features, self.n_components),
                           chains=sampler.chains, warmup=self.update_warmup, draws=sampler.draws,
                           target_accept=sampler.target_accept, max_tree_depth=sampler.max_tree_depth,
                           dense_mass=sampler.dense_mass,
                           parallel=parallel and jax.local_device_count() >= sampler.chains)
        # host copies: the warm program then sees one input signature whether the state came from the twin
        # program (one device) or from an earlier update (pmap: one shard per chain), so it compiles once
        warm = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), warm)
        out = run((args, doses, obs), warm.positions, seed=sampler.seed, warm=warm)
        self.warm_ = out.warm
        return out.samples["log_theta"], out.diverging, out.energy, None

    # --- forecast -----------------------------------------------------------------------------
    def forecast(self, times: Sequence[float] | np.ndarray, regimen: Regimen | None = None, *,
                 override_convergence: bool = False, seed: int = 0) -> Forecast:
        """Predictive draws at `times` (patient clock, spec time unit), under past doses plus `regimen`.

        Raises ``ConvergenceError`` if the twin's (or the population's) fit failed
        its gate, unless `override_convergence` is true; the override is recorded.
        """
        self._require_fitted("forecast")
        failed = (not self.diagnostics_.ok) or self.population_overridden_
        if failed and not override_convergence:
            raise ConvergenceError(
                f"the twin of patient {self.patient_id_!r} failed its convergence gate:\n{self.diagnostics_.format()}\n"
                "A forecast from it could be wrong with a confident interval. Refit with more draws, or pass "
                "override_convergence=True to forecast anyway (recorded in the forecast).")
        model = get_model(self.spec.model)
        doses = self._doses_with(regimen, model)
        if "_draws" in self.__dict__:  # the arrays of this process's fit: no InferenceData needed
            post, starts = self.__dict__["_draws"].posterior, self.__dict__["_segment_starts"]
        else:  # a twin loaded from a store or a fleet
            post = self.idata_.posterior
            starts = post["segment_start"].to_numpy() if "segment_start" in post.coords else None
        values = {p: group_draws(post, p) for p in (*self.spec.parameter_names, *self.spec.sigma_names)}
        chains = values[self.spec.parameter_names[0]].shape[0]
        n = chains * values[self.spec.parameter_names[0]].shape[1]
        theta = {p: values[p].reshape(n, *values[p].shape[2:]) for p in self.spec.parameter_names}
        sigmas = {s: values[s].ravel() for s in self.spec.sigma_names}
        times = forecast_times(times)
        ipred, pred = predictive_draws(self.spec, model, theta, sigmas, doses, times, seed=seed, starts=starts)
        outputs = list(self.spec.observed_outputs)
        require_finite_predictions(ipred, times, outputs, what=f"the forecast of patient {self.patient_id_!r}")
        meta = {
            "patient": str(self.patient_id_),
            "time_origin": "the time origin of the patient's data (time 0 of the event table)",
            "regimen": None if regimen is None else regimen.to_records(),
            "provenance": {"spec_name": self.spec.name, "spec_digest": self.spec.digest(),
                           "data_digest": self.events_.digest(), "population_fit_id": self.population.fit_id,
                           "population_version": self.population_version_,
                           "rebased_from": getattr(self, "rebased_from_", None),
                           "twin_fit_id": f"twin-{self.population.fit_id[4:]}-{self.events_.digest()[7:19]}",
                           "software": software_versions()},
            "diagnostics": {"population": self.population.diagnostics.to_dict(),
                            "twin": self.diagnostics_.to_dict(),
                            "status": "failed-overridden" if failed else "ok",
                            "override_recorded": bool(failed)},
        }
        return Forecast.from_draws(ipred, pred, chains=chains, times=times, outputs=outputs,
                                   units={o: self.arrays_.units[o] for o in outputs},
                                   time_unit=self.arrays_.units["time"], metadata=meta,
                                   nonnegative=[o for o in outputs if o in model.nonnegative_outputs])

    # --- helpers ------------------------------------------------------------------------------
    def _require_fitted(self, what: str) -> None:
        if not self.fitted:
            raise NotFittedError(f"this Twin is not fitted yet; call twin.fit(events) before .{what}()")

    def _doses_with(self, regimen: Regimen | None, model: Any) -> Doses:
        past = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], self.arrays_.doses)
        keep = past.mask
        fields = {k: getattr(past, k)[keep] for k in Doses._fields}
        if regimen is not None:
            t_fac = conversion_factor(regimen.time_unit, self.arrays_.units["time"], where="regimen time")
            a_fac = conversion_factor(regimen.amt_unit, self.arrays_.units["amt"], where="regimen amount")
            new = {"time": [d.time * t_fac for d in regimen.doses], "amt": [d.amt * a_fac for d in regimen.doses],
                   "rate": [d.rate * a_fac / t_fac for d in regimen.doses],
                   "cmt": [model.compartment_index(d.cmt) for d in regimen.doses],
                   "ii": [0.0] * len(regimen.doses), "ss": [0] * len(regimen.doses),
                   "reset": [False] * len(regimen.doses), "mask": [True] * len(regimen.doses)}
            fields = {k: np.concatenate([fields[k], np.asarray(new[k], dtype=fields[k].dtype)]) for k in Doses._fields}
        n = len(fields["time"])
        size = bucket_size(n)
        pad = {"time": np.inf, "amt": 0.0, "rate": 0.0, "cmt": 0, "ii": 0.0, "ss": 0, "reset": False, "mask": False}
        return Doses(**{k: np.concatenate([v, np.full(size - n, pad[k], dtype=v.dtype)]) for k, v in fields.items()})


# the old home of the deferred InferenceData builder (kept so twins pickled before the move still load)
_twin_inference_data = posterior_inference_data
