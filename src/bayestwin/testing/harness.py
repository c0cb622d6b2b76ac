"""``check_model``: the conformance harness every structural model goes through.

Checks, each reported with what was measured:

``spec``
    The spec fits the model (``validate_spec``) and round-trips through dict and JSON with the same
    digest.
``prior_predictive``
    ``n_prior_draws`` draws of the population prior give predictions of shape (draw, patient, time,
    output), all finite, with parseable units for every output.
``gradients``
    The log-density gradient is finite and matches central finite differences at three prior draws,
    at the simulated truth and at two points around it (energies of the data's order, where the
    sampler works: rounding floors ~1e-8), up to 12 coordinates each (Richardson-extrapolated central
    differences at steps 1e-3 and 1e-4, the smaller error counting; each error net of 100 times its
    rounding floor ``eps |E| / h`` at energy E; relative tolerance 1e-5 for closed forms, 2e-3 for
    ODE models, whose solutions are known to about rtol 1e-8, which a difference step of 1e-3 turns
    into ~1e-5 relative noise). A reported 0.0 means below the floor: a derivative 0.1 % off fails
    (tests/testing/test_check_model.py).
``compile_once``
    One jit compilation of the log density serves two simulated data sets of the same padded size.
``recovery``
    A fit to data simulated from known typical values passes its gate, and the truth lies in the
    central 95 % interval for all but at most ``binom.ppf(0.99, P, 0.05)`` of the P typical values
    (so a calibrated model fails by chance less than 1 % of the time). Sampler: ``RECOVERY_SAMPLER``,
    4 chains x (1000 + 1000), with a DIAGONAL mass matrix for a non-centred spec and a DENSE one for a
    centred spec (``TwinSpec.centered``; the rule is ``bayestwin.testing.centring.dense_mass_for``, shared
    with ``run_sbc`` and ``run_twin_sbc``). Measured 2026-11-27 (16 patients, seed 0): with a dense matrix
    everywhere, 8 of the 16 closed-form models (all non-centred) failed the gate on a BSV SD (bulk ESS
    290-390, R-hat 1.011-1.015, 1-13 divergences); diagonal passed 7 of them (e.g. ``oncology.stein``
    omega_d bulk ESS 545 -> 1020, ``oncology.claret_tgi`` omega_kd 291 -> 848, no divergences). A
    non-centred hierarchy is a set of nearly independent standard-normal ``eta_z`` curved around each BSV
    SD: no constant covariance fits it, and a dense estimate of 50-120 dimensions from the 500-draw
    adaptation window mostly adds noise. In a centred spec each patient's ``eta`` is pinned by the data to
    ``latent_i - TV``: a LINEAR correlation of every ``eta_i`` with the typical value, which a dense matrix
    captures and a diagonal one does not (``longitudinal.level`` with diagonal: tv_level bulk ESS 217,
    R-hat 1.013; with dense it passes). 15 of the 16 closed-form models pass so; ``cardio.windkessel_emax``
    does not (tv_r0 R-hat 1.011, ESS 493; centring its data-rich cl, v, r0 cures that but uncovers 8
    divergences in the weakly informed Emax random effects: ``bayestwin.testing.centring``).
``sbc``
    A short simulation-based calibration (``bayestwin.validation.run_sbc``): ``sbc_replications`` prior
    draws (default 30), 2 chains x (300 + 500) thinned by 10, ranks of every population parameter and of
    the first patient's parameters tested for uniformity (chi-square, Bonferroni at 1 %), the mass
    matrix of ``dense_mass_for`` (diagonal for a non-centred spec; dense for all until 2026-11-27).

Examples
--------
>>> report = check_model("pk.one_cmt_iv", checks=("spec",))
>>> report.ok, [r.name for r in report.results]
(True, ['spec'])
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer import Predictive, init_to_sample, init_to_value
from numpyro.infer.util import initialize_model, potential_energy

from bayestwin.exceptions import SpecError
from bayestwin.inference.arrays import SEGMENT_STARTS, cohort_arrays
from bayestwin.inference.population import build_population_model, predict_cohort
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.models.registry import get_model, validate_spec
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec
from bayestwin.testing.centring import dense_mass_for
from bayestwin.testing.design import default_spec, simulate_cohort
from bayestwin.units import parse_unit

__all__ = ["ALL_CHECKS", "RECOVERY_SAMPLER", "CheckReport", "CheckResult", "check_model"]

ALL_CHECKS: tuple[str, ...] = ("spec", "prior_predictive", "gradients", "compile_once", "recovery", "sbc")

#: NUTS settings of the recovery check; ``check_model`` sets its seed, and a dense mass matrix for a centred spec
#: (see the module docstring)
RECOVERY_SAMPLER = SamplerConfig(chains=4, warmup=1000, draws=1000, dense_mass=False)


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: its name, whether it passed, and what was measured."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """All checks of one model; ``ok`` only if every check passed."""

    model: str
    results: tuple[CheckResult, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(r.ok for r in self.results)

    def format(self) -> str:
        """One line per check."""
        lines = [f"check_model({self.model!r}): {'PASSED' if self.ok else 'FAILED'}"]
        lines += [f"  [{'ok' if r.ok else 'FAILED'}] {r.name}: {r.detail}" for r in self.results]
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise ``AssertionError`` with the report if a check failed (for use in a user's test suite)."""
        if not self.ok:
            raise AssertionError(self.format())


