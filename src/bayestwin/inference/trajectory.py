"""One NUTS transition with Stan's U-turn criterion, on one flat parameter vector (opt-in, issue 9).

NumPyro's NUTS tests a (sub)trajectory for a U-turn with the momentum sum *minus half of each end's
momentum*; Stan (>= 2.21) and nuts-rs (nutpie) use the *whole* sum ``rho`` of the momenta of every state
in the (sub)tree: the trajectory turns when ``p_sharp_left . rho <= 0`` or ``p_sharp_right . rho <= 0``
(``p_sharp = M^-1 p``), and at every merge of two subtrees they check two more spans: the left subtree plus
the first state of the right one, and the last state of the left subtree plus the right one. With the
whole sum NUTS integrates longer before it stops; measured by NUT3 on the peer model at N = 12 (a patch of
NumPyro's test, 3 seeds) ESS per 1,000 gradients rose from 5.01 to 5.67 (nutpie 5.89).

This module writes the transition from the papers (Hoffman & Gelman 2014; Betancourt 2017, "A Conceptual
Introduction to Hamiltonian Monte Carlo", appendix A): multinomial sampling of the trajectory's states
(weights ``exp(-H)``), biased progressive sampling between doublings (the new subtree's proposal replaces
the current one with probability ``min(1, W_new / W_old)``) and uniform progressive sampling within a
subtree (each new state replaces the subtree's proposal with probability ``w / W_so_far``). Everything
works on ONE flat vector of the unconstrained parameters and a diagonal inverse mass: the site dict is
flattened once per transition (``hmc_state_transition``), not at every leapfrog step.

The tree is built iteratively: ``lax.while_loop`` over doublings, and inside it over the leaves of the new
subtree. The sub-subtree checks need, for every subtree completed at leaf ``n``, the momentum sum before
its first leaf and the momenta of its first leaf, of its middle leaf and of the leaf before the middle.
Leaf ``n`` stores these in checkpoint row ``popcount(n)`` (the leaves that start a subtree still being
built all have different bit counts, so no live row is overwritten), and the ``t`` subtrees that end at
``n`` (``t``: the trailing one bits of ``n``) are checked at once on the ``t + 1`` rows involved, sliced out
with a static size chosen by ``lax.switch``: no inner loop over checkpoints, and ``O(t d)`` work (about ``d``
per leaf on average; a pass over all rows cost 8 us per leapfrog step more at d = 600). Divergence: an
energy error above ``max_delta_energy`` (1,000, NumPyro's default).

The two cross-subtree checks are kept (``extra_checks=True``), by measurement (helper NUT4, 2026-11-27/28,
2-core box at load 5-9): on an iid 40-d Gaussian with the exact mass, step 0.4, the whole-tree test alone
took 217.6 leapfrog steps per draw against 12.5 (ESS of x^2 per 1,000 gradients 1.4 vs 27.2: a doubling
past a full period goes unnoticed); on the peer model (``benchmarks/trajectory.py``, 3 seeds) they cost
nothing in ESS per gradient (N = 12: 6.35 vs 6.05 per 1,000 gradients; N = 200: 3.44 vs 3.39) and stop
earlier at N = 12 (25.7 vs 30.4 steps per draw; nutpie 25.4). Against NumPyro's tree with the same
gradient warm-up: ESS per 1,000 gradients 6.35 vs 5.33 at N = 12 (nutpie 5.89; a second run 6.22 vs 5.01)
and parity at N = 200 (3.44 vs 3.27, then 3.50 vs 3.52 on a later density; nutpie 3.42), and one step costs
less (one chain, same state: 8.7 vs 11.8 us at N = 12, 72 vs 80 us at N = 200). SBC of pk.one_cmt_oral with
it passes (``validation/adaptation_sbc.py``).

Examples
--------
>>> import jax, jax.numpy as jnp
>>> value_and_grad = jax.value_and_grad(lambda x: 0.5 * jnp.sum(x ** 2))
>>> x = jnp.zeros(3)
>>> pe, g = value_and_grad(x)
>>> out = nuts_transition(value_and_grad, x, pe, g, jax.random.PRNGKey(0), 0.5, jnp.ones(3))
>>> out.x.shape, int(out.info.num_steps) > 0, bool(out.info.diverging)
((3,), True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.flatten_util import ravel_pytree

__all__ = ["TransitionInfo", "TransitionResult", "hmc_state_transition", "is_turning", "nuts_transition"]

ValueAndGrad = Callable[[Array], tuple[Array, Array]]


class TransitionInfo(NamedTuple):
    """What one transition reports (the statistics NumPyro's ``HMCState`` carries)."""

    num_steps: Array
    """Leapfrog steps taken (every state built, the rejected last subtree's included)."""
    depth: Array
    """Subtrees built (doublings), the rejected last one included."""
    accept_prob: Array
    """Mean over the states built of ``min(1, exp(H0 - H))``: the statistic step-size adaptation targets."""
    diverging: Array
    """An energy error above the limit (or a non-finite energy) ended the trajectory."""
    energy: Array
    """The Hamiltonian of the selected state."""


class TransitionResult(NamedTuple):
    """The selected state (position, potential energy, gradient of the potential) and the statistics."""

    x: Array
    potential_energy: Array
    grad: Array
    info: TransitionInfo


def is_turning(p_sharp_left: Array, p_sharp_right: Array, rho: Array) -> Array:
    """Stan's U-turn test: True when ``p_sharp_left . rho <= 0`` or ``p_sharp_right . rho <= 0``.

    `rho` is the WHOLE sum of the momenta of the span's states; ``p_sharp = M^-1 p`` at its two ends. The
    last axis is the parameter axis (leading axes broadcast).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> bool(is_turning(jnp.array([1.0]), jnp.array([-0.5]), jnp.array([0.5])))   # right end runs back
    True
    """
    return (_dot(p_sharp_left, rho) <= 0) | (_dot(p_sharp_right, rho) <= 0)


def _dot(a: Array, b: Array) -> Array:
    """Sum of products over the last axis, written out (not ``dot_general``) so that ``vmap`` does not change it."""
    return jnp.sum(a * b, axis=-1)


class _End(NamedTuple):
    x: Array
    p: Array
    grad: Array


class _Proposal(NamedTuple):
    x: Array
    potential_energy: Array
    grad: Array
    energy: Array


class _Checkpoints(NamedTuple):
    """Row ``popcount(n)`` describes leaf ``n`` of the subtree being built (see the module docstring)."""

    p_sharp: Array  # (rows, d): M^-1 p of the leaf
    rho_before: Array  # (rows, d): the subtree's momentum sum before the leaf
    p_sharp_prev: Array  # (rows, d): M^-1 p of the leaf before it
    prev_minus_rho: Array  # (rows, d): p of the leaf before it minus rho_before
    left_turn: Array  # (rows,) bool: row r's leaf .. the leaf of row r + 1 (inclusive) turns (set by that leaf)


class _Subtree(NamedTuple):
    n: Array  # leaves built
    end: _End  # the last leaf built
    first_p: Array  # momentum of the first leaf
    rho: Array
    log_weight: Array
    proposal: _Proposal
    rows: _Checkpoints
    previous_p: Array
    sum_accept: Array
    turning: Array
    diverging: Array


class _Tree(NamedTuple):
    rows: _Checkpoints
    left: _End
    right: _End
    rho: Array
    log_weight: Array
    proposal: _Proposal
    depth: Array
    num_steps: Array
    sum_accept: Array
    turning: Array
    diverging: Array
    key: Array


def _leapfrog(value_and_grad: ValueAndGrad, end: _End, step: Array, inverse_mass: Array) -> tuple[_End, Array]:
    p_half = end.p - 0.5 * step * end.grad
    x = end.x + step * inverse_mass * p_half
    pe, grad = value_and_grad(x)
    return _End(x, p_half - 0.5 * step * grad, grad), pe


def _empty_rows(rows: int, like: Array) -> _Checkpoints:
    table = jnp.zeros((rows, like.shape[0]), like.dtype)
    return _Checkpoints(table, table, table, table, jnp.zeros(rows, bool))


def _write_leaf(c: _Checkpoints, n: Array, p: Array, p_sharp: Array, rho_before: Array, prev_p: Array,
                inverse_mass: Array, extra: bool) -> _Checkpoints:
    """`c` with leaf `n` in row ``popcount(n)``; the span from the leaf's partner start to it tested on the way."""
    row = jax.lax.population_count(n)
    at = (row, jnp.zeros_like(row))
    put = lambda t, v: jax.lax.dynamic_update_slice(t, v[None], at)  # noqa: E731
    c = c._replace(p_sharp=put(c.p_sharp, p_sharp), rho_before=put(c.rho_before, rho_before))
    if not extra:
        return c
    ps_prev, prev_minus_rho = inverse_mass * prev_p, prev_p - rho_before
    # leaf n is the middle leaf of exactly one subtree: the one starting at row - 1 (n with its lowest bit cleared)
    start = jnp.maximum(row - 1, 0)
    start_ps = jax.lax.dynamic_index_in_dim(c.p_sharp, start, keepdims=False)
    start_rho = jax.lax.dynamic_index_in_dim(c.rho_before, start, keepdims=False)
    left = is_turning(start_ps, p_sharp, rho_before - start_rho + p)
    return c._replace(p_sharp_prev=put(c.p_sharp_prev, ps_prev), prev_minus_rho=put(c.prev_minus_rho, prev_minus_rho),
                      left_turn=jnp.where((jnp.arange(c.left_turn.shape[0]) == row - 1), left, c.left_turn))


def _subtree_turning(c: _Checkpoints, n: Array, rho_after: Array, p_sharp_n: Array, extra: bool) -> Array:
    """Whether any subtree that ends at leaf `n` turns: one vectorised pass over exactly the rows involved.

    Row ``r`` starts the subtree of ``2^k`` leaves ending at `n`, ``k = popcount(n) - r``, for ``1 <= k <= t``,
    the trailing one bits of `n`; row ``r + 1`` holds that subtree's middle leaf. The ``t + 1`` rows
    ``popcount(n) - t .. popcount(n)`` are sliced out (``lax.switch`` over `t`, so each slice has a static
    size) and all ``t`` subtrees tested at once: the work is ``O(t d)``, about ``d`` per leaf on average.
    """
    count = jax.lax.population_count(n)
    trailing_ones = jax.lax.population_count(n ^ (n + 1)) - 1
    rows = c.p_sharp.shape[0]

    def check(size: int) -> Callable[[], Array]:
        def subtrees() -> Array:
            take = lambda a: jax.lax.dynamic_slice_in_dim(a, count - size, size + 1)  # noqa: E731
            turned = is_turning(take(c.p_sharp)[:-1], p_sharp_n, rho_after - take(c.rho_before)[:-1])
            if extra:  # the leaf before the middle + the right half; the left half + the middle leaf (stored)
                turned |= is_turning(take(c.p_sharp_prev)[1:], p_sharp_n, take(c.prev_minus_rho)[1:] + rho_after)
                turned |= take(c.left_turn)[:-1]
            return jnp.any(turned)
        return subtrees

    branches = [lambda: jnp.array(False), *(check(size) for size in range(1, rows))]
    return jax.lax.switch(jnp.clip(trailing_ones, 0, rows - 1), branches)


def _build_subtree(value_and_grad: ValueAndGrad, start: _End, step: Array, inverse_mass: Array, depth: Array,
                   energy0: Array, key: Array, rows: _Checkpoints, max_delta_energy: float,
                   extra: bool) -> _Subtree:
    """Up to ``2^depth`` leapfrog steps from `start`; stops at the first U-turn or divergence inside.

    The checkpoint rows are not cleared between subtrees: every row a check reads was written in this subtree.
    """
    zeros = jnp.zeros_like(start.x)
    first = _Subtree(jnp.zeros((), jnp.int32), start, zeros, zeros, jnp.asarray(-jnp.inf, start.x.dtype),
                     _Proposal(start.x, jnp.zeros((), start.x.dtype), start.grad, energy0), rows, start.p,
                     jnp.zeros((), start.x.dtype), jnp.array(False), jnp.array(False))
    leaves = jnp.left_shift(jnp.int32(1), depth)

    def keep_going(s: _Subtree) -> Array:
        return (s.n < leaves) & ~s.turning & ~s.diverging

    def leaf(s: _Subtree) -> _Subtree:
        end, pe = _leapfrog(value_and_grad, s.end, step, inverse_mass)
        energy = pe + 0.5 * _dot(end.p, inverse_mass * end.p)
        delta = jnp.where(jnp.isnan(energy), jnp.inf, energy - energy0)
        log_w = -delta
        log_total = jnp.logaddexp(s.log_weight, log_w)
        take = jnp.log(jax.random.uniform(jax.random.fold_in(key, s.n), dtype=start.x.dtype)) < log_w - log_total
        proposal = jax.tree_util.tree_map(lambda new, old: jnp.where(take, new, old),
                                          _Proposal(end.x, pe, end.grad, energy), s.proposal)
        p_sharp = inverse_mass * end.p
        table = _write_leaf(s.rows, s.n, end.p, p_sharp, s.rho, s.previous_p, inverse_mass, extra)
        rho = s.rho + end.p
        turning = _subtree_turning(table, s.n, rho, p_sharp, extra)
        return _Subtree(s.n + 1, end, jnp.where(s.n == 0, end.p, s.first_p), rho, log_total, proposal, table, end.p,
                        s.sum_accept + jnp.minimum(1.0, jnp.exp(-delta)), turning, delta > max_delta_energy)

    return jax.lax.while_loop(keep_going, leaf, first)


def nuts_transition(value_and_grad: ValueAndGrad, x: Array, potential_energy: Array, grad: Array, key: Array,
                    step_size: Array | float, inverse_mass: Array, *, max_depth: int = 10,
                    depth_limit: Array | int | None = None, max_delta_energy: float = 1000.0,
                    extra_checks: bool = True) -> TransitionResult:
    """One NUTS transition from `x` (flat vector) with Stan's whole-momentum-sum U-turn criterion.

    Parameters
    ----------
    value_and_grad : callable
        Flat vector -> (potential energy, its gradient): the NEGATIVE log density and its gradient.
    x, potential_energy, grad : Array
        The current state, its potential energy and gradient.
    key : Array
        A PRNG key (momentum, directions and the multinomial choices all come from it).
    step_size : float
        Leapfrog step size.
    inverse_mass : Array
        Diagonal of the inverse mass matrix, the shape of `x`.
    max_depth : int
        Static: at most ``2^max_depth - 1`` leapfrog steps (the checkpoint rows are sized by it).
    depth_limit : int or Array, optional
        A traced limit at most `max_depth` (e.g. a smaller depth during warm-up); default `max_depth`.
    max_delta_energy : float
        An energy error above this is a divergence.
    extra_checks : bool
        Static: also test the two spans across every merge (Stan >= 2.21, nuts-rs); False tests each (sub)tree
        as a whole only.

    Returns
    -------
    TransitionResult
        The selected state and ``TransitionInfo``. Pure: ``jit``, ``vmap`` and ``pmap`` apply.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> vg = jax.value_and_grad(lambda x: 0.5 * jnp.sum((x / jnp.array([0.01, 100.0])) ** 2))
    >>> x = jnp.array([0.01, 100.0])
    >>> out = nuts_transition(vg, x, *vg(x), jax.random.PRNGKey(1), 0.7, jnp.array([1e-4, 1e4]))
    >>> 0.0 < float(out.info.accept_prob) <= 1.0
    True
    """
    dtype = x.dtype
    step = jnp.asarray(step_size, dtype)
    limit = max_depth if depth_limit is None else jnp.minimum(depth_limit, max_depth)
    key_momentum, key_tree = jax.random.split(key)
    p0 = jax.random.normal(key_momentum, x.shape, dtype) / jnp.sqrt(inverse_mass)
    energy0 = potential_energy + 0.5 * _dot(p0, inverse_mass * p0)
    end0 = _End(x, p0, grad)
    zero = jnp.zeros((), dtype)
    none = jnp.zeros((), jnp.int32)
    tree0 = _Tree(_empty_rows(max(int(max_depth), 1), x), end0, end0, p0, zero,
                  _Proposal(x, potential_energy, grad, energy0), none, none, zero, jnp.array(False), jnp.array(False),
                  key_tree)

    def keep_going(t: _Tree) -> Array:
        return (t.depth < limit) & ~t.turning & ~t.diverging

    def double(t: _Tree) -> _Tree:
        key, key_dir, key_sub, key_accept = jax.random.split(t.key, 4)
        forward = jax.random.bernoulli(key_dir)
        pick = lambda a, b: jax.tree_util.tree_map(lambda u, v: jnp.where(forward, u, v), a, b)  # noqa: E731
        start, outer = pick(t.right, t.left), pick(t.left, t.right)
        sub = _build_subtree(value_and_grad, start, jnp.where(forward, step, -step), inverse_mass, t.depth, energy0,
                             key_sub, t.rows, max_delta_energy, extra_checks)
        valid = ~sub.turning & ~sub.diverging
        take = valid & (jnp.log(jax.random.uniform(key_accept, dtype=dtype)) < sub.log_weight - t.log_weight)
        proposal = jax.tree_util.tree_map(lambda new, old: jnp.where(take, new, old), sub.proposal, t.proposal)
        rho = t.rho + sub.rho
        outer_ps, last_ps = inverse_mass * outer.p, inverse_mass * sub.end.p
        turning = is_turning(outer_ps, last_ps, rho)
        if extra_checks:  # old tree + the subtree's first state; the old tree's adjacent end + the subtree
            first_p = sub.first_p
            turning |= is_turning(outer_ps, inverse_mass * first_p, t.rho + first_p)
            turning |= is_turning(inverse_mass * start.p, last_ps, start.p + sub.rho)
        left, right = pick(t.left, sub.end), pick(sub.end, t.right)
        log_weight = jnp.where(valid, jnp.logaddexp(t.log_weight, sub.log_weight), t.log_weight)
        return _Tree(sub.rows, left, right, rho, log_weight, proposal, t.depth + 1, t.num_steps + sub.n,
                     t.sum_accept + sub.sum_accept, ~valid | turning, sub.diverging, key)

    t = jax.lax.while_loop(keep_going, double, tree0)
    info = TransitionInfo(t.num_steps, t.depth, t.sum_accept / jnp.maximum(t.num_steps, 1), t.diverging,
                          t.proposal.energy)
    return TransitionResult(t.proposal.x, t.proposal.potential_energy, t.proposal.grad, info)


def _block_keys(inverse_mass_matrix: Any) -> list[Any]:
    """The site groups of NumPyro's inverse mass matrix, in its order (a dict of blocks; else one block, ``[None]``)."""
    return list(inverse_mass_matrix) if isinstance(inverse_mass_matrix, dict) else [None]


def hmc_state_transition(state: Any, potential_fn: Callable[[Any], Array], *, max_depth: int | tuple[int, int] = 10,
                         warmup: int = 0, max_delta_energy: float = 1000.0, extra_checks: bool = True) -> Any:
    """NumPyro's ``HMCState`` after one `nuts_transition` (diagonal mass; the adaptation state is left as it is).

    The site dict is flattened once, in the order of the inverse mass matrix's blocks (NumPyro's); `max_depth`
    may be a pair (warm-up, sampling), the first used while ``state.i < warmup``. ``i`` counts on, and
    ``mean_accept_prob`` averages as NumPyro's kernel does.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro.infer.hmc import hmc
    >>> potential = lambda z: 0.5 * jnp.sum(z["x"] ** 2)
    >>> init_kernel, _ = hmc(potential, algo="NUTS")
    >>> s = init_kernel({"x": jnp.ones(2)}, 0, adapt_step_size=False, adapt_mass_matrix=False)
    >>> s = hmc_state_transition(s, potential)
    >>> int(s.i), s.z["x"].shape
    (1, (2,))
    """
    adapt = state.adapt_state
    keys = _block_keys(adapt.inverse_mass_matrix)
    blocks = [state.z if k is None else tuple(state.z[s] for s in k) for k in keys]
    x, unravel = ravel_pytree(blocks)
    grad = ravel_pytree([state.z_grad if k is None else tuple(state.z_grad[s] for s in k) for k in keys])[0]
    inverse = adapt.inverse_mass_matrix
    inverse = jnp.concatenate([inverse[k] for k in keys]) if isinstance(inverse, dict) else inverse
    if jnp.ndim(inverse) != 1:
        raise ValueError("hmc_state_transition needs a diagonal inverse mass matrix")

    def to_sites(flat: Array) -> Any:
        parts = unravel(flat)
        if keys == [None]:
            return parts[0]
        return {site: value for k, part in zip(keys, parts, strict=True) for site, value in zip(k, part, strict=True)}

    value_and_grad = jax.value_and_grad(lambda v: potential_fn(to_sites(v)))
    deep = max_depth if isinstance(max_depth, int) else max(max_depth)
    limit = max_depth if isinstance(max_depth, int) else jnp.where(state.i < warmup, max_depth[0], max_depth[1])
    key, key_transition = jax.random.split(state.rng_key)
    out = nuts_transition(value_and_grad, x, state.potential_energy, grad, key_transition, adapt.step_size, inverse,
                          max_depth=deep, depth_limit=limit, max_delta_energy=max_delta_energy,
                          extra_checks=extra_checks)
    i = state.i + 1
    n = jnp.where(state.i < warmup, i, i - warmup)
    mean_accept = state.mean_accept_prob + (out.info.accept_prob - state.mean_accept_prob) / n
    new = {"potential_energy": out.potential_energy, "energy": out.info.energy, "num_steps": out.info.num_steps,
           "accept_prob": out.info.accept_prob, "mean_accept_prob": mean_accept, "diverging": out.info.diverging}
    new = {k: jnp.asarray(v).astype(jnp.result_type(getattr(state, k))) for k, v in new.items()}
    return state._replace(i=i, z=to_sites(out.x), z_grad=to_sites(out.grad), rng_key=key, **new)
