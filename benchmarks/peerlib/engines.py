"""One runner per engine for the peer benchmark (issue 9); each returns a ``Run`` with the same fields.

Times: ``sampling_s`` is warm-up + draws without compilation (JAX engines: the sampler's wall time minus the
JAX compile events recorded while it ran, via ``jax.monitoring``; PyMC: ``sampling_time`` of its trace; nutpie
and Stan: the sampling call, their model being compiled before it); ``wall_s`` is everything from the model
object to the draws, compilation included. Population draws are ``(chain, draw)`` arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .models import POPULATION, STAN_CODE, initial_values, nonmem_frame, numpyro_model, pymc_model, stan_data


@dataclass
class Run:
    """One engine's fit: population draws, timings and sampler statistics (sampling phase)."""

    engine: str
    draws: dict[str, np.ndarray]
    sampling_s: float
    wall_s: float
    compile_s: float
    n_steps: np.ndarray  # leapfrog steps per draw, (chain, draw)
    diverging: int
    step_size: float | None = None
    warmup_steps: float | None = None  # total leapfrog steps of the warm-up, when the engine records them
    notes: list[str] = field(default_factory=list)


@dataclass
class Settings:
    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    seed: int = 1
    target_accept: float = 0.8


class CompileClock:
    """Records every JAX compilation event (trace, lowering, backend compile) with the time it ended."""

    def __init__(self) -> None:
        import jax

        self.events: list[tuple[float, float]] = []
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **_kw) -> None:
        if event.startswith("/jax/core/compile") or ("compile" in event and event.endswith("duration")):
            self.events.append((time.perf_counter(), float(duration)))

    def between(self, start: float, end: float) -> float:
        return sum(d for t, d in self.events if start <= t <= end)


_CLOCK: CompileClock | None = None


def clock() -> CompileClock:
    global _CLOCK
    if _CLOCK is None:
        _CLOCK = CompileClock()
    return _CLOCK


class _CountingMCMC:
    """Builds a NumPyro ``MCMC`` whose ``run`` is warm-up (its leapfrog steps recorded) then sampling.

    Two compiled programs instead of one (the sampling phase starts from the warmed-up state with another
    key), so the draws differ from one ``run`` call, not their distribution.
    """

    def __new__(cls, *args, **kwargs):
        import jax
        from numpyro.infer import MCMC

        class Counting(MCMC):
            warmup_steps: float | None = None
            step_size: float | None = None

            def run(self, rng_key, *model_args, extra_fields=(), init_params=None, **model_kwargs):
                if getattr(self, "_warming", False):  # MCMC.warmup runs through run()
                    return super().run(rng_key, *model_args, extra_fields=extra_fields, init_params=init_params,
                                       **model_kwargs)
                k_warm, k_run = jax.random.split(rng_key)
                self._warming = True
                try:
                    self.warmup(k_warm, *model_args, init_params=init_params, collect_warmup=True,
                                extra_fields=("num_steps",), **model_kwargs)
                finally:
                    self._warming = False
                self.warmup_steps = float(np.asarray(self.get_extra_fields()["num_steps"]).sum())
                super().run(k_run, *model_args, extra_fields=extra_fields, **model_kwargs)
                self.step_size = float(np.mean(np.asarray(self.last_state.adapt_state.step_size)))

        return Counting(*args, **kwargs)


