"""Rao-Blackwellised (smooth) target probabilities of a new measurement, and their derivative in the dose.

For a target on a new measurement (``quantity="pred"``) the per-draw indicator "the measurement falls in
``[lo, hi]``" is replaced by its conditional expectation given the draw, i.e. the residual distribution's
probability of the window:

* additive / proportional / combined error: ``P = Phi((hi - mu) / s) - Phi((lo - mu) / s)``;
* log-normal error: ``P = Phi((log hi - log mu) / s) - Phi((log lo - log mu) / s)``;

with ``mu`` the draw's latent prediction (IPRED) and ``s`` its residual SD. "Any time in a window" becomes
``1 - prod_t (1 - P_t)`` (the kernel's measurements are independent across times) and "fraction of time"
the mean of ``P_t``. The average over posterior draws estimates the same probability as the indicator's
average (Rao-Blackwell: same mean, never more variance), and, unlike the indicator, it is smooth in the dose, so
its derivative is informative. Targets on the latent value (``quantity="ipred"``) have no residual to
integrate and are refused here.

``dose_program`` compiles, once per layout, ``(dose per row, doses, ...) -> per-draw smooth values, their
derivative in the dose (forward mode: one scalar per row) and the indicator values`` for rows of regimens
whose new doses are scaled by the row's dose (the amount, and the rate so that an infusion keeps its duration).
For a model linear in the doses the trajectories are computed once (``trajectory_program``) and each step is
``base + dose * unit``.

Examples
--------
>>> import jax.numpy as jnp
>>> p = window_probability(jnp.array([10.0]), jnp.array([1.0]), 9.0, 11.0, "additive")
>>> round(float(p[0]), 4)
0.6827
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from bayestwin.decision.kernel import Layout, _reduce, require_normal_residuals
from bayestwin.decision.reduction import noisy
from bayestwin.dynamics.events import Doses
from bayestwin.inference.likelihood import residual_sd
from bayestwin.inference.outputs import output_columns, sigma_groups
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["dose_program", "trajectory_program", "window_probability"]

_PROGRAMS: dict[tuple[Any, ...], Callable[..., Any]] = {}
TRACES = [0]


def _phi_bounds(mu: jax.Array, s: jax.Array, lo: Any, hi: Any, log_scale: bool) -> tuple[jax.Array, jax.Array]:
    """(P(y < lo), P(y > hi)) under the residual distribution; infinite bounds give exactly 0 (and 0 gradient)."""
    lo, hi = jnp.asarray(lo, float), jnp.asarray(hi, float)
    lo_ok = jnp.isfinite(lo) & ((lo > 0) | (not log_scale))
    hi_ok = jnp.isfinite(hi)
    if log_scale:
        loc = jnp.log(jnp.maximum(mu, 1e-300))
        lo_v, hi_v = jnp.log(jnp.where(lo_ok, lo, 1.0)), jnp.log(jnp.where(hi_ok & (hi > 0), hi, 1.0))
    else:
        loc, lo_v, hi_v = mu, jnp.where(lo_ok, lo, 0.0), jnp.where(hi_ok, hi, 0.0)
    safe_s = jnp.maximum(s, 1e-300)
    below = jnp.where(lo_ok, ndtr((lo_v - loc) / safe_s), 0.0)
    above = jnp.where(hi_ok, ndtr((loc - hi_v) / safe_s), 0.0)
    if log_scale:
        above = jnp.where(hi_ok & (hi <= 0), 1.0, above)
    return below, above


def window_probability(mu: jax.Array, s: jax.Array, lo: Any, hi: Any, kind: str) -> jax.Array:
    """P(lo <= y <= hi) for a measurement y around `mu` with residual SD `s` (log scale for ``"lognormal"``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> float(window_probability(jnp.array(2.0), jnp.array(0.5), 2.0, jnp.inf, "lognormal"))
    0.5
    """
    below, above = _phi_bounds(mu, s, lo, hi, kind == "lognormal")
    return jnp.clip(1.0 - below - above, 0.0, 1.0)


def _smooth_reduce(spec: TwinSpec, layout: Layout, ipred: jax.Array, sigmas: dict[str, jax.Array],
                   at_idx: jax.Array, lo: jax.Array, hi: jax.Array, masks: jax.Array) -> jax.Array:
    """Per (draw, target) smooth values from one row's trajectories ``(draw, time, output)``."""
    groups = sigma_groups(spec, {k: v[:, None] for k, v in sigmas.items()})  # (draw, 1)
    out = []
    for k, (kind, col) in enumerate(zip(layout.kinds, layout.columns, strict=True)):
        mu = ipred[..., col]
        err = spec.error[col]
        s = residual_sd(mu, err.kind, groups[col], None)
        below, above = _phi_bounds(mu, s, lo[k], hi[k], err.kind == "lognormal")
        p = jnp.clip(1.0 - below - above, 0.0, 1.0)  # (draw, time)
        if kind == "at":
            out.append(p[:, at_idx[k]])
        elif kind == "any":  # 1 - prod (1 - p): log of the complement, floored (log 0 has no gradient)
            log_q = jnp.log(jnp.maximum(below + above, 1e-300))
            out.append(1.0 - jnp.exp(jnp.sum(jnp.where(masks[k], log_q, 0.0), axis=1)))
        else:  # fraction
            out.append(jnp.sum(jnp.where(masks[k], p, 0.0), axis=1) / jnp.maximum(jnp.sum(masks[k]), 1))
    return jnp.stack(out, axis=-1)


def _values(spec: TwinSpec, layout: Layout, ipred_of: Callable[[jax.Array], jax.Array], d0: jax.Array,
            at_r: jax.Array, sigmas: dict[str, jax.Array], times: jax.Array, lo: jax.Array, hi: jax.Array,
            masks: jax.Array, noise: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One row: smooth values, their derivative in the dose (``jax.jvp``) and the indicator values."""
    def smooth(d: jax.Array) -> tuple[jax.Array, jax.Array]:
        ipred = ipred_of(d)
        return _smooth_reduce(spec, layout, ipred, sigmas, at_r, lo, hi, masks), ipred

    (val, ipred), (dval, _) = jax.jvp(smooth, (d0,), (jnp.ones_like(d0),))
    pred = noisy(spec, ipred[None], noise, sigmas)
    ind = _reduce(layout, ipred[None], pred, times, at_r[None], lo, hi, masks)[0]
    return val, dval, ind


def _trajectories(model: Any, columns: jax.Array, feats: Any, segmented: bool, dose: jax.Array, doses: Doses,
                  is_new: jax.Array, theta: Any, times: jax.Array, starts: jax.Array) -> jax.Array:
    """(draw, time, output) of one row's regimen with its planned doses scaled by `dose`."""
    factor = jnp.where(is_new, dose, 1.0)
    d = doses._replace(amt=doses.amt * factor, rate=doses.rate * factor)
    if segmented:
        return jax.vmap(lambda th: model.predict_segments(th, starts, d, times, features=feats)[:, columns])(theta)
    return jax.vmap(lambda th: model.predict(th, d, times, features=feats)[:, columns])(theta)


def trajectory_program(spec: TwinSpec, model: Any, features: Any) -> Callable[..., Any]:
    """Compiled ``(dose (row,), doses, is_new, theta, times) -> (row, draw, time, output)`` latent trajectories."""
    key = ("trajectories", spec.digest(), model.name, features)
    if key not in _PROGRAMS:
        columns = jnp.asarray(output_columns(spec, model))

        def run(dose: jax.Array, doses: Doses, is_new: jax.Array, theta: Any, times: jax.Array) -> jax.Array:
            TRACES[0] += 1
            return jax.vmap(lambda d0, dr, nr: _trajectories(model, columns, features, False, d0, dr, nr, theta,
                                                             times, jnp.zeros(1)))(dose, doses, is_new)

        _PROGRAMS[key] = jax.jit(run)
    return _PROGRAMS[key]


def dose_program(spec: TwinSpec, model: Any, layout: Layout, segmented: bool, linear: bool = False
                 ) -> Callable[..., Any]:
    """The jit-compiled ``run(dose, doses, is_new, at_idx, theta, sigmas, times, lo, hi, masks, noise, starts)``.

    ``dose`` (row,), ``doses`` Doses with fields (row, dose) holding each row's regimen for a unit dose,
    ``is_new`` (row, dose) marks the planned doses (scaled by the row's dose), ``at_idx`` (row, target),
    ``theta`` {name: (draw,)} or, with ``segmented``, {name: (row, draw, segment)} and ``starts`` (row, segment).
    Returns ``smooth`` (row, draw, target), ``d_smooth`` (its derivative in the row's dose, same shape) and
    ``indicator`` (row, draw, target; measurement indicators with the shared ``noise``: common random numbers).

    With `linear` (a model linear in the doses), ``run(dose, base, unit, at_idx, sigmas, times, lo, hi, masks,
    noise)`` instead: the trajectories are ``base + dose * unit`` (``trajectory_program`` at doses 0 and 1,
    computed once), exact by superposition, and each step is a multiply-add.
    """
    require_normal_residuals(spec)
    key = (spec.digest(), model.name, layout, segmented, linear)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    columns = jnp.asarray(output_columns(spec, model))
    feats = layout.features

    def run_linear(dose: jax.Array, base: jax.Array, unit: jax.Array, at_idx: jax.Array, sigmas: dict[str, jax.Array],
                   times: jax.Array, lo: jax.Array, hi: jax.Array, masks: jax.Array, noise: jax.Array
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
        TRACES[0] += 1
        return jax.vmap(lambda d0, b, u, at_r: _values(spec, layout, lambda d: b + d * u, d0, at_r, sigmas, times, lo,
                                                       hi, masks, noise))(dose, base, unit, at_idx)

    def run(dose: jax.Array, doses: Doses, is_new: jax.Array, at_idx: jax.Array, theta: Any,
            sigmas: dict[str, jax.Array], times: jax.Array, lo: jax.Array, hi: jax.Array, masks: jax.Array,
            noise: jax.Array, starts: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        TRACES[0] += 1

        def row(d0: jax.Array, doses_r: Doses, new_r: jax.Array, at_r: jax.Array, th_r: Any, st_r: jax.Array
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
            traj = lambda d: _trajectories(model, columns, feats, segmented, d, doses_r, new_r, th_r, times,  # noqa: E731
                                           st_r)
            return _values(spec, layout, traj, d0, at_r, sigmas, times, lo, hi, masks, noise)

        th_axes = 0 if segmented else None
        return jax.vmap(row, in_axes=(0, 0, 0, 0, th_axes, 0))(dose, doses, is_new, at_idx, theta, starts)

    _PROGRAMS[key] = jax.jit(run_linear if linear else run)
    return _PROGRAMS[key]