def check_model(
    model: str | AbstractStructuralModel, spec: TwinSpec | None = None, *, checks: Sequence[str] = ALL_CHECKS,
    n_prior_draws: int = 1000, n_patients: int = 12, seed: int = 0, recovery_sampler: object | None = None,
    sbc_replications: int = 30,
) -> CheckReport:
    """Run the conformance checks `checks` on `model` (a registered name or instance) with `spec`.

    `spec` defaults to ``default_spec(model)`` (the model's ``reference_values`` as prior medians);
    simulated data follow ``simulate_cohort``. `recovery_sampler` is the ``SamplerConfig`` of the
    recovery fit (default ``RECOVERY_SAMPLER`` with seed `seed`: 4 chains x (1000 + 1000), a diagonal mass
    matrix, dense for a centred spec); `sbc_replications` the number of
    SBC replications.
    """
    model = get_model(model) if isinstance(model, str) else model
    unknown = set(checks) - set(ALL_CHECKS)
    if unknown:
        raise SpecError(f"unknown checks {sorted(unknown)}; choose from {list(ALL_CHECKS)}")
    spec = spec or default_spec(model)
    ctx = _Context(model, spec, n_patients, seed)
    results = []
    for name in ALL_CHECKS:
        if name in checks:
            try:
                ok, detail = _CHECKS[name](model, spec, n_prior_draws=n_prior_draws, n_patients=n_patients,
                                           seed=seed, sampler=recovery_sampler, sbc_replications=sbc_replications,
                                           ctx=ctx)
            except Exception as err:  # a check that crashes has failed; say how
                ok, detail = False, f"raised {type(err).__name__}: {err}"
            results.append(CheckResult(name, bool(ok), detail))
    return CheckReport(model.name, tuple(results))


def _check_spec(model: AbstractStructuralModel, spec: TwinSpec, **_: object) -> tuple[bool, str]:
    validate_spec(spec, model)
    again = TwinSpec.from_dict(json.loads(spec.to_json()))
    same = again == spec and again.digest() == spec.digest()
    return same, f"validates against {model.name}; dict/JSON round trip {'keeps' if same else 'CHANGES'} the digest"


def _data(model: AbstractStructuralModel, spec: TwinSpec, n_patients: int, seed: int) -> tuple:
    table, truth = simulate_cohort(spec, n_patients=n_patients, seed=seed)
    arrays = cohort_arrays(table, spec, model)
    covs = {k: jnp.asarray(v) for k, v in arrays.covariates.items()}
    return arrays, (arrays.doses, arrays.obs, covs), truth


