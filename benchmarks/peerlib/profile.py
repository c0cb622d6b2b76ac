"""Where the time goes (issue 9): gradient cost per evaluation, and nutpie driven by bayestwin's JAX density.

``gradient_costs``: the cost of one log density + gradient of the N-patient model, one chain, measured inside a
compiled ``lax.fori_loop`` of evaluations for the JAX densities (what NUTS pays inside its compiled while loop,
no Python dispatch), and per Python call for nutpie's numba-compiled PyMC density and for bayestwin's JAX density
called from Python (what a nutpie backend pays per step).

``run_nutpie_bayestwin``: nutpie's sampler (Rust; mass matrix adapted from gradients) on bayestwin's population
log density (``fit_population``'s model for the ``oral_1cpt`` spec, float64, jitted ``value_and_grad``), through
``nutpie.compiled_pyfunc.from_pyfunc``, same starts rule, same chains and draws.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .engines import Run, Settings
from .models import POPULATION, initial_values, nonmem_frame, numpyro_model


def bayestwin_density(data: dict):
    """``(value_and_grad of the log density on a flat vector, ravel, unravel)`` of bayestwin's population model."""
    import jax
    from jax.flatten_util import ravel_pytree
    from model_specs.oral_1cpt import spec
    from numpyro.infer.util import initialize_model

    from bayestwin.data import read_nonmem
    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.inference.population import build_population_model
    from bayestwin.models import get_model

    s = spec()
    model = get_model(s.model)
    table = read_nonmem(nonmem_frame(data), units={"time": "h", "amt": "mg", "dv": "mg/L"})
    arrays = cohort_arrays(table, s, model)
    fn = build_population_model(s, model, arrays.features)
    args = (arrays.doses, arrays.obs, dict(arrays.covariates))
    info = initialize_model(jax.random.PRNGKey(0), fn, model_args=args)[0]
    x0, unravel = ravel_pytree(info.z)
    potential = info.potential_fn if hasattr(info, "potential_fn") else None
    if potential is None:  # numpyro's ModelInfo is (param_info, potential_fn, postprocess_fn, model_trace)
        potential = initialize_model(jax.random.PRNGKey(0), fn, model_args=args)[1]
    return jax.value_and_grad(lambda x: -potential(unravel(x))), (lambda z: ravel_pytree(z)[0]), unravel, x0


def numpyro_density(data: dict):
    """The same for the model written directly in NumPyro."""
    import functools

    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import initialize_model

    n = int(data["dose"].size)
    args = tuple(jnp.asarray(data[k]) for k in ("pid", "t", "y", "dose"))
    info, potential, _, _ = initialize_model(jax.random.PRNGKey(0), functools.partial(numpyro_model, n=n),
                                             model_args=args)
    x0, unravel = ravel_pytree(info.z)
    return jax.value_and_grad(lambda x: -potential(unravel(x))), x0


def evaluation_loop(value_and_grad, k: int):
    """``x -> (x', sum of values)`` after `k` evaluations of `value_and_grad` in a ``lax.fori_loop`` (not jitted).

    Each step moves ``x`` by 1e-12 x the gradient so XLA cannot hoist the evaluation out of the loop.
    """
    import jax
    import jax.numpy as jnp

    def loop(x):
        def body(_i, carry):
            x, acc = carry
            v, g = value_and_grad(x)
            return x + 1e-12 * g, acc + v
        return jax.lax.fori_loop(0, k, body, (x, jnp.zeros((), x.dtype)))
    return loop


