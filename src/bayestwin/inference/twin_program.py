"""The compiled cold fit of one patient's twin: chain starts, NUTS warm-up and draws, component draws, one program.

``Twin.fit`` used ``numpyro.infer.MCMC.run``, which traces the model again on every call (``initialize_model``
runs it eagerly, the starts climb in their own program, the sampler is traced and lowered under ``pmap``):
in a fresh process whose XLA programs all come from the persistent compilation cache, that Python work was
most of the twin fit (profiled on theophylline: 14 traces of the model and 129 eagerly dispatched
operations, each lowered and looked up; the sampling itself took ~0.4 s of 4-8 s). Here the whole fit
is one ``jax.jit`` program, built once per *static configuration* (spec digest, model, data features,
number of mixture components, chains, warm-up, draws, NUTS settings, starts) and cached in this process:

- starts as ``bayestwin.inference.sampler.optimized_starts`` (the ``Twin.fit`` default): each chain starts at
  the mixture centre jittered by U(-0.5, 0.5) per scaled coordinate and climbs ``init_steps`` Adam steps;
  a chain that stalls more than ``max(50, d)`` nats above the best chain restarts from the best chain's
  point (``init="prior"``: the jittered centre as it is);
- numpyro's functional NUTS (``numpyro.infer.hmc.hmc``) on the twin's potential in the scaled coordinates
  ``z`` of ``build_individual_model``, each chain adapting its own step size and mass matrix, warm-up and
  kept draws in ONE ``lax.scan`` (so the NUTS kernel is traced once, not once for the warm-up loop and once
  for the draws);
- each kept draw's population component, drawn from its posterior weights.

The mixture density is :func:`bayestwin.inference.individual.mixture_log_weights` (sufficient statistics
where they apply). Chains run in lockstep (``vmap``): the twin's density is a few hundred tiny operations,
so four chains cost little more than one (measured in ``benchmarks/cold_warm_start.py``'s notes). Not for
ODE models or time-varying covariates (a batched diffrax solve cannot be differentiated in reverse mode;
see ``bayestwin.inference.sampler.run_nuts``), nor for ``adaptation="gradient"``: ``twin_program_applies``
says when; ``Twin.fit`` then keeps ``MCMC.run``.

Float64 where x64 is enabled (bayestwin enables it on import): the log-sum-exp over hundreds of components
and the likelihood sums need it.

Examples
--------
>>> twin_trace_count(("never", "built"))
0
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import importlib.metadata as md
import inspect
import logging
import os
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Self

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.infer.hmc import hmc

from bayestwin.dynamics.events import Doses, Observations
from bayestwin.inference.individual import mixture_log_weights
from bayestwin.inference.sampler import SamplerConfig, adam_descent
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["TwinConfig", "TwinDraws", "twin_program", "twin_program_applies", "twin_trace_count"]

log = logging.getLogger(__name__)

_TRACES: collections.Counter[Hashable] = collections.Counter()
_PROGRAMS: dict[Hashable, Callable[..., TwinDraws]] = {}


@dataclasses.dataclass(frozen=True)
class TwinConfig:
    """Static settings of a twin program (each distinct value builds and compiles another program).

    The fleet program's ``bayestwin.inference.fleet_kernel.FleetConfig`` is this record plus ``lanes``.
    Frozen (hashable): it is part of the programs' cache keys.
    """

    chains: int
    warmup: int
    draws: int
    target_accept: float
    max_tree_depth: int
    dense_mass: bool
    init: str
    init_steps: int

    @classmethod
    def from_sampler(cls, sampler: SamplerConfig, **extra: Any) -> Self:
        """The program settings of `sampler` (``chain_method`` and ``progress_bar`` do not apply), plus `extra`.

        >>> TwinConfig.from_sampler(SamplerConfig.fast()).chains
        2
        """
        return cls(chains=sampler.chains, warmup=sampler.warmup, draws=sampler.draws,
                   target_accept=float(sampler.target_accept), max_tree_depth=int(sampler.max_tree_depth),
                   dense_mass=bool(sampler.dense_mass), init=sampler.init, init_steps=int(sampler.init_steps),
                   **extra)


class TwinDraws(NamedTuple):
    """Device arrays of one fit, leading axis ``chain``."""

    latent: jax.Array
    """``(chain, draw, n_bsv)``: latent values ``u`` of the parameters with BSV."""
    component: jax.Array
    """``(chain, draw)``: population component drawn for each draw (from its posterior weights)."""
    diverging: jax.Array
    energy: jax.Array
    num_steps: jax.Array
    positions: jax.Array
    """``(chain, n_bsv)``: last unconstrained position (scaled coordinates ``z``)."""
    step_size: jax.Array
    inverse_mass_matrix: jax.Array
    start_potential: jax.Array
    """``(chain,)``: potential energy at each chain's start, after the climb."""
    restarted: jax.Array


