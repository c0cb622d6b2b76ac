"""The observation block of the one-compartment population density with its gradient written out (issue 9).

``fused_loglik`` returns the summed log-likelihood of every observation of a cohort under ``pk.one_cmt_oral``
or ``pk.one_cmt_iv`` (bolus doses only, uncensored, one Normal error model: proportional, additive or
combined), as ``predict_cohort`` followed by ``outputs_loglik`` computes it, inside one ``jax.custom_vjp``
whose backward pass hands back the cotangents of each patient's LOG ka, CL, V (and natural F, lag time) and
of the log residual SDs. The derivatives are written out per observation in closed form from the exponentials
the value computes (``bolus._parts``: the library's stable divided difference with its ``ka == ke`` branch)
and summed per patient inside the block, so JAX's reverse mode never sees the ``(patient, time, dose)``
element chain.

Why: under ``pmap`` (4 chains on 2 cores, how ``fit_population`` samples), JAX's reverse-mode program of the
element chain is most of the cost of a population gradient (docs/benchmarks.md, "The gradient floor").

Dispatch: ``fused_applies`` (static) decides; ``build_population_model`` calls the block only where it says
yes and keeps today's path everywhere else.

Examples
--------
>>> import jax, jax.numpy as jnp
>>> jax.config.update("jax_enable_x64", True)
>>> from bayestwin.dynamics.events import Doses, Observations
>>> doses = jax.tree_util.tree_map(lambda a: a[None], Doses.single(time=0.0, amt=100.0))
>>> obs = Observations(time=jnp.array([[1.0, 4.0]]), value=jnp.array([[3.0, 2.5]]), cens=jnp.zeros((1, 2), int),
...                    limit=jnp.full((1, 2), jnp.nan), output=jnp.zeros((1, 2), int), mask=jnp.ones((1, 2), bool))
>>> logs = {"ka": jnp.log(jnp.array([1.0])), "cl": jnp.log(jnp.array([2.0])), "v": jnp.log(jnp.array([20.0]))}
>>> ll = fused_loglik(logs, {}, {"sigma_prop": jnp.log(0.1)}, doses, obs, oral=True, kind="proportional",
...                   exact=False)
>>> f"{float(ll):.6f}"  # scipy.stats.norm.logpdf(y, c, 0.1 c).sum(), c = the Bateman function at 1 and 4 h
'-4.413810'
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jax import Array

from bayestwin.dynamics.bolus import _parts
from bayestwin.dynamics.events import Doses, Observations
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["FUSED_KINDS", "FUSED_MODELS", "fused_applies", "fused_loglik"]

FUSED_MODELS = ("pk.one_cmt_oral", "pk.one_cmt_iv")
FUSED_KINDS = ("proportional", "additive", "combined")
_EXCLUDED_FEATURES = frozenset({"ss", "infusion", "reset", "censored", "time_varying"})
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def fused_applies(spec: TwinSpec, model: AbstractStructuralModel, features: frozenset[str] | None) -> bool:
    """Whether the population density of `spec` on `model` with data `features` can use ``fused_loglik``.

    Yes for ``pk.one_cmt_oral`` / ``pk.one_cmt_iv`` with log-scale ka, CL, V, data promised (static
    `features`) to hold bolus doses only (no steady state, infusion or reset), no censored observation and no
    time-varying covariate, and one Normal error model of kind proportional, additive or combined.

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.spec import example_spec
    >>> s, m = example_spec(), get_model("pk.one_cmt_oral")
    >>> fused_applies(s, m, frozenset()), fused_applies(s, m, None), fused_applies(s, m, frozenset({"ss"}))
    (True, False, False)
    """
    if model.name not in FUSED_MODELS or features is None or features & _EXCLUDED_FEATURES:
        return False
    if len(spec.error) != 1 or spec.error[0].kind not in FUSED_KINDS or spec.error[0].nu is not None:
        return False
    names = {p.name: p for p in spec.parameters}
    rates = ("ka", "cl", "v") if model.name == "pk.one_cmt_oral" else ("cl", "v")
    return all(n in names and names[n].scale == "log" for n in rates)


def fused_loglik(
    log_theta: Mapping[str, Array], extra: Mapping[str, Array], log_sigmas: Mapping[str, Array], doses: Doses,
    obs: Observations, *, oral: bool, kind: str, exact: bool,
) -> Array:
    """Summed log-likelihood of every real observation, with its gradient written out (``jax.custom_vjp``).

    Parameters
    ----------
    log_theta : mapping
        ``"cl"``, ``"v"`` (and ``"ka"`` when `oral`): each patient's log parameter, shape ``(patient,)``.
    extra : mapping
        Optional ``"f"`` (bioavailability) and ``"tlag"`` (lag time) of depot doses, natural scale,
        ``(patient,)``; absent: 1 and 0 (not differentiated).
    log_sigmas : mapping
        Log residual SDs by name: ``sigma_prop`` and/or ``sigma_add`` as `kind` needs.
    doses, obs : Doses, Observations
        The cohort's padded arrays, ``(patient, dose)`` and ``(patient, time)``.
    oral, kind, exact : static
        ``pk.one_cmt_oral`` (else ``pk.one_cmt_iv``); the error model's kind; ``exact`` as in
        ``bolus.bolus_unit`` (True where some dose goes into the central compartment).

    Returns
    -------
    scalar
        ``sum(outputs_loglik(...))`` of today's path, to rounding.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> jax.config.update("jax_enable_x64", True)
    >>> from bayestwin.dynamics.events import Doses, Observations
    >>> doses = jax.tree_util.tree_map(lambda a: a[None], Doses.single(time=0.0, amt=100.0))
    >>> obs = Observations(time=jnp.array([[5.0]]), value=jnp.array([[3.0]]), cens=jnp.zeros((1, 1), int),
    ...                    limit=jnp.full((1, 1), jnp.nan), output=jnp.zeros((1, 1), int), mask=jnp.ones((1, 1), bool))
    >>> def ll(log_cl):  # IV bolus, additive error: Normal(3.0 | 5 exp(-0.1 * 5), 0.5)
    ...     return fused_loglik({"cl": log_cl, "v": jnp.log(jnp.array([20.0]))}, {}, {"sigma_add": jnp.log(0.5)},
    ...                         doses, obs, oral=False, kind="additive", exact=True)
    >>> value, grad = jax.value_and_grad(ll)(jnp.log(jnp.array([2.0])))
    >>> f"{float(value):.6f}", f"{float(grad[0]):.6f}"  # d ll / d log CL = (y - c) / 0.25 * c * (-0.1 * 5)
    ('-0.227924', '0.198052')
    """
    params = {k: log_theta[k] for k in (("ka", "cl", "v") if oral else ("cl", "v"))}
    return _fused(params, dict(extra), dict(log_sigmas), doses, obs, oral, kind, exact)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _fused(params, extra, log_sigmas, doses, obs, oral, kind, exact):
    return _block(params, extra, log_sigmas, doses, obs, oral, kind, exact, grad=False)[0]


def _fused_fwd(params, extra, log_sigmas, doses, obs, oral, kind, exact):
    value, grads = _block(params, extra, log_sigmas, doses, obs, oral, kind, exact, grad=True)
    return value, grads


def _fused_bwd(oral, kind, exact, res, ct):
    scaled = jax.tree_util.tree_map(lambda g: ct * g, res)
    return (*scaled, None, None)  # the data: no cotangent


_fused.defvjp(_fused_fwd, _fused_bwd)


def _block(params, extra, log_sigmas, doses, obs, oral, kind, exact, grad):
    """``(value, (d params, d extra, d log_sigmas) or None)``: the element chain of ``superpose`` written out.

    Elements that do not count (padded doses, doses after the time, not yet absorbed past the lag) get
    ``tau = 0``, where a depot dose's response and every rate derivative are exactly 0: only a dose into the
    central compartment (its response is 1 there) and the lag-time derivative need the mask.
    """
    cl, v = jnp.exp(params["cl"]), jnp.exp(params["v"])
    ke = (cl / v)[:, None, None]
    inv_v = 1.0 / v
    mask = obs.mask
    t = jnp.where(jnp.isfinite(obs.time), obs.time, 0.0)
    depot_only = oral and not exact  # every dose into the depot (static: no "direct" feature)
    valid = doses.mask & (doses.cmt >= 0) & (doses.cmt < (2 if oral else 1))
    depot = (doses.cmt == 0) if oral else jnp.zeros_like(valid)
    f, tlag = extra.get("f"), extra.get("tlag")
    amount = doses.amt if f is None else jnp.where(depot, f[:, None], 1.0) * doses.amt
    since = t[:, :, None] - doses.time[:, None, :]
    active = valid[:, None, :] & (since >= 0)
    tau = jnp.where(active, since, 0.0)
    if tlag is not None:
        tau = tau - jnp.where(depot, tlag[:, None], 0.0)[:, None, :]
        active = active & (tau >= 0)
        tau = jnp.where(active, tau, 0.0)
    amt3 = amount[:, None, :]
    dep3 = depot[:, None, :]
    if oral:
        ka = jnp.exp(params["ka"])[:, None, None]
        e_a, e_b, dd, near, inv_diff = _parts(ke, ka, tau, exact)
        unit = ka * dd if depot_only else jnp.where(dep3, ka * dd, e_a)
    else:
        e_a = jnp.exp(-ke * tau)
        unit = e_a
    value = amt3 * unit if depot_only else jnp.where(active, amt3 * unit, 0.0)
    c = inv_v[:, None] * jnp.sum(value, axis=2)
    y = jnp.where(mask, obs.value, 1.0)
    c_safe = jnp.where(mask, c, 1.0)
    ll, g_c, g_sig = _normal(y, c_safe, log_sigmas, kind, grad)
    total = jnp.sum(jnp.where(mask, ll, 0.0))
    if not grad:
        return total, None
    g_c = jnp.where(mask, g_c, 0.0)  # d ll / d c, (patient, time)
    w = (g_c * inv_v[:, None])[:, :, None] * amt3  # d ll / d (amount * unit), per element
    if oral:
        half_t2 = -0.5 * tau * tau * e_a
        dd_a = jnp.where(near, half_t2, (dd - tau * e_a) * inv_diff)
        d_lam = ka * dd_a if depot_only else jnp.where(dep3, ka * dd_a, -tau * e_a)
    else:
        d_lam = -tau * e_a
    g_lc = jnp.sum(w * d_lam, axis=(1, 2)) * ke[:, 0, 0]
    g_params = {"cl": g_lc, "v": -jnp.sum(g_c * c, axis=1) - g_lc}
    if oral:
        dd_b = jnp.where(near, half_t2, (tau * e_b - dd) * inv_diff)
        d_ka = dd + ka * dd_b if depot_only else jnp.where(dep3, dd + ka * dd_b, 0.0)
        g_params["ka"] = jnp.sum(w * d_ka, axis=(1, 2)) * ka[:, 0, 0]
    g_extra = {}
    if f is not None:  # d (f amt unit) / d f = amt unit, depot doses
        per_amt = (g_c * inv_v[:, None])[:, :, None] * doses.amt[:, None, :]
        g_extra["f"] = jnp.sum(jnp.where(active & dep3, per_amt * unit, 0.0), axis=(1, 2))
    if tlag is not None:
        d_tau = jnp.where(active & dep3, ka * (e_b - ke * dd), 0.0)
        g_extra["tlag"] = -jnp.sum(w * d_tau, axis=(1, 2))
    g_sig = {k: jnp.sum(jnp.where(mask, g_sig[k], 0.0)) for k in log_sigmas}
    return total, ({k: g_params[k] for k in params}, g_extra, g_sig)


def _normal(y, c, log_sigmas, kind, grad):
    """Pointwise Normal log density of `y` around `c` and, with `grad`, its derivatives in c and the log SDs.

    Proportional: ``-(y / c - 1)**2 / (2 s**2) - log c - log s``, today's ``norm.logpdf(y, c, s |c|)`` for
    ``c > 0`` (one division and one log per observation).
    """
    if kind == "proportional":
        ls = log_sigmas["sigma_prop"]
        inv_s2 = jnp.exp(-2.0 * ls)
        inv_c = 1.0 / c
        q = y * inv_c
        r = q - 1.0
        ll = -0.5 * r * r * inv_s2 - jnp.log(c) - ls - _HALF_LOG_2PI
        if not grad:
            return ll, None, None
        return ll, (r * q * inv_s2 - 1.0) * inv_c, {"sigma_prop": r * r * inv_s2 - 1.0}
    r = y - c
    if kind == "additive":
        ls = log_sigmas["sigma_add"]
        s = jnp.exp(ls)
        z = r / s
        ll = -0.5 * z * z - ls - _HALF_LOG_2PI
        if not grad:
            return ll, None, None
        return ll, z / s, {"sigma_add": z * z - 1.0}
    sa, sp = jnp.exp(log_sigmas["sigma_add"]), jnp.exp(log_sigmas["sigma_prop"])
    var = sa * sa + (sp * c) ** 2
    sd = jnp.sqrt(var)
    z = r / sd
    ll = -0.5 * z * z - jnp.log(sd) - _HALF_LOG_2PI
    if not grad:
        return ll, None, None
    d_var = 0.5 * (z * z - 1.0) / var  # d ll / d var
    return ll, z / sd + d_var * 2.0 * sp * sp * c, {"sigma_add": d_var * 2.0 * sa * sa,
                                                     "sigma_prop": d_var * 2.0 * (sp * c) ** 2}