def in_loop_us(value_and_grad, x0, k: int = 1000, repeats: int = 3, chains: int = 1) -> float:
    """Microseconds per evaluation inside one compiled loop of `k` (median of `repeats` timed calls).

    ``chains > 1``: that many loops at once under ``pmap`` over the XLA host devices, as the JAX samplers
    run their chains (bayestwin asks for 4 host devices); the figure is then wall time per step of all chains.
    """
    import jax
    import jax.numpy as jnp

    loop = evaluation_loop(value_and_grad, k)
    if chains > 1:
        run, x = jax.pmap(loop), jnp.stack([x0] * chains)
    else:
        run, x = jax.jit(loop), x0
    jax.block_until_ready(run(x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(x))
        times.append(time.perf_counter() - t0)
    return 1e6 * float(np.median(times)) / k


def per_call_us(fn, x0, k: int = 300) -> float:
    """Microseconds per Python call of ``fn(x)`` (median over 3 batches of `k`)."""
    fn(x0)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(k):
            fn(x0)
        times.append(time.perf_counter() - t0)
    return 1e6 * float(np.median(times)) / k


def gradient_costs(data: dict) -> dict[str, float]:
    """Per-evaluation cost (us) of log density + gradient, one chain: JAX in-loop, and per Python call."""
    import jax

    out: dict[str, float] = {}
    vg, _ravel, _unravel, x0 = bayestwin_density(data)
    out["bayestwin JAX, 1 chain, in a compiled loop"] = in_loop_us(vg, x0)
    out["bayestwin JAX, 4 chains under pmap (as in sampling), per step of all 4"] = in_loop_us(vg, x0, chains=4)
    jitted = jax.jit(vg)
    out["bayestwin JAX, per Python call (what a nutpie backend pays)"] = per_call_us(
        lambda x: [np.asarray(a) for a in jitted(x)], np.asarray(x0))
    out |= structural_costs(data)
    nvg, nx0 = numpyro_density(data)
    out["NumPyro direct, 1 chain, in a compiled loop"] = in_loop_us(nvg, nx0)
    out["NumPyro direct, 4 chains under pmap, per step of all 4"] = in_loop_us(nvg, nx0, chains=4)
    try:
        import nutpie

        from .models import pymc_model

        compiled = nutpie.compile_pymc_model(pymc_model(data))
        shared = [compiled.shared_data[name] for name in compiled.shared_data]
        x = np.concatenate([np.log([1.0, 4.0, 70.0, 0.3, 0.3, 0.2, 0.1]), np.zeros(3 * int(data["dose"].size))])
        fn = compiled.logp_func
        out["PyMC model compiled by nutpie (numba), per Python call (with pytensor's call overhead, which "
            "nutpie's Rust sampler does not pay)"] = per_call_us(lambda z: fn(z, *shared), x)
    except Exception as exc:  # report it, do not stop the benchmark
        out[f"nutpie numba: not measured ({type(exc).__name__}: {exc})"] = float("nan")
    return out


def structural_costs(data: dict) -> dict[str, float]:
    """The prediction alone, value + gradient of the sum over all concentrations w.r.t. log ka, CL, V (one chain).

    bayestwin's ``predict_cohort`` (dose superposition, padded) against the Bateman function written directly,
    naive and in bayestwin's stable form (``exp_dd``): how much of the density's cost is the structural kernel.
    """
    import jax
    import jax.numpy as jnp
    from model_specs.oral_1cpt import spec

    from bayestwin.data import read_nonmem
    from bayestwin.dynamics.steady_state import exp_dd
    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.inference.population import predict_cohort
    from bayestwin.models import get_model

    n = int(data["dose"].size)
    model = get_model(spec().model)
    table = read_nonmem(nonmem_frame(data), units={"time": "h", "amt": "mg", "dv": "mg/L"})
    arrays = cohort_arrays(table, spec(), model)
    pid, t, dose = (jnp.asarray(data[k]) for k in ("pid", "t", "dose"))
    x0 = jnp.log(jnp.stack([jnp.full(n, 1.0), jnp.full(n, 4.0), jnp.full(n, 70.0)]))

    def ours(x):
        theta = {"ka": jnp.exp(x[0]), "cl": jnp.exp(x[1]), "v": jnp.exp(x[2])}
        return jnp.sum(predict_cohort(model, theta, arrays.doses, arrays.obs.time, arrays.features))

    def naive(x):
        ka, cl, v = (jnp.exp(x[j])[pid] for j in range(3))
        ke = cl / v
        return jnp.sum(dose[pid] * ka / (v * (ka - ke)) * (jnp.exp(-ke * t) - jnp.exp(-ka * t)))

    def stable(x):
        ka, cl, v = (jnp.exp(x[j])[pid] for j in range(3))
        return jnp.sum(dose[pid] * ka / v * exp_dd(cl / v, ka, t))

    shape = "x".join(map(str, arrays.obs.time.shape))
    return {f"prediction only: bayestwin's predict_cohort (padded to {shape})":
                in_loop_us(jax.value_and_grad(ours), x0),
            "prediction only: Bateman function written directly": in_loop_us(jax.value_and_grad(naive), x0),
            "prediction only: Bateman in bayestwin's stable form (exp_dd), written directly":
                in_loop_us(jax.value_and_grad(stable), x0)}


def run_nutpie_bayestwin(data: dict, s: Settings) -> Run:
    """nutpie's sampler on bayestwin's JAX log density (see the module docstring)."""
    import jax
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    start = time.perf_counter()
    vg, ravel, unravel, x0 = bayestwin_density(data)
    jitted = jax.jit(vg)
    n = int(data["dose"].size)
    ndim = int(x0.size)

    def make_logp_fn():
        def logp(x, **_shared):
            v, g = jitted(x)
            return float(v), np.asarray(g, dtype="float64", order="C")
        return logp

    def make_expand_fn(_seed1, _seed2, _chain):
        def expand(x, **_shared):
            z = unravel(np.asarray(x))
            return {k: np.asarray(math.exp(float(z[k])), dtype="float64") for k in POPULATION}
        return expand

    def initial_point(seed) -> np.ndarray:
        point = initial_values(n, 1, int(seed) % 2**32)[0]
        return np.asarray(ravel({k: np.log(point[k]) for k in POPULATION} | {"eta": np.zeros((n, 3))}))

    jitted(x0)  # compile before sampling, as the other engines do
    compiled = from_pyfunc(ndim, make_logp_fn, make_expand_fn, [np.dtype("float64")] * len(POPULATION),
                           [()] * len(POPULATION), list(POPULATION), make_initial_point_fn=initial_point)
    t0 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=s.draws, tune=s.warmup, chains=s.chains, seed=s.seed,
                          progress_bar=False, target_accept=s.target_accept)
    t1 = time.perf_counter()
    from .engines import _from_idata

    run = _from_idata("nutpie on bayestwin's JAX density", idata, t1 - t0, t1 - start, t0 - start)
    return run