class _Context:
    """What the checks of one ``check_model`` call share, each built on first use.

    The simulated data set (seed `seed`), the population model, the first prior draw in the sampler's
    unconstrained coordinates, and ONE jitted ``value_and_grad`` of the log density taking the data as
    an argument: the gradient check and the compile-once check call the same compiled function, so a
    model's log density is compiled once per ``check_model`` call (it was three times: energy, gradient,
    and the compile-once check's own).
    """

    def __init__(self, model: AbstractStructuralModel, spec: TwinSpec, n_patients: int, seed: int) -> None:
        self.model, self.spec, self.n_patients, self.seed = model, spec, n_patients, seed
        self._draws: dict[int, object] = {}

    @cached_property
    def data(self) -> tuple:
        return _data(self.model, self.spec, self.n_patients, self.seed)

    @cached_property
    def fn(self) -> object:
        return build_population_model(self.spec, self.model, self.data[0].features)

    def prior_draw(self, k: int) -> object:
        """Prior draw `k` (key ``seed + k``) in the sampler's unconstrained coordinates, via ``initialize_model``."""
        if k not in self._draws:
            self._draws[k] = initialize_model(jax.random.PRNGKey(self.seed + k), self.fn, model_args=self.data[1],
                                              init_strategy=init_to_sample)
        return self._draws[k]

    def flat_draw(self, k: int) -> np.ndarray:
        """Prior draw `k` flattened, as a numpy array (the argument type every call of `value_and_grad` uses)."""
        return np.asarray(ravel_pytree(self.prior_draw(k).param_info.z)[0])

    def truth_point(self) -> np.ndarray:
        """The simulated truth in the sampler's unconstrained coordinates, flattened (``_truth_values``)."""
        values = _truth_values(self.spec, self.data[2], self.data[0])
        init = initialize_model(jax.random.PRNGKey(self.seed), self.fn, model_args=self.data[1],
                                init_strategy=init_to_value(values=values))
        return np.asarray(ravel_pytree(init.param_info.z)[0])

    @cached_property
    def unravel(self) -> object:
        return ravel_pytree(self.prior_draw(0).param_info.z)[1]

    @cached_property
    def value_and_grad(self) -> object:
        """``(flat unconstrained parameters, data args) -> (energy, gradient)``, jitted."""
        fn, unravel = self.fn, self.unravel
        return jax.jit(jax.value_and_grad(lambda x, a: potential_energy(fn, a, {}, unravel(x))))


def _truth_values(spec: TwinSpec, truth: dict, arrays: object) -> dict[str, jax.Array]:
    """Sample-site values of `spec`'s population model at the ``simulate_cohort`` truth.

    Typical values and each patient's random effects as simulated, BSV SDs 0.2 (``simulate_cohort``'s
    omega, times |truth| on the identity scale), residual SDs 0.1 (proportional) or 0.1 x the output's
    mean |value| (additive). Sites it does not know (covariate coefficients) start uniformly in (-2, 2).
    """
    from bayestwin.inference.latent import to_latent

    bsv = spec.bsv_parameters
    values: dict[str, jax.Array] = {}
    omega = {}
    for p in spec.parameters:
        if p.fixed is None:
            values[f"tv_{p.name}"] = jnp.asarray(truth[p.name], dtype=float)
        if p.has_bsv:
            omega[p.name] = 0.2 * ((abs(truth[p.name]) or 1.0) if p.scale == "identity" else 1.0)
            values[f"omega_{p.name}"] = jnp.asarray(omega[p.name])
    if bsv:
        tv = {b: to_latent(spec.parameter(b), truth[b]) for b in bsv}
        z = {b: jnp.asarray([to_latent(spec.parameter(b), pat[b]) for pat in truth["patients"]]) for b in bsv}
        eta = jnp.stack([z[b] - tv[b] for b in bsv], axis=1)
        if spec.centered is True:
            values["eta"] = eta
        else:
            centred = () if spec.centered is False else spec.centered
            rest = [j for j, b in enumerate(bsv) if b not in centred]
            if centred:
                values["latent_c"] = jnp.stack([z[b] for b in centred], axis=1)
            if rest:
                values["eta_z"] = jnp.stack([eta[:, j] / omega[bsv[j]] for j in rest], axis=1)
    obs = arrays.obs  # type: ignore[attr-defined]
    for site, j, _ in spec.sigma_sites:
        if spec.error[j].kind == "proportional":
            values[site] = jnp.asarray(0.1)
        else:
            real = np.asarray(obs.mask) & (np.asarray(obs.output) == j)
            values[site] = jnp.asarray(0.1 * float(np.abs(np.asarray(obs.value)[real]).mean()))
    return values