def fit_bayestwin(spec, table, sampler, quantities, name: str, count_warmup: bool = False) -> Run:
    """``fit_population(spec, table, sampler=sampler)``, timed; ``(chain, draw)`` draws of `quantities`.

    `quantities` None: every posterior variable without a patient axis (the population quantities).

    ``count_warmup=True``: warm-up and sampling run as two programs (``_CountingMCMC``) so that the warm-up's
    leapfrog steps and the adapted step size are recorded.
    """
    import jax

    import bayestwin.inference.fit as fit_mod
    import bayestwin.inference.sampler as sampler_mod

    clk = clock()
    window: list[float] = []
    original, original_mcmc = fit_mod.run_nuts, sampler_mod.MCMC
    made: list = []

    def timed(*args, **kwargs):
        window.append(time.perf_counter())
        try:
            mcmc = original(*args, **kwargs)
            jax.block_until_ready(mcmc.get_samples())  # MCMC.run returns before the device work ends
            made.append(mcmc)
            return mcmc
        finally:
            window.append(time.perf_counter())

    start = time.perf_counter()
    fit_mod.run_nuts = timed
    if count_warmup:
        sampler_mod.MCMC = _CountingMCMC
    try:
        fit = fit_mod.fit_population(spec, table, sampler=sampler)
    finally:
        fit_mod.run_nuts, sampler_mod.MCMC = original, original_mcmc
    wall = time.perf_counter() - start
    compile_s = clk.between(*window)
    post = fit.idata.posterior
    stats = fit.idata.sample_stats
    mcmc = made[0]
    if quantities is None:
        quantities = [k for k in post.data_vars if post[k].dims == ("chain", "draw")]
    return Run(name, {k: post[k].to_numpy() for k in quantities}, sampling_s=window[1] - window[0] - compile_s,
               wall_s=wall, compile_s=compile_s, n_steps=stats["n_steps"].to_numpy(),
               diverging=int(stats["diverging"].sum()), step_size=getattr(mcmc, "step_size", None),
               warmup_steps=getattr(mcmc, "warmup_steps", None),
               notes=[f"gate {'passed' if fit.ok else 'FAILED'}"])


def run_bayestwin(data: dict, s: Settings, dense: bool = False, adaptation: str = "stan",
                  count_warmup: bool = False, trajectory: str = "numpyro") -> Run:
    """bayestwin's ``fit_population`` on the ``oral_1cpt`` spec, starts at the jittered prior medians.

    ``dense=True``: ``SamplerConfig(dense_mass=True)`` (a dense mass matrix adapted in warm-up);
    ``adaptation="gradient"``: the nutpie-style diagonal adaptation (``SamplerConfig.adaptation``);
    ``trajectory="stan"``: bayestwin's own NUTS tree (``SamplerConfig.trajectory``).
    """
    from model_specs.oral_1cpt import spec

    from bayestwin.data import read_nonmem
    from bayestwin.inference import SamplerConfig

    sampler = SamplerConfig(chains=s.chains, warmup=s.warmup, draws=s.draws, seed=s.seed,
                            target_accept=s.target_accept, init="prior", dense_mass=dense, adaptation=adaptation,
                            trajectory=trajectory)
    table = read_nonmem(nonmem_frame(data), units={"time": "h", "amt": "mg", "dv": "mg/L"})
    name = "bayestwin (dense mass)" if dense else "bayestwin" + ("" if adaptation == "stan" else f" ({adaptation})")
    name += "" if trajectory == "numpyro" else f" ({trajectory} tree)"
    return fit_bayestwin(spec(), table, sampler, POPULATION, name, count_warmup=count_warmup)


