"""The observation block of a closed-form population density with its derivatives written out (issue 9, DENS2).

``observation_block(spec, model, features)`` returns ``block(theta, sigmas, doses, obs) -> sum of log-likelihood``
for the population model (``population.build_population_model``) when the case is covered, else None (the model
then keeps today's path: ``predict_cohort`` -> ``outputs_loglik``). Covered: a model with a ``superposition``
method (the closed-form PK models: ``dynamics.superposition``), bolus-only data (``features`` without ``ss``,
``infusion``, ``censored``, ``time_varying``), and one error model, Normal (no ``nu``), of kind ``additive``,
``proportional``, ``combined`` or ``lognormal``.

The value is today's: the same operations as ``closed_form.superpose`` and ``likelihood.observation_loglik``
(``norm.logpdf``).
The derivative (``jax.custom_jvp``) is written out: per observation, ``d ll / d pred`` and ``d ll / d sigma``
in closed form (``_normal_terms``), then the VJP of the superposition onto each patient's table of modes
(``superposition.bolus_value_and_vjp``) from the exponentials the value computed; the chain from the table to
the parameters (``1 / v``, ``cl / v``, the two-compartment modes...) is left to JAX, on per-patient scalars.
Measured (``benchmarks/grad_floor.py``, one chain, N = 200): see docs/benchmarks.md. Doses and observations are
data: differentiating the block with respect to them raises NotImplementedError.

Examples
--------
>>> from bayestwin.models import get_model
>>> from bayestwin.spec import example_spec
>>> observation_block(example_spec(), get_model("pk.one_cmt_oral"), frozenset()) is not None
True
>>> observation_block(example_spec(), get_model("pk.one_cmt_oral"), frozenset({"infusion"})) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from jax import Array
from jax.custom_derivatives import SymbolicZero

from bayestwin.dynamics.events import Doses, Observations
from bayestwin.dynamics.superposition import Superposition, bolus_value_and_vjp
from bayestwin.inference.likelihood import _LOG_TINY, residual_sd
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["observation_block"]

KINDS = ("additive", "proportional", "combined", "lognormal")
_EXCLUDED = frozenset({"ss", "infusion", "censored", "time_varying"})


def observation_block(
    spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str] | None
) -> Callable[[Mapping[str, Array], Mapping[str, Array], Doses, Observations], Array] | None:
    """``block(theta, sigmas, doses, obs)``: the summed observation log-likelihood, or None if not covered.

    `theta` maps parameter names to ``(patient,)`` arrays (natural scale), `sigmas` the error model's SD names
    (``sigma_prop``...) to scalars; `doses` and `obs` carry a leading patient axis (``CohortArrays``).

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.spec import example_spec
    >>> callable(observation_block(example_spec(), get_model("pk.one_cmt_iv"), frozenset({"reset"})))
    True
    """
    table_of = getattr(model, "superposition", None)
    if features is None or features & _EXCLUDED or table_of is None or len(spec.error) != 1:
        return None
    err = spec.error[0]
    if err.kind not in KINDS or err.nu is not None or err.output != model.outputs[0]:
        return None
    kind = err.kind
    depot = int(getattr(model, "depot", 0))

    def per_patient(table: Superposition, doses: Doses, t: Array, y: Array, mask: Array,
                    sigmas: Mapping[str, Array]) -> tuple[Array, Superposition, dict[str, Array]]:
        pred, vjp = bolus_value_and_vjp(table, doses, jnp.where(jnp.isfinite(t), t, 0.0), features, depot)
        ll, d_pred, d_sigmas = _normal_terms(kind, y, pred, mask, sigmas)
        return jnp.sum(ll), vjp(d_pred), d_sigmas

    @jax.custom_jvp
    def core(tables: Superposition, sigmas: dict[str, Array], doses: Doses, times: Array, y: Array,
             mask: Array) -> Array:
        value = jax.vmap(lambda tb, d, t, v, m: per_patient(tb, d, t, v, m, sigmas)[0])(tables, doses, times, y, mask)
        return jnp.sum(value)

    def core_jvp(primals: tuple, tangents: tuple) -> tuple[Array, Array]:
        tables, sigmas, doses, times, y, mask = primals
        for data in tangents[2:]:
            if any(not isinstance(leaf, SymbolicZero) for leaf in jax.tree_util.tree_leaves(
                    data, is_leaf=lambda x: isinstance(x, SymbolicZero))):
                raise NotImplementedError("the fused observation block is differentiable in the parameters and "
                                          "sigmas only (doses and observations are data)")
        value, d_tab, d_sig = jax.vmap(lambda tb, d, t, v, m: per_patient(tb, d, t, v, m, sigmas))(
            tables, doses, times, y, mask)
        out = jnp.zeros((), value.dtype)
        for cot, tan in zip(d_tab, tangents[0], strict=True):
            if cot is not None and tan is not None and not isinstance(tan, SymbolicZero):
                out = out + jnp.sum(cot * jnp.reshape(tan, tan.shape + (1,) * (cot.ndim - tan.ndim)))
        for name, tan in tangents[1].items():
            if not isinstance(tan, SymbolicZero):
                out = out + jnp.sum(d_sig[name]) * tan
        return jnp.sum(value), out

    core.defjvp(core_jvp, symbolic_zeros=True)

    def block(theta: Mapping[str, Array], sigmas: Mapping[str, Array], doses: Doses, obs: Observations) -> Array:
        tables = jax.vmap(table_of)(dict(theta))
        return core(tables, dict(sigmas), doses, obs.time, obs.value, obs.mask)

    return block


def _normal_terms(kind: str, y: Array, pred: Array, mask: Array,
                  sigmas: Mapping[str, Array]) -> tuple[Array, Array, dict[str, Array]]:
    """``(ll, d ll / d pred, {sigma name: d ll / d sigma})`` per observation, all 0 where `mask` is false.

    ``ll`` is ``observation_loglik``'s (uncensored, Normal), by the same operations (``norm.logpdf``'s:
    ``-(log(2 pi s**2) + (y - loc)**2 / s**2) / 2``, minus ``log y`` for ``lognormal``). With ``r = y - loc``
    and ``q = r**2 / s**2``: ``d ll / d loc = r / s**2``, ``d ll / d s = (q - 1) / s``, where ``loc = pred``
    (``log pred`` for ``lognormal``, ``y`` its log) and ``s`` is ``sigma_add``, ``sigma_prop |pred|``,
    ``sqrt(sigma_add**2 + (sigma_prop pred)**2)`` or ``sigma_log``.
    """
    y = jnp.where(mask, y, 1.0)
    p = jnp.where(mask, pred, 1.0)
    s = residual_sd(p, kind, sigmas)
    if kind == "lognormal":
        shifted = jnp.maximum(p, 0.0) + jnp.exp(_LOG_TINY)
        y = jnp.log(jnp.where(y > 0, y, 1.0))
        loc = jnp.log(shifted)
    else:
        loc = p
    s2 = jnp.square(s)
    r = y - loc
    q = jnp.square(r) / s2
    ll = (jnp.log(2.0 * math.pi * s2) + q) / -2.0
    d_loc = r / s2
    if kind == "lognormal":
        ll = ll - y
        d_pred, d_s = jnp.where(p > 0, d_loc / shifted, 0.0), {"sigma_log": (q - 1.0) / s}
    elif kind == "additive":
        d_pred, d_s = d_loc, {"sigma_add": (q - 1.0) / s}
    elif kind == "proportional":
        d_pred, d_s = d_loc + (q - 1.0) / p, {"sigma_prop": (q - 1.0) / sigmas["sigma_prop"]}
    else:  # combined
        a, b = sigmas["sigma_add"], sigmas["sigma_prop"]
        w = (q - 1.0) / s2
        d_pred, d_s = d_loc + w * b * b * p, {"sigma_add": w * a, "sigma_prop": w * b * p * p}
    zero = jnp.zeros((), ll.dtype)
    return (jnp.where(mask, ll, zero), jnp.where(mask, d_pred, zero),
            {k: jnp.where(mask, v, zero) for k, v in d_s.items()})
