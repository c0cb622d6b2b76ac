"""The linear path of plan comparison, chunked over draws, with the target reductions fused in.

For a model linear in the doses, a plan's trajectory is the past doses' response plus its amounts times the
unit responses of the distinct dose slots (``bayestwin.decision.kernel``). The plan-chunked evaluation there
reads every unit response (slot x draw x time) once per chunk of plans and writes each chunk's trajectories
out before reducing them. Here the loop runs over chunks of *draws* instead (``lax.map``), and within a chunk:

1. the unit responses of the chunk's draws (slot x draw x time: small enough to stay in cache);
2. plans that differ only by a common factor of their amounts (a grid of doses on one schedule: the usual
   case) share one *pattern*: ``amounts[p] = coef[p] * patterns[pattern[p]]`` (``group_plans``, on host), so
   the slot contraction is done once per pattern, not once per plan;
3. each plan's trajectory ``base + coef * pattern response`` is computed inside the reductions that consume it
   (plans are laid out as ``(row, width)`` with every row one pattern, so no per-value gather is needed): at
   most one chunk's plan x draw x time values (~``CELLS_PER_CHUNK``) exist at a time, never the whole array.

The grouping's shape (rows x width) is an argument shape of the compiled program: a set of plans with another
pattern structure compiles once more (the same plans with other doses, or other targets' thresholds, do not).
The values equal those of the plan-chunked path up to rounding (``coef * sum(pattern * unit)`` instead of
``sum(amounts * unit)``: a few ulp; an indicator could differ only for a value within ~1e-15 relative of a
threshold). Float64 throughout: the trajectories are sums of exponentials evaluated far from their start
(``bayestwin.dynamics.closed_form``), and a threshold decision on a float32 value would flip on rounding.

Examples
--------
>>> import numpy as np
>>> g = group_plans(np.array([[100.0, 100.0, 0.0], [200.0, 200.0, 0.0], [50.0, 0.0, 50.0]]))
>>> g.patterns.tolist(), g.coef.tolist(), g.position.tolist()
([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]], [[50.0, 0.0], [100.0, 200.0]], [2, 3, 0])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayestwin.decision.reduction import noisy, noisy_column
from bayestwin.inference.outputs import sigma_groups
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["Grouping", "build_linear", "draws_per_chunk", "group_plans"]

CELLS_PER_CHUNK = 1_000_000  # plan x draw x time x output values per draw chunk (8 MB if ever materialised)


@dataclass(frozen=True)
class Grouping:
    """Plans as ``(row, width)`` cells, every row one amounts pattern (host arrays; see ``group_plans``)."""

    patterns: np.ndarray  # (pattern, slot): amounts up to a factor (first non-zero entry 1)
    row_pattern: np.ndarray  # (row,) int: the pattern of each row
    coef: np.ndarray  # (row, width): each cell's factor (0 in padding cells)
    position: np.ndarray  # (plan,) int: the plan's cell, row * width + column

    @property
    def cells(self) -> int:
        """Number of plan cells (plans plus padding)."""
        return int(self.coef.size)


def group_plans(amounts: np.ndarray) -> Grouping:
    """Factor plan x slot `amounts` into patterns and per-plan factors laid out in rows of one pattern.

    A plan's factor is its first non-zero amount and its pattern its amounts divided by it (a plan without
    doses: factor 0 on a zero pattern). Rows hold up to `width` plans of one pattern; the width minimises the
    cells to evaluate (plans plus padding) plus one row copy each.
    """
    amounts = np.asarray(amounts, dtype=float)
    n_plans = amounts.shape[0]
    nonzero = amounts != 0
    first = np.argmax(nonzero, axis=1)
    coef = np.where(nonzero.any(axis=1), amounts[np.arange(n_plans), first], 0.0)
    scaled = amounts / np.where(coef == 0, 1.0, coef)[:, None]
    patterns, pattern = np.unique(scaled, axis=0, return_inverse=True)
    pattern = np.asarray(pattern).reshape(-1)
    counts = np.bincount(pattern, minlength=len(patterns))
    width = min(range(1, int(counts.max()) + 1),
                key=lambda w: (int(np.ceil(counts / w).sum()) * (w + 1), -w))
    row_pattern, cell_coef, position = [], [], np.zeros(n_plans, dtype=np.int64)
    for r in range(len(patterns)):
        members = np.flatnonzero(pattern == r)
        for start in range(0, len(members), width):
            chunk = members[start:start + width]
            position[chunk] = len(row_pattern) * width + np.arange(len(chunk))
            cell_coef.append(np.concatenate([coef[chunk], np.zeros(width - len(chunk))]))
            row_pattern.append(r)
    return Grouping(patterns, np.asarray(row_pattern, dtype=np.int32), np.stack(cell_coef), position)


def draws_per_chunk(n_draws: int, cells_per_draw: int) -> int:
    """Draws per chunk: about ``CELLS_PER_CHUNK`` plan x time values, chunks of near-equal size.

    Examples
    --------
    >>> draws_per_chunk(4000, 100 * 204), draws_per_chunk(10, 5)
    (49, 10)
    """
    most = max(1, min(n_draws, CELLS_PER_CHUNK // max(cells_per_draw, 1)))
    return math.ceil(n_draws / math.ceil(n_draws / most))


def _chunked(a: jax.Array, size: int) -> jax.Array:
    """``(n, ...)`` -> ``(chunks, size, ...)``, the last chunk padded with copies of the last draw."""
    n = a.shape[0]
    m = -(-n // size)
    if m * size > n:
        a = jnp.concatenate([a, jnp.repeat(a[-1:], m * size - n, axis=0)])
    return a.reshape(m, size, *a.shape[1:])


def _reduce(layout: Any, series: Callable[[int, str], jax.Array], times: jax.Array,
            at_idx: jax.Array, lo: jax.Array, hi: jax.Array, masks: jax.Array) -> jax.Array:
    """Per (row, width, draw, target) values; ``series(col, qty)`` gives a target's ``(row, width, draw, time)``.

    The same values as the plan-chunked reduction; XLA fuses each with the trajectory computation. "first" is
    the smallest time with a hit (the times are sorted; +inf without one) instead of an argmax and a lookup.
    Boolean and integer reductions: a float sum over time is ~2x slower (it may not be reordered).
    """
    out = []
    for k, (kind, col, qty) in enumerate(zip(layout.kinds, layout.columns, layout.quantities, strict=True)):
        y = series(col, qty)
        if kind == "at":
            idx = jnp.broadcast_to(at_idx[:, :, k][:, :, None, None], (*y.shape[:3], 1))
            v = jnp.take_along_axis(y, idx, axis=3)[..., 0]
            value = ((v >= lo[k]) & (v <= hi[k])).astype(y.dtype)
            out.append(jnp.where(jnp.isfinite(v), value, jnp.nan))  # NaN: a prediction that is not finite
            continue
        hit = (y >= lo[k]) & (y <= hi[k]) & masks[k]
        if kind == "any":
            value = jnp.any(hit, axis=3).astype(y.dtype)
        elif kind == "fraction":
            value = jnp.sum(hit, axis=3) / jnp.maximum(jnp.sum(masks[k]), 1)
        else:  # first
            value = jnp.min(jnp.where(hit, times, jnp.inf), axis=3)
        out.append(jnp.where(jnp.any(~jnp.isfinite(y) & masks[k], axis=3), jnp.nan, value))
    return jnp.stack(out, axis=-1)


def build_linear(spec: TwinSpec, model: AbstractStructuralModel, columns: jax.Array, layout: Any
                 ) -> Callable[..., Any]:
    """The draw-chunked evaluator of the linear path (the program's arguments: see ``kernel._build``).

    ``plans`` holds ``slots``/``past`` (Doses), ``amounts`` (plan, slot) and the ``Grouping`` arrays
    ``patterns``, ``row_pattern``, ``coef`` and ``position``; ``layout.batch`` is the number of draws per chunk.
    """
    feats = layout.features

    def over_draws(theta: dict[str, jax.Array], doses: Any, times: jax.Array) -> jax.Array:
        return jax.vmap(lambda th: model.predict(th, doses, times, features=feats)[:, columns])(theta)

    def responses(theta: dict[str, jax.Array], plans: dict[str, Any], times: jax.Array
                  ) -> tuple[jax.Array, jax.Array]:
        """Past doses' response ``(draw, time, output)`` and unit responses ``(slot, draw, time, output)``."""
        base = over_draws(theta, plans["past"], times)
        return base, jax.vmap(lambda d: over_draws(theta, d, times))(plans["slots"])

    def run(theta: dict[str, jax.Array], sigmas: dict[str, jax.Array], key: jax.Array, times: jax.Array,
            plans: dict[str, Any], at_idx: jax.Array, lo: jax.Array, hi: jax.Array, masks: jax.Array,
            int_draws: jax.Array, int_times: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        n_draws = next(iter(sigmas.values())).shape[0]
        noise = jax.random.normal(key, (n_draws, times.shape[0], len(spec.error)))  # as the plan-chunked path
        coef, row_pattern = plans["coef"], plans["row_pattern"]
        n_rows, width = coef.shape
        at_cells = jnp.zeros((n_rows * width, at_idx.shape[1]), at_idx.dtype).at[plans["position"]].set(at_idx)
        at_cells = at_cells.reshape(n_rows, width, -1)
        size = layout.batch

        def chunk_fn(xs: tuple[Any, Any, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
            th, sg, nz = xs
            base, unit = responses(th, plans, times)
            shapes = jnp.einsum("rs,sntk->rntk", plans["patterns"], unit)  # once per pattern
            rows = shapes[row_pattern]  # (row, draw, time, output): whole blocks, not per-value gathers
            sds = sigma_groups(spec, {k: v[:, None] for k, v in sg.items()})  # (draw, 1)

            def series(col: int, qty: str) -> jax.Array:  # one output of every plan, (row, width, draw, time)
                y = base[None, None, :, :, col] + coef[:, :, None, None] * rows[:, None, :, :, col]
                return noisy_column(spec, col, y, nz[..., col], sds[col]) if qty == "pred" else y

            values = _reduce(layout, series, times, at_cells, lo, hi, masks)
            return values, base[:, int_times], unit[:, :, int_times]  # responses at the interval times

        xs = (jax.tree_util.tree_map(lambda a: _chunked(a, size), theta),
              jax.tree_util.tree_map(lambda a: _chunked(a, size), sigmas), _chunked(noise, size))
        values, base, unit = jax.lax.map(chunk_fn, xs)  # (chunk, row, width, draw, target), ...
        values = jnp.moveaxis(values, 0, 2).reshape(n_rows * width, -1, values.shape[-1])[:, :n_draws]
        values = values[plans["position"]]
        # the interval sample from the same responses (the model is traced once: compiling it twice costs more)
        base = base.reshape(-1, *base.shape[2:])[int_draws]  # (sample, time, output)
        unit = jnp.moveaxis(unit, 0, 1).reshape(unit.shape[1], -1, *unit.shape[3:])[:, int_draws]
        ipred_sub = base[None] + jnp.einsum("bs,sntk->bntk", plans["amounts"], unit)
        pred_sub = noisy(spec, ipred_sub, noise[int_draws][:, int_times], {k: v[int_draws] for k, v in sigmas.items()})
        return values, ipred_sub, pred_sub

    return run