def twin_program_applies(model: AbstractStructuralModel, features: frozenset[str], sampler: SamplerConfig) -> bool:
    """Whether ``Twin.fit`` may run `model` on data with `features` through :func:`twin_program`.

    Not for ODE models and time-varying covariates (reverse mode through a batched diffrax solve fails), nor
    for ``adaptation="gradient"`` (numpyro's Stan-style warm-up only), nor when the sampler asks for
    ``chain_method="sequential"`` or ``"parallel"`` explicitly (those keep numpyro's ``MCMC.run``).

    The program runs the same NUTS as ``MCMC.run`` (numpyro's functional kernel, each chain adapting its own
    step size and mass matrix): with ``MCMC.run``'s starts, keys and mass-matrix layout it reproduces its
    first draws to rounding, after which the trajectories part (NUTS is chaotic). Its divergences and ESS per
    draw do not differ significantly from ``MCMC.run``'s over many seeds (``validation/twin_program_divergences.py``;
    docs/benchmarks.md, "Twin program vs MCMC.run"); the eight-schools twin, whose 200-component mixture prior
    has a narrow component for each population draw of tau near 0, diverges on about a fifth of seeds either way.

    >>> from bayestwin.models import get_model
    >>> twin_program_applies(get_model("pk.one_cmt_oral"), frozenset(), SamplerConfig())
    True
    >>> twin_program_applies(get_model("pk.one_cmt_oral"), frozenset(), SamplerConfig(chain_method="sequential"))
    False
    """
    return (model.kind != "ode" and "time_varying" not in features and sampler.adaptation == "stan"
            and sampler.chain_method in ("auto", "vectorized"))


def twin_trace_count(key: Hashable | None = None) -> int:
    """Times the twin program of static key `key` (all if None) was traced, i.e. compiled.

    >>> twin_trace_count(("never", "built"))
    0
    """
    return sum(_TRACES.values()) if key is None else _TRACES[key]


def twin_program(spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str], n_components: int,
                 config: TwinConfig) -> Callable[..., TwinDraws]:
    """The cached program ``run(seed, prior, doses, obs) -> TwinDraws`` for one static configuration.

    `prior` is a ``PopulationPrior`` plus ``center`` and ``scale`` (and ``quadratic`` where sufficient
    statistics apply, see ``bayestwin.inference.fleet_kernel.quadratic_form``); `doses` and `obs` are one
    patient's padded arrays (no patient axis); `seed` a scalar. JAX compiles once per padded shape.
    """
    key = ("twin", spec.digest(), model.name, features, int(n_components), config)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    n_bsv = len(spec.bsv_parameters)
    log_weights = mixture_log_weights(spec, model, features)

    def potential(z: jax.Array, prior: Mapping[str, jax.Array], doses: Doses, obs: Observations) -> jax.Array:
        u = prior["center"] + prior["scale"] * z
        terms = log_weights(prior, u, doses, obs)
        return -(logsumexp(terms) - jnp.log(terms.shape[0]))

    init_kernel, sample_kernel = hmc(
        potential_fn_gen=lambda prior, doses, obs: (lambda zd: potential(zd["z"], prior, doses, obs)), algo="NUTS")

    def chain(rng: jax.Array, z0: jax.Array, data: tuple[Any, ...]) -> tuple[jax.Array, ...]:
        """One chain: warm-up (adapting its own step size and mass matrix) and kept draws in one scan."""
        state = init_kernel({"z": z0}, config.warmup, model_args=data, rng_key=rng,
                            max_tree_depth=config.max_tree_depth, target_accept_prob=config.target_accept,
                            dense_mass=config.dense_mass)

        def step(s: Any, _: None) -> tuple[Any, tuple[jax.Array, ...]]:
            s = sample_kernel(s, model_args=data)
            return s, (s.z["z"], s.diverging, s.energy, s.num_steps)

        state, out = jax.lax.scan(step, state, None, length=config.warmup + config.draws)
        kept = tuple(a[config.warmup:] for a in out)
        return (*kept, state.z["z"], state.adapt_state.step_size, state.adapt_state.inverse_mass_matrix)

    def program(seed: jax.Array, prior: Mapping[str, jax.Array], doses: Doses, obs: Observations) -> TwinDraws:
        _TRACES[key] += 1  # runs while tracing only: one count per compilation
        data = (prior, doses, obs)
        keys = jax.random.split(jax.random.PRNGKey(seed), config.chains)
        k_start, k_nuts, k_comp = (jax.vmap(lambda k, i=i: jax.random.split(k, 3)[i])(keys) for i in range(3))
        z0 = jax.vmap(lambda k: jax.random.uniform(k, (n_bsv,), minval=-0.5, maxval=0.5))(k_start)
        if config.init == "optimize":
            z0, pe = jax.vmap(lambda z: adam_descent(lambda x: potential(x, *data), z, config.init_steps, 0.05))(z0)
            best = jnp.argmin(pe)
            restarted = pe > pe[best] + max(50.0, float(n_bsv))
            z0 = jnp.where(restarted[:, None], z0[best][None, :], z0)
            pe = jnp.where(restarted, pe[best], pe)
        else:
            pe = jax.vmap(lambda z: potential(z, *data))(z0)
            restarted = jnp.zeros(pe.shape, dtype=bool)
        z, div, energy, steps, last, step_size, inv_mass = jax.vmap(lambda k, z: chain(k, z, data))(k_nuts, z0)
        u = prior["center"] + prior["scale"] * z
        weights = jax.vmap(jax.vmap(lambda x: log_weights(prior, x, doses, obs)))(u)
        comp = jax.vmap(lambda k, w: jax.random.categorical(k, w, axis=-1))(k_comp, weights)
        return TwinDraws(u, comp, div, energy, steps, last, step_size, inv_mass, pe, restarted)

    jitted = jax.jit(program)
    exported: dict[Hashable, Callable[..., Any]] = {}

    def run(seed: Any, prior: Mapping[str, jax.Array], doses: Doses, obs: Observations) -> TwinDraws:
        leaves, tree = jax.tree_util.tree_flatten((seed, prior, doses, obs))
        signature = (str(tree), tuple((np.shape(a), str(_dtype(a))) for a in leaves))
        if signature not in exported:
            exported[signature] = _exported_program(key, model, jitted, tree, leaves) or (
                lambda *a: tuple(jitted(*jax.tree_util.tree_unflatten(tree, a))))
        return TwinDraws(*exported[signature](*leaves))

    run.key, run.jitted = key, jitted  # type: ignore[attr-defined]  # for tools and tests
    _PROGRAMS[key] = run
    return run


