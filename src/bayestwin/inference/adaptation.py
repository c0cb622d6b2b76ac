"""Gradient-based diagonal mass-matrix adaptation for NumPyro's NUTS (nutpie's scheme), opt-in.

NumPyro's NUTS warms up as Stan does: the inverse mass diagonal is the variance of the draws in windows of
25, 50, 100, ... iterations and changes only at a window's end. Measured on the peer benchmark (oral
one-compartment population model, N = 200, ``docs/benchmarks.md``): at the same leapfrog steps per draw it
reached half nutpie's minimum ESS (418 vs 983), and nutpie's sampler on bayestwin's own density reached
987 -- the adaptation, not the density, set the ESS.

nutpie (Seyboldt et al., ``covadapt``/``nuts-rs``) estimates the diagonal from draws *and* gradients:
``inverse mass_i = sqrt(var(x_i) / var(d log p / d x_i))``. For a Gaussian posterior with diagonal
covariance both estimates agree (``var(x_i) = s_i^2``, ``var(grad_i) = 1 / s_i^2``), and their ratio uses
twice the information of either; for a correlated or non-Gaussian posterior it is the diagonal scaling that
minimises a bound on the Fisher divergence of the rescaled posterior from a standard normal. This module
implements that idea in JAX on top of NumPyro's functional NUTS (``numpyro.infer.hmc.hmc``, with NumPyro's
own step-size and mass adaptation switched off), so the whole warm-up stays one compiled program per chain.

Schedule (``W`` warm-up iterations; the fractions are nutpie's defaults; see ``warmup_schedule``):

* Start: inverse mass ``1 / |grad log p(x0)|`` (a coordinate with a zero or non-finite gradient gets 1),
  then NumPyro's step-size search from 0.1, and dual averaging (Hoffman & Gelman) started there.
* Iterations before ``0.85 W``: each non-divergent draw and its gradient enter two running (Welford)
  estimators, a *foreground* and a *background*. After every draw the inverse mass is recomputed from the
  foreground once it holds 3 points. When the background holds ``switch`` draws (10 during the first
  ``0.3 W`` iterations, 80 after) it becomes the foreground and a fresh background starts, unless fewer
  than ``switch`` mass-adaptation iterations remain: the estimate forgets the start early and often and
  ends on the last 80-160 draws.
* The first time the mass changes, the step size is searched again and dual averaging restarts from it;
  at every other warm-up iteration dual averaging takes one step towards the target acceptance.
* Last ``0.15 W``: mass fixed, step size only; the last warm-up iteration sets the averaged step size.

Measured (``benchmarks/adaptation.py``, ``docs/benchmarks.md``, 4 chains x 1,000 + 1,000, same run): minimum
bulk ESS per 1,000 gradient evaluations (warm-up included) gradient / stan 2.71x on the oral model at N = 200
(ESS 713 vs 377, step size 0.241 vs 0.141; nutpie 983 and 0.243), 1.36x at N = 12, 1.53x on theophylline
(theo_sd), 3.39x on the centred eight schools (a funnel: 2 divergences vs 7, neither fit passes its gate).

Compared with nutpie 0.16.8 (its sampler is nuts-rs 0.17.4: ``adapt_strategy.rs``, ``mass_matrix/adapt.rs``,
``stepsize/``), read setting by setting: the same schedule (early fraction 0.3, final step-size-only fraction
0.15, switch every 10 / 80 draws, no switch within ``switch`` iterations of the final window, the mass
recomputed after every draw from >= 3 points), the same estimate ``sqrt(var(x) / var(grad))`` clipped to
[1e-20, 1e20], the same start (``1 / |grad|``, step search from 0.1, searched again at the first mass change)
and the same dual averaging (target 0.8, ``k`` 0.75, ``t0`` 10, ``gamma`` 0.05, ``mu = log(10 step)``).
Differences left: nuts-rs leaves out of the estimators a draw equal to the iteration's start (and a divergent
one fewer than 5 steps from it), here only divergent draws; it caps the step size at pi; in the late window
its dual averaging uses a symmetric acceptance statistic (``2 min(1, e^d) / (1 + e^d)`` per leapfrog step);
and it jitters the step size by U(0.9, 1.1) at every iteration, warm-up and draws. Measured over 3 sampler
seeds (``benchmarks/ess_seeds.py``): ESS per 1,000 gradients 3.52 here vs nutpie's 3.42 at N = 200 (no gap),
5.01 vs 5.89 at N = 12, where nutpie takes 25.4 leapfrog steps per draw to our 19.4 at a similar step size:
not the adaptation but the U-turn test of NumPyro's NUTS, which subtracts half of each end's momentum from the
momentum sum (nuts-rs and Stan use the whole sum and check two more sub-tree pairs). With the whole sum
patched in for a benchmark run (``benchmarks/ess_seeds.py --turning full``, 3 seeds at N = 12) ESS per 1,000
gradients rose to 5.67 and min ESS from 813 to 1,377 (30.1 steps per draw): the gap closes within noise.
bayestwin's own tree with that criterion and the two extra checks (``bayestwin.inference.trajectory``) runs
after this warm-up with ``trajectory="stan"``: ``GradientNUTS(trajectory="stan")`` replaces NumPyro's tree in
``sample`` (the warm-up is unchanged).

Use it through ``SamplerConfig(adaptation="gradient")`` (``run_nuts``) or
``run_batched_nuts(..., adaptation="gradient")``, either with ``trajectory="stan"``; the default stays
``"stan"`` (adaptation) and ``"numpyro"`` (tree).

Examples
--------
>>> from bayestwin.inference import SamplerConfig
>>> SamplerConfig(adaptation="gradient").adaptation    # then fit_population(spec, table, sampler=...)
'gradient'
>>> warmup_schedule(1000).final_start                  # mass fixed for the last 150 warm-up iterations
850
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.flatten_util import ravel_pytree
from numpyro.infer import NUTS
from numpyro.infer.hmc import HMCState, momentum_generator
from numpyro.infer.hmc_util import (
    IntegratorState,
    dual_averaging,
    euclidean_kinetic_energy,
    find_reasonable_step_size,
)
from numpyro.util import is_prng_key

from bayestwin.inference.trajectory import _block_keys, hmc_state_transition

__all__ = ["GradientAdaptState", "GradientNUTS", "Moments", "WarmupSchedule", "init_gradient_adaptation",
           "update_gradient_adaptation", "warmup_schedule"]

_LIMITS = (1e-20, 1e20)  # bounds of an inverse-mass entry (as nutpie's)
_INITIAL_STEP = 0.1  # where the first step-size search starts (as nutpie's)
_MIN_POINTS = 3  # the foreground estimates the mass once it holds this many points
_DA_INIT, _DA_UPDATE = dual_averaging()


class WarmupSchedule(NamedTuple):
    """Static iteration counts of the warm-up (see the module docstring)."""

    warmup: int
    early_end: int
    """Iterations before this switch estimators every `early_switch` draws, later every `switch`."""
    final_start: int
    """From this iteration on the mass is fixed and only the step size adapts."""
    early_switch: int = 10
    switch: int = 80


def warmup_schedule(warmup: int, *, early: float = 0.3, final: float = 0.15) -> WarmupSchedule:
    """The warm-up schedule for `warmup` iterations: early fraction `early`, step-size-only fraction `final`.

    Examples
    --------
    >>> warmup_schedule(1000)
    WarmupSchedule(warmup=1000, early_end=300, final_start=850, early_switch=10, switch=80)
    """
    return WarmupSchedule(warmup=int(warmup), early_end=int(early * warmup),
                          final_start=int(warmup) - int(final * warmup))


class Moments(NamedTuple):
    """Running means and sums of squared deviations (Welford) of draws and of gradients, flat vectors."""

    count: Array
    draw_mean: Array
    draw_m2: Array
    grad_mean: Array
    grad_m2: Array


class GradientAdaptState(NamedTuple):
    """What the adaptation carries between iterations (stored as ``adapt_state.mm_state``)."""

    foreground: Moments
    """Estimates the current inverse mass."""
    background: Moments
    """Collects draws to replace the foreground at the next switch."""
    initial_mass: Array
    """True while the inverse mass is still the one from the first gradient."""


def _empty(size: int, dtype: Any) -> Moments:
    zeros = jnp.zeros(size, dtype)
    return Moments(jnp.zeros((), jnp.int32), zeros, zeros, zeros, zeros)


def _add(m: Moments, x: Array, g: Array, keep: Array) -> Moments:
    """`m` with the point (`x`, `g`) added where `keep` (else `m` unchanged)."""
    n = m.count + 1
    nf = n.astype(x.dtype)
    dx, dg = x - m.draw_mean, g - m.grad_mean
    x_mean, g_mean = m.draw_mean + dx / nf, m.grad_mean + dg / nf
    new = Moments(n, x_mean, m.draw_m2 + dx * (x - x_mean), g_mean, m.grad_m2 + dg * (g - g_mean))
    return jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, m)


def _flatten(tree: Any, keys: list[Any]) -> Array:
    """Site values -> one vector, in the order of the inverse mass matrix's blocks (as NumPyro's kinetic energy)."""
    return jnp.concatenate([ravel_pytree(tree if k is None else tuple(tree[s] for s in k))[0] for k in keys])


def _as_blocks(vector: Array, like: Any) -> Any:
    """One vector -> the block structure of `like` (a dict of diagonals, or one diagonal)."""
    if not isinstance(like, dict):
        return vector
    out, start = {}, 0
    for key, block in like.items():
        out[key] = vector[start:start + block.shape[-1]]
        start += block.shape[-1]
    return out


def _with_mass(adapt: Any, inverse: Array) -> Any:
    """`adapt` (NumPyro's ``HMCAdaptState``) with the diagonal inverse mass `inverse` and its square roots."""
    like = adapt.inverse_mass_matrix
    sqrt_inv = jnp.sqrt(inverse)
    return adapt._replace(inverse_mass_matrix=_as_blocks(inverse, like),
                          mass_matrix_sqrt=_as_blocks(1.0 / sqrt_inv, like),
                          mass_matrix_sqrt_inv=_as_blocks(sqrt_inv, like))


def _search_step(potential_fn: Callable[[Any], Array], kinetic_fn: Callable[..., Array], start: Array,
                 adapt: Any, state: HMCState, key: Array) -> Array:
    """NumPyro's step-size heuristic (one leapfrog step, doubling or halving) under the mass of `adapt`."""
    sqrt_mass = adapt.mass_matrix_sqrt
    momenta = lambda z, _unused, k: momentum_generator(z, sqrt_mass, k)  # noqa: E731
    z_info = IntegratorState(state.z, None, state.potential_energy, state.z_grad)
    step = find_reasonable_step_size(potential_fn, kinetic_fn, momenta, start, adapt.inverse_mass_matrix, z_info, key)
    finfo = jnp.finfo(jnp.result_type(step))
    return jnp.clip(step, finfo.tiny, finfo.max)


def init_gradient_adaptation(state: HMCState, potential_fn: Callable[[Any], Array], *,
                             kinetic_fn: Callable[..., Array] = euclidean_kinetic_energy) -> HMCState:
    """Start the adaptation on NumPyro's initial NUTS `state` (from ``init_kernel`` with adaptation off).

    Sets the inverse mass to ``1 / |gradient|`` at the start, searches a step size from 0.1 and starts dual
    averaging there; the estimators hold the start. Diagonal mass only. Pure: ``jit`` / ``vmap`` apply.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro.infer.hmc import hmc
    >>> potential = lambda z: 0.5 * jnp.sum((z["x"] / jnp.array([0.1, 10.0])) ** 2)
    >>> init_kernel, _ = hmc(potential, algo="NUTS")
    >>> s = init_kernel({"x": jnp.array([1.0, 1.0])}, 100, adapt_step_size=False, adapt_mass_matrix=False)
    >>> s = init_gradient_adaptation(s, potential)
    >>> [round(float(v), 4) for v in s.adapt_state.inverse_mass_matrix]   # 1 / |(100, 0.01)|
    [0.01, 100.0]
    """
    adapt = state.adapt_state
    keys = _block_keys(adapt.inverse_mass_matrix)
    x, g = _flatten(state.z, keys), _flatten(state.z_grad, keys)
    inverse = 1.0 / jnp.abs(g)
    inverse = jnp.where(jnp.isfinite(inverse), jnp.clip(inverse, *_LIMITS), 1.0)
    moments = _add(_empty(x.shape[0], x.dtype), x, g, jnp.array(True))
    adapt = _with_mass(adapt, inverse)
    key_search, key_rest = jax.random.split(adapt.rng_key)
    step = _search_step(potential_fn, kinetic_fn, jnp.asarray(_INITIAL_STEP, x.dtype), adapt, state, key_search)
    adapt = adapt._replace(step_size=step, ss_state=_DA_INIT(jnp.log(10.0 * step)),
                           mm_state=GradientAdaptState(moments, moments, jnp.array(True)), rng_key=key_rest)
    return state._replace(adapt_state=adapt)


def update_gradient_adaptation(previous: HMCState, state: HMCState, potential_fn: Callable[[Any], Array], *,
                               schedule: WarmupSchedule, target_accept: float = 0.8,
                               kinetic_fn: Callable[..., Array] = euclidean_kinetic_energy) -> HMCState:
    """Adapt after one NUTS iteration from `previous` to `state`; after the warm-up `state` is returned unchanged.

    The iteration's index is ``previous.i``. Pure: ``jit`` / ``vmap`` / ``lax`` loops apply (under ``vmap``
    the step-size search of the first mass change is evaluated at every iteration, as ``lax.cond`` becomes a
    select).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro.infer.hmc import hmc
    >>> potential = lambda z: 0.5 * jnp.sum((z["x"] / jnp.array([0.1, 10.0])) ** 2)
    >>> init_kernel, sample_kernel = hmc(potential, algo="NUTS")
    >>> plan = warmup_schedule(400)
    >>> s = init_kernel({"x": jnp.array([1.0, 1.0])}, plan.warmup, adapt_step_size=False,
    ...                 adapt_mass_matrix=False, rng_key=jax.random.PRNGKey(1))
    >>> s = init_gradient_adaptation(s, potential)
    >>> step = lambda i, s: update_gradient_adaptation(s, sample_kernel(s), potential, schedule=plan)
    >>> s = jax.lax.fori_loop(0, plan.warmup, step, s)
    >>> [float(f"{float(v):.1g}") for v in s.adapt_state.inverse_mass_matrix]   # the variances 0.01, 100
    [0.01, 100.0]
    """
    t = previous.i

    def adapt(state: HMCState) -> HMCState:
        a = state.adapt_state
        carried: GradientAdaptState = a.mm_state
        keys = _block_keys(a.inverse_mass_matrix)
        x, g = _flatten(state.z, keys), _flatten(state.z_grad, keys)
        in_mass_phase = t < schedule.final_start
        good = in_mass_phase & ~state.diverging & jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(g))
        fore, back = _add(carried.foreground, x, g, good), _add(carried.background, x, g, good)
        every = jnp.where(t < schedule.early_end, schedule.early_switch, schedule.switch)
        switch = in_mass_phase & (back.count >= every) & (t + every <= schedule.final_start)
        fore = jax.tree_util.tree_map(lambda b, f: jnp.where(switch, b, f), back, fore)
        back = jax.tree_util.tree_map(lambda e, b: jnp.where(switch, e, b), _empty(x.shape[0], x.dtype), back)
        estimate = jnp.sqrt(fore.draw_m2 / fore.grad_m2)  # the (n - 1) scalings cancel
        usable = in_mass_phase & (fore.count >= _MIN_POINTS)
        old = a.inverse_mass_matrix
        old = jnp.concatenate([old[k] for k in keys]) if isinstance(old, dict) else old
        ok = usable & jnp.isfinite(estimate) & (estimate > 0)
        inverse = jnp.where(ok, jnp.clip(estimate, *_LIMITS), old)
        a = _with_mass(a, inverse)
        first_change = usable & carried.initial_mass
        da = _DA_UPDATE(target_accept - state.accept_prob, a.ss_state)
        log_step, log_step_avg = da[0], da[1]
        step = jnp.exp(jnp.where(t == schedule.warmup - 1, log_step_avg, log_step))
        key_search, key_rest = jax.random.split(a.rng_key)

        def research(_: None) -> tuple[Array, Any]:
            found = _search_step(potential_fn, kinetic_fn, a.step_size, a, state, key_search)
            return found, _DA_INIT(jnp.log(10.0 * found))

        step, da = jax.lax.cond(first_change, research, lambda _: (step, da), None)
        finfo = jnp.finfo(jnp.result_type(step))
        a = a._replace(step_size=jnp.clip(step, finfo.tiny, finfo.max), ss_state=da, rng_key=key_rest,
                       mm_state=GradientAdaptState(fore, back, carried.initial_mass & ~usable))
        return state._replace(adapt_state=a)

    return jax.lax.cond(t < schedule.warmup, adapt, lambda s: s, state)