def _check_prior_predictive(model: AbstractStructuralModel, spec: TwinSpec, *, n_prior_draws: int,
                            ctx: _Context, **_: object) -> tuple[bool, str]:
    arrays, args, _ = ctx.data
    fn = ctx.fn
    starts = args[2].get(SEGMENT_STARTS)

    @jax.jit  # one compilation of prior draws and predictions (vmap outside jit runs op by op)
    def predictions(key: jax.Array, args: tuple) -> jax.Array:
        draws = Predictive(fn, num_samples=n_prior_draws)(key, *args)
        theta = {p: draws[p] for p in spec.parameter_names}
        return jax.vmap(lambda th: predict_cohort(model, th, arrays.doses, arrays.obs.time, arrays.features,
                                                  starts))(theta)

    pred = np.asarray(predictions(jax.random.PRNGKey(ctx.seed), args))
    pred = pred[:, np.asarray(arrays.obs.mask)]  # (draw, real observation, output)
    expected = (n_prior_draws, int(np.asarray(arrays.obs.mask).sum()), len(model.outputs))
    finite = np.isfinite(pred).all()
    for out in spec.observed_outputs:
        parse_unit(arrays.units[out])
    ok = pred.shape == expected and finite
    return ok, (f"{n_prior_draws} prior draws -> predictions {pred.shape} (expected {expected}), "
                f"{'all finite' if finite else f'{int((~np.isfinite(pred)).sum())} non-finite'}; units "
                f"{ {o: arrays.units[o] for o in spec.observed_outputs} }")


def _check_gradients(model: AbstractStructuralModel, spec: TwinSpec, *, seed: int, ctx: _Context,
                     **_: object) -> tuple[bool, str]:
    args = ctx.data[1]
    rtol = 2e-3 if model.kind == "ode" else 1e-5

    def energy(x: np.ndarray) -> float:
        return float(ctx.value_and_grad(x, args)[0])

    worst, floors = 0.0, []
    rng = np.random.default_rng(seed)
    truth = ctx.truth_point()
    # three prior draws (energies up to ~1e6 far from the data), the simulated truth and two points around it
    # (energies of the data's order: rounding floors ~1e-8)
    points = [(f"prior draw {k}", ctx.flat_draw(k)) for k in range(3)]
    points += [("the truth", truth)] + [("the truth + jitter", truth + 0.2 * rng.normal(size=truth.size))
                                        for _ in range(2)]
    for where, flat in points:
        grad = np.asarray(ctx.value_and_grad(flat, args)[1])
        if not np.isfinite(grad).all():
            return False, f"non-finite gradient at {where}"
        # rounding floor of the differences: E (1 +- eps) differs by eps |E| between evaluations, i.e.
        # ~eps |E| / h in the derivative; errors are reported net of 100 times it
        e0 = abs(energy(flat))
        for i in rng.choice(flat.size, size=min(12, flat.size), replace=False):
            scale = max(1.0, abs(grad[i]))
            errors = []
            # two steps: Richardson's truncation error (h**4 x a fifth derivative) can reach 1e-5 at a wild
            # prior draw (cardio.stenosis_ffr, a coordinate with gradient 9e5: 1.7e-5 at h = 1e-3, 3e-13 at
            # 1e-4); a wrong gradient disagrees at both, so the smaller error counts
            for rel_step in (1e-3, 1e-4):
                h = rel_step * max(1.0, abs(float(flat[i])))

                def central(step: float, i: int = int(i), flat: np.ndarray = flat) -> float:
                    up, down = flat.copy(), flat.copy()
                    up[i] += step
                    down[i] -= step
                    return (energy(up) - energy(down)) / (2 * step)

                fd = (4.0 * central(h / 2) - central(h)) / 3.0  # Richardson: truncation error O(h**4)
                floor = 100.0 * np.finfo(float).eps * e0 / h
                floors.append(floor / scale)
                errors.append(max(0.0, abs(fd - grad[i]) - floor) / scale)
            worst = max(worst, min(errors))
    return worst < rtol, (f"3 prior draws, the truth and 2 points around it, up to 12 coordinates each: worst "
                          f"relative error {worst:.1e} net of the rounding floor (tol {rtol:g}; floor up to "
                          f"{max(floors):.0e} relative)")


