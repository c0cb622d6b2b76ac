"""The compiled evaluation of plans x posterior draws x times: one XLA program per layout, cached.

One call evaluates every plan on every posterior draw at every time of a common grid and reduces the
trajectories to one value per (plan, draw, target) inside the program, so that the (plan, draw, time)
array (640 MB for 100 x 4,000 x 200 in float64) is never held at once: plans are processed in chunks
(``lax.map``), draws and times vectorised. Three ways to get the trajectories:

* ``linear``: a model whose outputs are linear in the doses (``model.linear``; the closed-form PK models).
  The response of every distinct planned dose slot (time, compartment, infusion duration) to a unit amount is
  computed once per draw; a plan's trajectory is the past doses' response plus its amounts times those
  unit responses (a matrix product). Exact by superposition. Without level-reactive plans this path is
  evaluated in chunks of draws with the reductions fused in (``bayestwin.decision.fused``: 3-4x less CPU
  time at 100 plans x 4,000 draws x 200 times); the plan-chunked evaluation below stays for reactive plans
  and for comparison (``Layout.fused``).
* ``generic``: any model: ``model.predict`` for every plan and draw (parameters set or scaled per plan).
* ``segments``: parameters that change during the horizon (an intervention from a time on, or the twin's
  time-varying covariates): ``model.predict_segments``.

Common random numbers: every plan sees the same posterior draws and the same standard-normal residual
noise array ``(draw, time, output)``, drawn once per call. Programs are cached per (spec digest, model,
layout); JAX's own cache adds the argument shapes. ``trace_count`` counts traces (a test checks that a
second call with the same shapes traces nothing).

Examples
--------
>>> trace_count() >= 0
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from bayestwin.decision.fused import build_linear
from bayestwin.decision.reduction import noisy
from bayestwin.dynamics.events import Doses
from bayestwin.exceptions import SpecError
from bayestwin.inference.outputs import output_columns
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["Layout", "program", "trace_count"]

_PROGRAMS: dict[tuple[Any, ...], Callable[..., Any]] = {}
_TRACES = [0]


def trace_count() -> int:
    """How many times a plan-comparison program has been traced (compiled) in this process."""
    return _TRACES[0]


@dataclass(frozen=True)
class Layout:
    """Static structure of one comparison: how trajectories are made and what is reduced from them."""

    path: str  # "linear" | "generic" | "segments"
    kinds: tuple[str, ...]  # per target: "at" | "any" | "fraction" | "first"
    columns: tuple[int, ...]  # per target: index among the spec's observed outputs
    quantities: tuple[str, ...]  # per target: "ipred" | "pred"
    batch: int  # plans per chunk (draws per chunk when `fused`)
    features: frozenset[str] | None  # dose kinds present (see dose_features)
    reactive: bool = False  # level-reactive plans: per-draw amounts (linear path, see _reactive_amounts)
    fused: bool = False  # linear path chunked over draws, reductions fused (bayestwin.decision.fused)


def program(spec: TwinSpec, model: AbstractStructuralModel, layout: Layout) -> Callable[..., Any]:
    """The jit-compiled evaluator for `layout` (cached); see ``_build`` for its arguments."""
    require_normal_residuals(spec)
    key = (spec.digest(), model.name, layout)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = jax.jit(_build(spec, model, layout))
    return _PROGRAMS[key]


def require_normal_residuals(spec: TwinSpec) -> None:
    """SpecError when an error model of `spec` is Student-t (``nu`` set): plan comparison draws Normal noise.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> require_normal_residuals(example_spec())  # Normal residuals: nothing to say
    """
    t_outputs = [e.output for e in spec.error if e.nu is not None]
    if t_outputs:
        raise SpecError(f"output(s) {t_outputs} have Student-t residuals (ErrorModel nu=...); comparing plans "
                        "supports Normal residuals only so far. Compare plans on a spec with Normal residuals "
                        "(set_error_model), or compare the noise-free predictions (ipred targets).")


def _reduce(layout: Layout, ipred: jax.Array, pred: jax.Array | None, times: jax.Array, at_idx: jax.Array,
            lo: jax.Array, hi: jax.Array, masks: jax.Array) -> jax.Array:
    """Per (plan, draw, target) values from trajectories ``(plan, draw, time, output)``.

    A draw whose prediction is not finite where the target looks (a failed ODE solve) gets NaN, which
    ``compare_plans`` refuses to summarise (``PredictionError``).
    """
    out = []
    for k, (kind, col, qty) in enumerate(zip(layout.kinds, layout.columns, layout.quantities, strict=True)):
        y = (pred if qty == "pred" else ipred)[..., col]  # type: ignore[index]
        inside = (y >= lo[k]) & (y <= hi[k])  # (plan, draw, time)
        broken = ~jnp.isfinite(y)
        if kind == "at":
            idx = jnp.broadcast_to(at_idx[:, k][:, None, None], (*inside.shape[:2], 1))
            value = jnp.take_along_axis(inside, idx, axis=2)[..., 0].astype(float)
            bad = jnp.take_along_axis(broken, idx, axis=2)[..., 0]
        else:
            bad = jnp.any(broken & masks[k], axis=2)
            if kind == "any":
                value = jnp.any(inside & masks[k], axis=2).astype(float)
            elif kind == "fraction":
                value = jnp.sum(inside & masks[k], axis=2) / jnp.maximum(jnp.sum(masks[k]), 1)
            else:  # first
                hit = inside & masks[k]
                value = jnp.where(jnp.any(hit, axis=2), times[jnp.argmax(hit, axis=2)], jnp.inf)
        out.append(jnp.where(bad, jnp.nan, value))
    return jnp.stack(out, axis=-1)


def _reactive_amounts(rule: dict[str, jax.Array], base: jax.Array, unit: jax.Array) -> jax.Array:
    """Per-draw slot amounts ``(draw, slot)`` of one plan under its level-reactive rule (``ReactiveRule``).

    Doses are taken in time order (``lax.scan``); before a checked dose, each draw's predicted concentration
    just before it (past doses plus the doses given so far: later doses do not act before their time) is
    compared with the threshold, and a trigger multiplies that dose and every later one by the factor.
    """
    col = rule["column"]
    n_draws, n_slots = base.shape[0], unit.shape[0]

    def step(carry: tuple[jax.Array, jax.Array], i: jax.Array) -> tuple[tuple[jax.Array, jax.Array], None]:
        amounts, scale = carry
        t = rule["check"][i]
        conc = base[:, t, col] + jnp.einsum("ns,sn->n", amounts, unit[:, :, t, col])
        trigger = rule["checked"][i] & (rule["sign"] * (conc - rule["threshold"]) > 0)
        scale = scale * jnp.where(trigger, rule["factor"], 1.0)
        return (amounts.at[:, rule["slot"][i]].add(rule["amt"][i] * scale), scale), None

    init = (jnp.zeros((n_draws, n_slots)), jnp.ones(n_draws))
    (amounts, _), _ = jax.lax.scan(step, init, jnp.arange(rule["slot"].shape[0]))
    return amounts


def _build(spec: TwinSpec, model: AbstractStructuralModel, layout: Layout) -> Callable[..., Any]:
    columns = jnp.asarray(output_columns(spec, model))
    if layout.fused:
        fused = build_linear(spec, model, columns, layout)

        def counted(*args: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
            _TRACES[0] += 1
            return fused(*args)
        return counted
    feats = layout.features
    need_pred = "pred" in layout.quantities

    def predict(theta: dict[str, jax.Array], doses: Doses, times: jax.Array) -> jax.Array:
        return model.predict(theta, doses, times, features=feats)[:, columns]

    def over_draws(theta: dict[str, jax.Array], doses: Doses, times: jax.Array) -> jax.Array:
        return jax.vmap(lambda th: predict(th, doses, times))(theta)

    def run(theta: dict[str, jax.Array], sigmas: dict[str, jax.Array], key: jax.Array, times: jax.Array,
            plans: dict[str, Any], at_idx: jax.Array, lo: jax.Array, hi: jax.Array, masks: jax.Array,
            int_draws: jax.Array, int_times: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Evaluate every plan.

        ``plans`` holds per-plan arrays with a leading plan axis (a multiple of ``layout.batch``):
        linear: ``amounts`` (plan, slot) plus shared ``slots`` (Doses, one dose per slot) and ``past`` (Doses);
        generic: ``doses`` (Doses, plan x dose), ``scale``/``value``/``is_set`` (plan, parameter);
        segments: ``doses``, ``seg_theta`` {name: (plan, draw, segment)}, ``starts`` (plan, segment).
        """
        _TRACES[0] += 1
        n_draws = next(iter(sigmas.values())).shape[0]
        noise = jax.random.normal(key, (n_draws, times.shape[0], len(spec.error)))
        names = list(theta)
        if layout.path == "linear":
            base = over_draws(theta, plans["past"], times)  # (draw, time, output)
            unit = jax.vmap(lambda d: over_draws(theta, d, times))(plans["slots"])  # (slot, draw, time, output)
            per_plan: dict[str, Any] = {"amounts": plans["amounts"]}
            if layout.reactive:
                per_plan["reactive"] = plans["reactive"]

            def trajectories(chunk: dict[str, Any]) -> jax.Array:
                if layout.reactive:
                    amounts = jax.vmap(lambda r: _reactive_amounts(r, base, unit))(chunk["reactive"])
                    return base[None] + jnp.einsum("bns,sntk->bntk", amounts, unit)
                return base[None] + jnp.einsum("bs,sntk->bntk", chunk["amounts"], unit)
        elif layout.path == "generic":
            per_plan = {k: plans[k] for k in ("doses", "scale", "value", "is_set")}

            def trajectories(chunk: dict[str, Any]) -> jax.Array:
                def one(doses: Doses, scale: jax.Array, value: jax.Array, is_set: jax.Array) -> jax.Array:
                    th = {n: jnp.where(is_set[i], value[i], theta[n] * scale[i]) for i, n in enumerate(names)}
                    return over_draws(th, doses, times)
                return jax.vmap(one)(chunk["doses"], chunk["scale"], chunk["value"], chunk["is_set"])
        else:
            per_plan = {k: plans[k] for k in ("doses", "seg_theta", "starts")}

            def trajectories(chunk: dict[str, Any]) -> jax.Array:
                def one(doses: Doses, th: dict[str, jax.Array], starts: jax.Array) -> jax.Array:
                    return jax.vmap(lambda t: model.predict_segments(t, starts, doses, times, features=feats)
                                    [:, columns])(th)
                return jax.vmap(one)(chunk["doses"], chunk["seg_theta"], chunk["starts"])

        def chunk_fn(chunk: dict[str, Any]) -> tuple[jax.Array, jax.Array, jax.Array]:
            ipred = trajectories(chunk)  # (batch, draw, time, output)
            pred = noisy(spec, ipred, noise, sigmas) if need_pred else None
            values = _reduce(layout, ipred, pred, times, chunk["at_idx"], lo, hi, masks)
            ipred_sub = ipred[:, int_draws][:, :, int_times]  # the interval sample: noise only where needed
            sub_sigmas = {k: v[int_draws] for k, v in sigmas.items()}
            pred_sub = noisy(spec, ipred_sub, noise[int_draws][:, int_times], sub_sigmas)
            return values, ipred_sub, pred_sub

        n_plans = at_idx.shape[0]
        b = layout.batch
        chunks = jax.tree_util.tree_map(lambda a: a.reshape(n_plans // b, b, *a.shape[1:]),
                                        {**per_plan, "at_idx": at_idx})
        values, ipred_sub, pred_sub = jax.lax.map(chunk_fn, chunks)
        merge = lambda a: a.reshape(n_plans, *a.shape[2:])  # noqa: E731
        return merge(values), merge(ipred_sub), merge(pred_sub)

    return run