class GradientNUTS(NUTS):
    """NumPyro's ``NUTS`` whose warm-up adapts a diagonal mass matrix from draws and gradients (nutpie's scheme).

    Takes NUTS's arguments except the adaptation ones (``adapt_step_size``, ``adapt_mass_matrix`` and
    ``dense_mass`` are set here); works with ``numpyro.infer.MCMC`` and every ``chain_method``. The state is
    NumPyro's ``HMCState``: ``adapt_state.step_size`` and ``adapt_state.inverse_mass_matrix`` hold the adapted
    values as with ``NUTS``; ``adapt_state.mm_state`` holds a ``GradientAdaptState``. ``trajectory="stan"``
    builds each trajectory with ``bayestwin.inference.trajectory`` (Stan's U-turn criterion) instead of NumPyro's
    tree; the warm-up is the same.

    Examples
    --------
    >>> GradientNUTS(lambda: None, max_tree_depth=8)._adapt_mass_matrix
    False
    """

    def __init__(self, model: Callable[..., Any] | None = None, *, trajectory: str = "numpyro", **kwargs: Any) -> None:
        for name in ("adapt_step_size", "adapt_mass_matrix", "dense_mass"):
            if name in kwargs:
                raise TypeError(f"GradientNUTS sets {name} itself (a diagonal mass adapted from gradients); drop it")
        if trajectory not in ("numpyro", "stan"):
            raise ValueError(f"GradientNUTS(trajectory={trajectory!r}): use 'numpyro' or 'stan'")
        super().__init__(model, adapt_step_size=False, adapt_mass_matrix=False, dense_mass=False, **kwargs)
        self._schedule = warmup_schedule(0)
        self._vectorized = False
        self._trajectory = trajectory

    def init(self, rng_key: Array, num_warmup: int, init_params: Any = None, model_args: tuple[Any, ...] = (),
             model_kwargs: dict[str, Any] | None = None) -> HMCState:
        """NUTS's initial state with the adaptation started (see ``init_gradient_adaptation``)."""
        model_kwargs = {} if model_kwargs is None else model_kwargs
        state = super().init(rng_key, num_warmup, init_params, model_args, model_kwargs)
        self._schedule = warmup_schedule(num_warmup)
        self._vectorized = not is_prng_key(rng_key)
        start = partial(init_gradient_adaptation, potential_fn=self.get_potential_fn(model_args, model_kwargs),
                        kinetic_fn=self._kinetic_fn)
        return jax.vmap(start)(state) if self._vectorized else start(state)

    def sample(self, state: HMCState, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> HMCState:
        """One NUTS iteration, then one adaptation step while in warm-up.

        With ``trajectory="stan"`` the iteration is ``trajectory.hmc_state_transition`` (Stan's U-turn criterion
        on one flat vector) instead of NumPyro's tree.
        """
        if self._trajectory == "stan":
            step = partial(hmc_state_transition, potential_fn=self.get_potential_fn(model_args, model_kwargs),
                           max_depth=self._max_tree_depth, warmup=self._schedule.warmup)
            new = jax.vmap(step)(state) if self._vectorized else step(state)
        else:
            new = super().sample(state, model_args, model_kwargs)
        update = partial(update_gradient_adaptation, potential_fn=self.get_potential_fn(model_args, model_kwargs),
                         schedule=self._schedule, target_accept=self._target_accept_prob,
                         kinetic_fn=self._kinetic_fn)
        return jax.vmap(update)(state, new) if self._vectorized else update(state, new)