def _check_compile_once(model: AbstractStructuralModel, spec: TwinSpec, *, n_patients: int, seed: int,
                        ctx: _Context, **_: object) -> tuple[bool, str]:
    arrays1, args1, _ = ctx.data
    _, args2, _ = _data(model, spec, n_patients, seed + 1)
    flat = ctx.flat_draw(0)
    energy = ctx.value_and_grad  # the gradient check's compiled function, if it ran: no compilation may follow
    v1, _ = energy(flat, args1)
    v2, _ = energy(flat, args2)
    compiled = energy._cache_size()
    ok = compiled == 1 and bool(jnp.isfinite(v1) & jnp.isfinite(v2)) and float(v1) != float(v2)
    return ok, f"two data sets of padded size {tuple(arrays1.obs.time.shape)}: {compiled} compilation(s)"


def _check_recovery(model: AbstractStructuralModel, spec: TwinSpec, *, n_patients: int, seed: int,
                    sampler: object | None, **_: object) -> tuple[bool, str]:
    import warnings

    from scipy import stats

    from bayestwin.inference import fit_population

    table, truth = simulate_cohort(spec, n_patients=max(n_patients, 16), seed=seed)
    # dense mass for centered=True (linear TV-eta ridge), diagonal otherwise (bayestwin.testing.centring)
    sampler = sampler or dataclasses.replace(RECOVERY_SAMPLER, seed=seed, dense_mass=dense_mass_for(spec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the gate's verdict is reported below
        fit = fit_population(spec, table, sampler=sampler)
    post = fit.idata.posterior
    misses = []
    for p in spec.parameters:
        if p.estimated:
            lo, hi = np.quantile(post[f"tv_{p.name}"].to_numpy(), [0.025, 0.975])
            if not lo < truth[p.name] < hi:
                misses.append(f"{p.name} (truth {truth[p.name]:g}, 95 % interval {lo:.3g}-{hi:.3g})")
    n = sum(p.estimated for p in spec.parameters)
    allowed = int(stats.binom.ppf(0.99, n, 0.05))
    ok = fit.diagnostics.ok and len(misses) <= allowed
    gate = "passed" if fit.diagnostics.ok else f"FAILED ({'; '.join(fit.diagnostics.failures)})"
    return ok, (f"gate {gate}; {len(misses)} of {n} typical values "
                f"outside their 95 % interval (allowed {allowed}){': ' + ', '.join(misses) if misses else ''}")


def _check_sbc(model: AbstractStructuralModel, spec: TwinSpec, *, n_patients: int, seed: int,
               sbc_replications: int, **_: object) -> tuple[bool, str]:
    from bayestwin.validation.sbc import run_sbc  # validation builds on testing.design

    res = run_sbc(spec, n_replications=sbc_replications, n_patients=n_patients, warmup=300, draws=500, thin=10,
                  seed=seed)
    return res.ok, res.format()


_CHECKS = {"spec": _check_spec, "prior_predictive": _check_prior_predictive, "gradients": _check_gradients,
           "compile_once": _check_compile_once, "recovery": _check_recovery, "sbc": _check_sbc}