def _exported_program(key: Hashable, model: AbstractStructuralModel, jitted: Callable[..., TwinDraws],
                      tree: Any, leaves: list[Any]) -> Callable[..., Any] | None:
    """The traced program from disk (``jax.export``), or traced now and saved there; None: no disk cache.

    JAX's persistent compilation cache keeps compiled code but not the Python tracing that precedes it,
    which was most of a warm process's twin fit (measured: trace ~3 s CPU vs ~0.4 s to load the serialized
    program). So where that cache is on (``jax_compilation_cache_dir``, set by the command line, see
    ``bayestwin.cli.jaxcache``) the traced program is kept beside it as a serialized ``jax.export.Exported``,
    named by a digest of everything it was built from: the static key (spec digest, model, features,
    settings), argument shapes and dtypes, the JAX and numpyro versions, JAX's x64 and PRNG settings, and
    the source of bayestwin and of the model's module -- a change to any of them builds a new one. The
    loaded program runs the same StableHLO as ``jax.jit``: the same draws (tested). Without the
    ``flatbuffers`` package (``jax.export`` serialization) or a cache directory: None (plain ``jax.jit``).
    """
    directory = _program_directory()
    if directory is None:
        return None
    try:
        from jax import export
        from jax._src.export import serialization  # noqa: F401  (needs flatbuffers)
    except ImportError:
        return None
    specs = [jax.ShapeDtypeStruct(np.shape(a), _dtype(a)) for a in leaves]
    source = _source_digest(inspect.getsourcefile(type(model)))
    text = repr((key, str(tree), [(s.shape, str(s.dtype)) for s in specs], jax.__version__, md.version("numpyro"),
                 bool(jax.config.jax_enable_x64), str(jax.config.jax_default_prng_impl), source))
    path = directory / f"twin-{hashlib.sha256(text.encode()).hexdigest()[:40]}.jax"
    if path.exists():
        try:
            return export.deserialize(bytearray(path.read_bytes())).call
        except Exception:  # a damaged or foreign file: build it again below
            log.warning("could not read the saved twin program %s; tracing it again", path)

    def flat(*a: Any) -> tuple[jax.Array, ...]:
        return tuple(jitted(*jax.tree_util.tree_unflatten(tree, a)))

    exp = export.export(jax.jit(flat))(*specs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(exp.serialize())
        os.replace(tmp, path)
    except OSError:  # an unwritable cache only costs time
        log.warning("could not save the twin program to %s", path)
    return exp.call


def _dtype(a: Any) -> np.dtype:
    return a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype


def _program_directory() -> Path | None:
    """Where traced twin programs are kept: ``bayestwin-programs`` in JAX's persistent cache directory, if set."""
    directory = jax.config.jax_compilation_cache_dir
    return Path(directory) / "bayestwin-programs" if directory else None


@functools.cache
def _source_digest(extra: str | None) -> str:
    """SHA-256 of bayestwin's Python source and of the file `extra` (the model's module) if outside it."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    files = sorted(root.rglob("*.py"))
    if extra and root not in Path(extra).resolve().parents:
        files.append(Path(extra))
    for f in files:
        h.update(str(f.relative_to(root) if root in f.parents else f).encode())
        h.update(f.read_bytes())
    return h.hexdigest()