def run_numpyro(data: dict, s: Settings) -> Run:
    """NumPyro written directly: NUTS, diagonal mass matrix, chains in parallel over XLA host devices."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    jax.config.update("jax_enable_x64", True)
    clk = clock()
    n = int(data["dose"].size)
    start = time.perf_counter()
    inits = initial_values(n, s.chains, s.seed)
    init_params = {k: jnp.log(jnp.array([c[k] for c in inits])) for k in POPULATION}
    init_params["eta"] = jnp.zeros((s.chains, n, 3))
    kernel = NUTS(functools.partial(numpyro_model, n=n), target_accept_prob=s.target_accept, max_tree_depth=10)
    method = "parallel" if jax.local_device_count() >= s.chains else "sequential"
    mcmc = MCMC(kernel, num_warmup=s.warmup, num_samples=s.draws, num_chains=s.chains, chain_method=method,
                progress_bar=False)
    args = tuple(jnp.asarray(data[k]) for k in ("pid", "t", "y", "dose"))
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(s.seed), *args, init_params=init_params,
             extra_fields=("diverging", "num_steps", "adapt_state.step_size"))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    t1 = time.perf_counter()
    extra = mcmc.get_extra_fields(group_by_chain=True)
    compile_s = clk.between(t0, t1)
    return Run("numpyro", {k: np.asarray(samples[k]) for k in POPULATION}, sampling_s=t1 - t0 - compile_s,
               wall_s=t1 - start, compile_s=compile_s, n_steps=np.asarray(extra["num_steps"]),
               diverging=int(np.asarray(extra["diverging"]).sum()),
               step_size=float(np.mean(np.asarray(extra["adapt_state.step_size"])[:, -1])),
               notes=[f"chain_method {method}"])


def _from_idata(engine: str, idata, sampling_s: float, wall_s: float, compile_s: float) -> Run:
    post = idata.posterior
    stats = idata.sample_stats
    steps = next(stats[k] for k in ("n_steps", "n_leapfrog") if k in stats).to_numpy()
    warm = getattr(idata, "warmup_sample_stats", None)
    warm_steps = None
    if warm is not None:
        warm_steps = float(next(warm[k] for k in ("n_steps", "n_leapfrog") if k in warm).sum())
    return Run(engine, {k: post[k].to_numpy() for k in POPULATION}, sampling_s=sampling_s, wall_s=wall_s,
               compile_s=compile_s, n_steps=steps, diverging=int(stats["diverging"].sum()),
               step_size=float(stats["step_size"].to_numpy()[:, -1].mean()), warmup_steps=warm_steps)


def run_pymc(data: dict, s: Settings) -> Run:
    """PyMC's default sampler (its NUTS; chains in processes over all cores), starts as above, not jittered again."""
    import pymc as pm

    start = time.perf_counter()
    model = pymc_model(data)
    inits = initial_values(int(data["dose"].size), s.chains, s.seed)
    with model:
        idata = pm.sample(draws=s.draws, tune=s.warmup, chains=s.chains, cores=min(s.chains, os.cpu_count() or 1),
                          random_seed=s.seed,
                          target_accept=s.target_accept, initvals=inits, init="adapt_diag", progressbar=False,
                          compute_convergence_checks=False)
    wall = time.perf_counter() - start
    sampling = float(idata.posterior.attrs["sampling_time"])
    return _from_idata("pymc", idata, sampling, wall, wall - sampling)


def run_nutpie(data: dict, s: Settings, backend: str = "numba") -> Run:
    """nutpie on the PyMC model (numba backend by default), each chain started by the same rule."""
    import nutpie

    start = time.perf_counter()
    model = pymc_model(data)
    compiled = nutpie.compile_pymc_model(model, backend=backend)
    names = list(compiled.shape_info[0])[: len(POPULATION) + 1]  # then come the constrained values
    n = int(data["dose"].size)
    order = [m[: -len("_log__")] if m.endswith("_log__") else m for m in names]
    if order != [*POPULATION, "eta"]:
        raise RuntimeError(f"nutpie's unconstrained coordinates are {names}; expected {POPULATION} + eta")

    def initial_point(seed) -> np.ndarray:
        point = initial_values(n, 1, int(seed) % 2**32)[0]
        return np.concatenate([[math.log(point[k]) for k in POPULATION], np.zeros(3 * n)])

    compiled = dataclasses.replace(compiled, initial_point_func=initial_point)
    t0 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=s.draws, tune=s.warmup, chains=s.chains, seed=s.seed,
                          progress_bar=False, target_accept=s.target_accept)
    t1 = time.perf_counter()
    return _from_idata(f"nutpie ({backend})", idata, t1 - t0, t1 - start, t0 - start)


def run_stan(data: dict, s: Settings) -> Run:
    """Stan via pystan (httpstan caches the compiled model: a second run's build is fast, said in notes)."""
    import stan

    start = time.perf_counter()
    posterior = stan.build(STAN_CODE, data=stan_data(data), random_seed=s.seed)
    t0 = time.perf_counter()
    inits = [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in c.items()}
             for c in initial_values(int(data["dose"].size), s.chains, s.seed)]
    fit = posterior.sample(num_chains=s.chains, num_samples=s.draws, num_warmup=s.warmup, init=inits,
                           delta=s.target_accept)
    t1 = time.perf_counter()

    def by_chain(name: str) -> np.ndarray:
        return np.asarray(fit[name]).reshape(s.draws, s.chains).T

    return Run("stan (pystan)", {k: by_chain(k) for k in POPULATION}, sampling_s=t1 - t0, wall_s=t1 - start,
               compile_s=t0 - start, n_steps=by_chain("n_leapfrog__"), diverging=int(by_chain("divergent__").sum()),
               step_size=float(by_chain("stepsize__")[:, -1].mean()))


ENGINES = {"bayestwin": run_bayestwin, "numpyro": run_numpyro, "pymc": run_pymc, "nutpie": run_nutpie,
           "stan": run_stan}
