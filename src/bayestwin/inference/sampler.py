"""NUTS settings and the one place MCMC runs.

Examples
--------
>>> SamplerConfig().chains, SamplerConfig.fast().draws
(4, 250)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from numpyro.distributions import ImproperUniform, constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer import MCMC, NUTS

from bayestwin.config import fast_mode
from bayestwin.exceptions import InputError
from bayestwin.inference.adaptation import GradientNUTS

__all__ = ["ChainStarts", "SamplerConfig", "auto_chain_method", "init_near_prior_median", "optimized_starts",
           "parallel_chains_ok", "run_nuts"]


@dataclass(frozen=True)
class SamplerConfig:
    """NUTS settings. Same seed, same data, same settings: same draws.

    ``chain_method="auto"`` (default) runs chains in parallel, one per JAX
    device, when there are enough devices (importing bayestwin first asks for 4
    CPU devices), else one after another. ``"vectorized"`` batches all chains in
    one program: measured 4.7x slower than parallel for the theophylline
    population model on 2 cores (163 s vs 34 s), as each step waits for the
    longest trajectory of any chain. For ``Twin.fit`` of a closed-form model,
    ``"auto"`` and ``"vectorized"`` run the compiled twin program
    (``bayestwin.inference.twin_program``: nothing traced again in a process,
    saved with ``jax.export`` for the next); ``"sequential"`` and ``"parallel"``
    keep numpyro's ``MCMC.run``.

    ``adaptation`` chooses the warm-up: ``"stan"`` (default) is NumPyro's Stan-style windowed adaptation
    of the step size and mass matrix (diagonal, or dense with ``dense_mass=True``); ``"gradient"`` adapts a
    diagonal mass matrix from draws and gradients as nutpie does
    (``bayestwin.inference.adaptation``; needs ``dense_mass=False``).

    ``trajectory`` chooses the NUTS tree: ``"numpyro"`` (default) is NumPyro's; ``"stan"`` is
    ``bayestwin.inference.trajectory`` (Stan's whole-momentum-sum U-turn criterion, one flat vector), for
    now with ``adaptation="gradient"`` only.
    """

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    seed: int = 0
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = False
    chain_method: Literal["auto", "vectorized", "sequential", "parallel"] = "auto"
    progress_bar: bool = False
    init: Literal["optimize", "prior"] = "optimize"
    init_steps: int = 300
    adaptation: Literal["stan", "gradient"] = "stan"
    trajectory: Literal["numpyro", "stan"] = "numpyro"

    def __post_init__(self) -> None:
        if self.trajectory not in ("numpyro", "stan"):
            raise InputError(f"SamplerConfig(trajectory={self.trajectory!r}) is not known; use 'numpyro' (NumPyro's "
                             "NUTS tree) or 'stan' (Stan's U-turn criterion, bayestwin.inference.trajectory).")
        if self.trajectory == "stan" and self.adaptation != "gradient":
            raise InputError("SamplerConfig(trajectory='stan') runs with the gradient warm-up only for now; set "
                             "adaptation='gradient', or keep trajectory='numpyro'.")
        if self.adaptation not in ("stan", "gradient"):
            raise InputError(f"SamplerConfig(adaptation={self.adaptation!r}) is not known; use 'stan' (NumPyro's "
                             "windowed warm-up) or 'gradient' (nutpie-style diagonal mass from gradients).")
        if self.adaptation == "gradient" and self.dense_mass:
            raise InputError("SamplerConfig(adaptation='gradient') adapts a diagonal mass matrix; set "
                             "dense_mass=False, or use adaptation='stan' for a dense one.")

    @classmethod
    def fast(cls, **changes: Any) -> SamplerConfig:
        """Small settings for notebooks in CI and smoke tests (same code path)."""
        return cls(**({"chains": 2, "warmup": 250, "draws": 250} | changes))

    @classmethod
    def default(cls, **changes: Any) -> SamplerConfig:
        """The standard settings, or the fast ones when ``BAYESTWIN_FAST=1``."""
        return cls.fast(**changes) if fast_mode() else cls(**changes)


def init_near_prior_median(site: dict[str, Any] | None = None, radius: float = 0.5) -> Any:
    """NumPyro init strategy: start each chain at the prior median, jittered in unconstrained space.

    The jitter is U(-radius, radius) per coordinate.

    Chains start apart (so R-hat can still reveal a multimodal posterior) but in the region the priors
    call plausible, not at ``exp(U(-2, 2))`` as NumPyro's default does — for a one-compartment oral
    model that default can start a chain in the flip-flop mode (ka and ke swapped, V tiny), where it
    stays. Sites on the real line (Normal, Cauchy, StudentT: symmetric) start at their location ``loc``,
    their median: a coefficient centred on 0 at 0, and an identity-scale typical value with prior
    Normal(10, 5) at 10, not at 0, which put one test cohort's starts 10^10 nats out (measured: the
    chains then settled in a local mode with proportional error on lines crossing zero). Sites without a
    proper prior (``ImproperUniform``: the ``Flat`` and ``HalfFlat`` priors, the twin's scaled
    coordinates) start at the jittered origin of unconstrained space: 0 on the real line, 1 on the
    positive half-line. Sites inside the ``patient`` plate (random effects) start at their median without
    jitter: every patient starts at the typical values, and the chains differ in the population
    parameters (jittering hundreds of random effects put starts 10^12 nats out in the tails of the
    Oral_1CPT posterior).
    """
    if site is None:
        return functools.partial(init_near_prior_median, radius=radius)
    if site["type"] != "sample" or site["is_observed"] or site["fn"].support.is_discrete:
        return None
    if site["value"] is not None:
        return site["value"]
    fn = site["fn"]
    key = site["kwargs"].get("rng_key")
    key_sample, key_jitter = jax.random.split(key if key is not None else jax.random.PRNGKey(0))
    shape = site["kwargs"].get("sample_shape", ()) + fn.batch_shape + fn.event_shape
    transform = biject_to(fn.support)
    if isinstance(fn, ImproperUniform):
        center = jnp.zeros(shape)
    elif fn.support is constraints.real:
        center = jnp.broadcast_to(jnp.asarray(getattr(fn, "loc", 0.0), dtype=float), shape)
    else:
        draws = fn.sample(key_sample, sample_shape=(31, *site["kwargs"].get("sample_shape", ())))
        center = transform.inv(jnp.median(draws, axis=0))
    if any(frame.name == "patient" for frame in site.get("cond_indep_stack", ())):
        radius = 0.0
    unconstrained_shape = jnp.shape(center)
    return transform(center + jax.random.uniform(key_jitter, unconstrained_shape, minval=-radius, maxval=radius))


class ChainStarts(NamedTuple):
    """Where the chains started.

    Unconstrained `params` (leading axis: chain), the potential energy (negative log density,
    unconstrained space) before and after the uphill steps, and which chains were restarted.
    """

    params: dict[str, Array]
    potential_before: np.ndarray
    potential_after: np.ndarray
    restarted: np.ndarray

    def describe(self) -> str:
        """One line for logs and fit notes."""
        after = ", ".join(f"{v:.1f}" for v in self.potential_after)
        text = f"chain starts climbed to potential energies {after}"
        lost = np.flatnonzero(self.restarted)
        if lost.size:
            text += (f"; chain(s) {', '.join(map(str, lost))} stalled far below the best start and were "
                     "restarted from it")
        return text


def adam_descent(potential: Callable[[Array], Array], x0: Array, steps: int,
                 learning_rate: float) -> tuple[Array, Array]:
    """Adam steps downhill on `potential` from `x0`: the best point met and its potential.

    A pure, traceable function (``lax.scan`` over `steps`), so callers can ``jit``, ``vmap`` or ``lax.map`` it.
    A non-finite value or gradient sends the walk back to the best point met so far; the final point is
    compared too. Used for chain starts by `optimized_starts` and by the fleet kernel.

    Parameters
    ----------
    potential : callable
        Flat parameter vector -> scalar potential energy (negative log density).
    x0 : Array
        Start, a flat vector.
    steps : int
        Number of Adam steps (static).
    learning_rate : float
        Adam's step size.

    Returns
    -------
    tuple of Array
        ``(best_x, best_potential)``; ``best_potential`` is ``inf`` when no finite value was met.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> x, pe = adam_descent(lambda x: jnp.sum((x - 2.0) ** 2), jnp.zeros(2), 300, 0.1)
    >>> [round(float(v), 2) for v in x], round(float(pe), 4)
    ([2.0, 2.0], 0.0)
    """
    def safe(x: Array) -> Array:
        pe = potential(x)
        return jnp.where(jnp.isfinite(pe), pe, jnp.inf)

    value_and_grad = jax.value_and_grad(safe)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def step(carry: tuple[Array, ...], i: Array) -> tuple[tuple[Array, ...], None]:
        x, m, v, best_x, best_pe = carry
        pe, g = value_and_grad(x)
        finite = jnp.isfinite(pe) & jnp.all(jnp.isfinite(g))
        better = finite & (pe < best_pe)
        best_x, best_pe = jnp.where(better, x, best_x), jnp.where(better, pe, best_pe)
        g = jnp.where(finite, g, 0.0)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        t = i + 1.0
        update = learning_rate * (m / (1 - b1**t)) / (jnp.sqrt(v / (1 - b2**t)) + eps)
        x = jnp.where(finite, x - update, best_x)  # from a non-finite point, go back to the best one
        return (x, m, v, best_x, best_pe), None

    zeros = jnp.zeros_like(x0)
    init = (x0, zeros, zeros, x0, safe(x0))
    (x, _, _, best_x, best_pe), _ = jax.lax.scan(step, init, jnp.arange(steps, dtype=x0.dtype))
    final = safe(x)
    use_final = final < best_pe
    return jnp.where(use_final, x, best_x), jnp.where(use_final, final, best_pe)


def optimized_starts(
    model: Callable[..., None], args: tuple[Any, ...], key: Array, chains: int, max_steps: int = 200,
    learning_rate: float = 0.05,
) -> ChainStarts:
    """One start per chain: a jittered prior-median point, then `max_steps` Adam steps uphill.

    Why: NUTS's first warm-up iterations from a point far out in the tails take very long jumps (the step
    size is still being found), and can land a chain in a minor mode it never leaves. For the
    one-compartment oral model that is the flip-flop mode (ka and ke swapped): measured on theo_sd with
    subject 12 reduced to 3 samples, seed 1, one chain started 1,100 nats above the mode and ended in the
    flip-flop mode 22 nats below the main one (R-hat 1.54).

    Adam moves each unconstrained coordinate by about `learning_rate` per step whatever the size of the
    gradient, so a start 10^9 nats out (a proportional error model far from the data) climbs as steadily
    as one close by and cannot leap into a distant mode; BFGS, tried first, took such leaps. The point
    with the lowest potential met on the way is returned. Each chain climbs from its own start, so
    chains that reach different modes still disagree and R-hat still reports it, and the step budget
    (at most ``max_steps * learning_rate`` per coordinate) keeps a centred funnel from being followed to
    its neck.

    A chain whose climb stalls more than ``max(50, d)`` nats (d: number of unconstrained coordinates) above
    the best chain's is restarted from the best start (its own random stream then takes it elsewhere;
    a jitter of 0.1 per coordinate cost 1,000 nats on Oral_1CPT, whose patient effects are tightly
    determined) and flagged in ``restarted``. Near a mode the potential energy of posterior draws is the
    mode's plus about a chi-square(d) / 2, i.e. d/2 +- sqrt(d/2): a point d nats worse is outside the
    typical set of every mode the better chain found, and is a stall, not a competing mode with real mass (measured on
    Oral_1CPT SD = 1, 367 coordinates: two of four chains stalled 1,500 and 5,000 nats above the others,
    in regions where single patients sat in their own flip-flop optimum). Modes within that margin are
    left alone, and R-hat judges them.

    Examples
    --------
    >>> import numpyro, numpyro.distributions as dist, jax
    >>> def m():
    ...     numpyro.sample("x", dist.Normal(3.0, 1.0))
    >>> s = optimized_starts(m, (), jax.random.PRNGKey(0), chains=2, max_steps=400)
    >>> [round(float(v), 2) for v in s.params["x"]]
    [3.0, 3.0]
    """
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import initialize_model

    keys = jax.random.split(key, chains)
    info, potential_fn, _, _ = initialize_model(
        keys, model, model_args=args, init_strategy=functools.partial(init_near_prior_median, radius=0.5))
    start = info.z
    _, unravel = ravel_pytree(jax.tree.map(lambda a: a[0], start))
    flat = jax.vmap(lambda z: ravel_pytree(z)[0])(start)

    def potential(x: Array) -> Array:
        pe = potential_fn(unravel(x))
        return jnp.where(jnp.isfinite(pe), pe, jnp.inf)

    @jax.jit
    def climb(x0: Array) -> tuple[Array, Array, Array]:
        best_x, best_pe = adam_descent(potential, x0, max_steps, learning_rate)
        return best_x, potential(x0), best_pe

    # lax.map, not vmap: reverse-mode through a batched diffrax solve fails in equinox (closure conversion)
    moved, before, after = jax.lax.map(climb, flat)
    after = np.asarray(after)
    best = int(np.argmin(after))
    restarted = after > after[best] + max(50.0, float(flat.shape[1]))
    if restarted.any():
        moved = jnp.where(jnp.asarray(restarted)[:, None], moved[best][None, :], moved)
        after = np.asarray(jax.lax.map(potential, moved))
    params = jax.vmap(unravel)(moved)
    return ChainStarts(params=params, potential_before=np.asarray(before), potential_after=after,
                       restarted=restarted)


def auto_chain_method(chains: int, parallel_ok: bool, *, devices: int | None = None) -> str:
    """The chain layout ``chain_method="auto"`` runs (see ``run_nuts``): one chain per device, else one by one.

    ``"parallel"`` (``pmap``, one chain per XLA device) when there are `chains` devices and `parallel_ok`, else
    ``"sequential"``; never ``"vectorized"``, whatever the data size. Measured on the peer model (oral
    one-compartment population, float64, 4 chains x (1,000 gradient warm-up + 1,000 draws) in one compiled
    program per layout, the program timed on its second call; ``benchmarks/chain_layout.py``, 2-core box,
    load ~13, CPU seconds of the whole run, which the load inflates less than wall time):

    ========  ========  ===============  ====================  ==========
    N         parallel  sequential       2 devices x 2 vmap    vectorized
    ========  ========  ===============  ====================  ==========
    12        1.96      1.93             2.38                  5.08
    200       18.6      18.7             26.2                  (not run)
    ========  ========  ===============  ====================  ==========

    ``pmap`` costs no CPU over one chain at a time, and spreads the chains over the cores; ``vmap`` makes each
    iteration wait for the longest trajectory of the batch (here 1.28x the leapfrog steps for pairs, 1.63x for
    4 chains at N = 12; 1.06x and 1.08x at N = 200), and bayestwin's density batches badly under ``vmap``
    (4 chains at N = 200: 1,134 us per step vectorised vs 551 us under ``pmap``; the model written directly
    in NumPyro: 224 vs 270 us). So the data size does not change the choice; the devices do.

    Examples
    --------
    >>> auto_chain_method(4, parallel_ok=True, devices=4), auto_chain_method(4, parallel_ok=True, devices=1)
    ('parallel', 'sequential')
    """
    devices = jax.local_device_count() if devices is None else devices
    if chains == 1 or not parallel_ok:
        return "sequential"
    return "parallel" if devices >= chains else "sequential"


def parallel_chains_ok(model: Any, features: frozenset[str]) -> bool:
    """Whether chains of a fit of `model` on data with `features` may run under ``pmap`` (see ``run_nuts``).

    Not when a diffrax solve is differentiated: ODE models, and nonlinear models with time-varying covariates.
    """
    if model.kind == "ode":
        return False
    return "time_varying" not in features or bool(getattr(model, "linear", False))


def run_nuts(
    model: Callable[..., None], args: tuple[Any, ...], config: SamplerConfig, *, parallel_ok: bool = True
) -> MCMC:
    """Run NUTS on `model(*args)` from the starts `config.init` asks for; return the finished ``MCMC``.

    ``parallel_ok=False`` makes ``chain_method="auto"`` run the chains one after another: reverse-mode
    differentiation through a diffrax solve (its checkpointed while loop) fails under ``jax.pmap`` with
    jax 0.10 / equinox 0.13 ("Closure-converted function called with different dynamic arguments"),
    while ``jit``, ``vmap`` and ``lax.map`` work. ODE models pass False.

    The starts are kept on the returned object as ``mcmc.bayestwin_starts`` (a ``ChainStarts``, or None
    with ``init="prior"``).
    """
    init_strategy = functools.partial(init_near_prior_median, radius=0.5)
    if config.adaptation == "gradient":
        kernel = GradientNUTS(model, target_accept_prob=config.target_accept, max_tree_depth=config.max_tree_depth,
                              init_strategy=init_strategy, trajectory=config.trajectory)
    else:
        kernel = NUTS(model, target_accept_prob=config.target_accept, max_tree_depth=config.max_tree_depth,
                      dense_mass=config.dense_mass, init_strategy=init_strategy)
    method = config.chain_method
    if method == "auto":
        method = auto_chain_method(config.chains, parallel_ok)
    mcmc = MCMC(kernel, num_warmup=config.warmup, num_samples=config.draws, num_chains=config.chains,
                chain_method=method, progress_bar=config.progress_bar)
    run_key, init_key = jax.random.split(jax.random.PRNGKey(config.seed))
    starts = None
    init_params = None
    if config.init == "optimize":
        starts = optimized_starts(model, args, init_key, config.chains, config.init_steps)
        init_params = starts.params if config.chains > 1 else jax.tree.map(lambda a: a[0], starts.params)
    mcmc.run(run_key, *args, init_params=init_params, extra_fields=("diverging", "energy", "num_steps"))
    mcmc.bayestwin_starts = starts
    return mcmc
