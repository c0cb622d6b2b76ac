"""The fused observation block (``bayestwin.inference.fused_obs``) gives today's density and gradient (issue 9).

Reference: today's generic path, ``predict_cohort`` + ``observation_loglik`` differentiated by JAX. The block
shares the library's element formulas (``bolus._parts``: the stable divided difference and its ``ka == ke``
branch), so value and gradient agree to rounding; the tolerances (value 1e-13 relative, gradient 1e-10
relative per entry) leave room for sums taken in another order. Deterministic float64: no Monte Carlo error.

Designs: a single dose with padded dose and observation slots, three doses, a dose into the central
compartment (the ``exact`` form), a patient with ``ka == ke`` exactly (``v = 1``, ``cl = ka``: the branch),
flip-flop points (``ka < ke``), bioavailability and lag time estimated, every error kind; the whole population
potential with the block vs without; the dispatch; other densities unchanged bitwise.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import potential_energy

from bayestwin.dynamics.events import Doses, Observations
from bayestwin.inference.fused_obs import fused_applies, fused_loglik
from bayestwin.inference.likelihood import observation_loglik
from bayestwin.inference.population import build_population_model, predict_cohort
from bayestwin.models import get_model
from bayestwin.spec import ErrorModel, Parameter, Prior, example_spec

jax.config.update("jax_enable_x64", True)

N_DOSE, N_OBS = 3, 8
# (time, amt, cmt) rows per patient; observation times per patient (padded to N_OBS with inf)
DOSES = [[(0.0, 100.0, 0)], [(0.0, 50.0, 0), (12.0, 50.0, 0), (24.0, 50.0, 0)], [(0.0, 80.0, 0), (6.0, 30.0, 1)],
         [(0.0, 100.0, 0)]]
TIMES = [[0.5, 1.0, 2.0, 4.0, 8.0], [0.5, 2.0, 6.0, 12.0, 13.0, 24.0, 30.0, 48.0],
         [0.5, 1.0, 3.0, 6.0, 6.5, 10.0, 24.0], [1.0, 2.0, 3.0, 5.0, 7.0, 9.0]]
KINDS = ("proportional", "additive", "combined")
SIGMAS = {"proportional": ("sigma_prop",), "additive": ("sigma_add",), "combined": ("sigma_add", "sigma_prop")}


def _cohort(direct: bool) -> tuple[Doses, Observations]:
    """Padded doses and observations; without `direct`, the central dose of patient 2 goes into the depot."""
    rows = [[(t, a, c if direct else 0) for t, a, c in p] for p in DOSES]

    def pad(values, fill, n):
        return list(values) + [fill] * (n - len(values))
    doses = Doses(time=jnp.array([pad([r[0] for r in p], jnp.inf, N_DOSE) for p in rows]),
                  amt=jnp.array([pad([r[1] for r in p], 0.0, N_DOSE) for p in rows]),
                  rate=jnp.zeros((4, N_DOSE)), cmt=jnp.array([pad([r[2] for r in p], 0, N_DOSE) for p in rows]),
                  ii=jnp.zeros((4, N_DOSE)), ss=jnp.zeros((4, N_DOSE), jnp.int32),
                  reset=jnp.zeros((4, N_DOSE), bool), mask=jnp.array([pad([True] * len(p), False, N_DOSE)
                                                                      for p in rows]))
    rng = np.random.default_rng(7)
    time = jnp.array([pad(t, jnp.inf, N_OBS) for t in TIMES])
    mask = jnp.isfinite(time)
    value = jnp.where(mask, jnp.asarray(rng.uniform(0.3, 4.0, (4, N_OBS))), jnp.nan)
    obs = Observations(time=time, value=value, cens=jnp.zeros((4, N_OBS), jnp.int32),
                       limit=jnp.full((4, N_OBS), jnp.nan), output=jnp.zeros((4, N_OBS), jnp.int32), mask=mask)
    return doses, obs


def _points(oral: bool, with_extra: bool) -> list[tuple[dict, dict, dict]]:
    """Random points, then flip-flop ones (ka < ke); patient 3 has ka == ke exactly (v = 1, cl = ka)."""
    rng = np.random.default_rng(11)
    out = []
    for flip in (False, False, True, True):
        lk = rng.normal(np.log(0.05) if flip else np.log(1.0), 0.3, 4)
        lc, lv = rng.normal(np.log(2.0), 0.3, 4), rng.normal(np.log(20.0), 0.3, 4)
        lk[3], lc[3], lv[3] = np.log(0.3), np.log(0.3), 0.0
        logs = {"ka": jnp.asarray(lk), "cl": jnp.asarray(lc), "v": jnp.asarray(lv)}
        if not oral:
            logs.pop("ka")
        extra = ({"f": jnp.asarray(rng.uniform(0.5, 1.0, 4)), "tlag": jnp.asarray(rng.uniform(0.05, 0.4, 4))}
                 if with_extra else {})
        out.append((logs, extra, {s: jnp.asarray(rng.normal(np.log(0.2), 0.3)) for s in ("sigma_add", "sigma_prop")}))
    return out


def _reference(model, kind: str, features: frozenset[str], doses: Doses, obs: Observations):
    def ll(logs, extra, log_sigmas):
        theta = {k: jnp.exp(v) for k, v in logs.items()} | extra
        pred = predict_cohort(model, theta, doses, obs.time, features)[..., 0]
        return jnp.sum(observation_loglik(obs.value, pred, kind=kind, sigmas={k: jnp.exp(v) for k, v in
                                                                               log_sigmas.items()},
                                          cens=obs.cens, limit=obs.limit, mask=obs.mask, censored=False))
    return ll


def _assert_grad_close(new, ref, what: str) -> None:
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(new), jax.tree_util.tree_leaves(ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=0.0,
                                   err_msg=f"{what}: {jax.tree_util.keystr(path)}")


CASES = [("pk.one_cmt_oral", kind, direct, extra) for kind in KINDS for direct, extra in ((False, False), (True, True))]
CASES += [("pk.one_cmt_oral", "proportional", False, True), ("pk.one_cmt_iv", "proportional", False, False),
          ("pk.one_cmt_iv", "combined", False, False)]


@pytest.mark.parametrize(("name", "kind", "direct", "with_extra"), CASES)
def test_block_value_and_gradient_equal_todays_path(name: str, kind: str, direct: bool, with_extra: bool) -> None:
    model = get_model(name)
    oral = name == "pk.one_cmt_oral"
    features = frozenset({"direct"}) if direct else frozenset()
    doses, obs = _cohort(direct)
    reference = _reference(model, kind, features, doses, obs)

    def fused(logs, extra, log_sigmas):
        return fused_loglik(logs, extra, log_sigmas, doses, obs, oral=oral, kind=kind, exact=direct)

    def both(logs, extra, log_sigmas):
        log_sigmas = {k: log_sigmas[k] for k in SIGMAS[kind]}
        args = (logs, extra, log_sigmas)
        return (jax.value_and_grad(fused, argnums=(0, 1, 2))(*args),
                jax.value_and_grad(reference, argnums=(0, 1, 2))(*args), fused(*args))  # last: the primal alone
    points = _points(oral, with_extra)
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *points)
    (value, grad), (ref_value, ref_grad), primal = jax.jit(jax.vmap(both))(*stacked)
    assert np.all(np.isfinite(np.asarray(value))) and np.all(np.isfinite(np.asarray(ref_value)))
    np.testing.assert_allclose(np.asarray(value), np.asarray(ref_value), rtol=1e-13, atol=0.0)
    np.testing.assert_allclose(np.asarray(primal), np.asarray(ref_value), rtol=1e-13, atol=0.0)
    _assert_grad_close(grad, ref_grad, f"{name} {kind}")
    assert float(jnp.max(jnp.abs(grad[0]["cl"][:, 3]))) > 0.0  # the ka == ke patient carries a gradient


def _spec(kind: str, *, extra: bool = False, model: str = "pk.one_cmt_oral"):
    base = example_spec()
    params = base.parameters if model == "pk.one_cmt_oral" else base.parameters[1:]
    if extra:
        params = (*params, Parameter("f", unit="1", typical=Prior.lognormal(median=0.8, sigma=0.2)),
                  Parameter("tlag", unit="h", typical=Prior.lognormal(median=0.2, sigma=0.3),
                            bsv=Prior.half_normal(0.3)))
    return dataclasses.replace(base, model=model, parameters=params, error=(ErrorModel(kind),))


def _potentials(spec, features: frozenset[str], doses: Doses, obs: Observations):
    """jit of ``z -> (value and gradient fused=True, the same fused=False)`` of the population potential."""
    model = get_model(spec.model)
    args = (doses, obs, {})
    fns = [build_population_model(spec, model, features, fused=f) for f in (True, False)]
    vg = [jax.value_and_grad(lambda z, fn=fn: potential_energy(fn, args, {}, z)) for fn in fns]
    return jax.jit(lambda z: (vg[0](z), vg[1](z)))


def _latent_points(spec, n: int) -> list[dict]:
    rng = np.random.default_rng(5)
    points = []
    for _ in range(2):
        z = {f"tv_{p.name}": jnp.asarray(p.typical.param("mu") + rng.normal(0.0, 0.3)) for p in spec.parameters}
        z |= {f"omega_{b}": jnp.asarray(np.log(0.3) + rng.normal(0.0, 0.2)) for b in spec.bsv_parameters}
        z |= {s: jnp.asarray(np.log(0.2) + rng.normal(0.0, 0.2)) for s in spec.sigma_names}
        z["eta_z"] = jnp.asarray(rng.normal(0.0, 1.0, (n, len(spec.bsv_parameters))))
        points.append(z)
    return points


@pytest.mark.parametrize(("kind", "extra", "model", "direct"), [("proportional", True, "pk.one_cmt_oral", True),
                                                                 ("additive", False, "pk.one_cmt_iv", False)])
def test_population_potential_with_block_equals_without(kind: str, extra: bool, model: str, direct: bool) -> None:
    spec = _spec(kind, extra=extra, model=model)
    features = frozenset({"direct"}) if direct else frozenset()
    assert fused_applies(spec, get_model(model), features)
    doses, obs = _cohort(direct)
    run = _potentials(spec, features, doses, obs)
    for z in _latent_points(spec, 4):
        (value, grad), (ref_value, ref_grad) = run(z)
        np.testing.assert_allclose(float(value), float(ref_value), rtol=1e-13, atol=0.0)
        for site in z:
            np.testing.assert_allclose(np.asarray(grad[site]), np.asarray(ref_grad[site]), rtol=1e-10, atol=1e-12,
                                       err_msg=site)


def test_dispatch() -> None:
    spec, oral, two = _spec("proportional"), get_model("pk.one_cmt_oral"), get_model("pk.two_cmt_oral")
    assert fused_applies(spec, oral, frozenset()) and fused_applies(spec, oral, frozenset({"direct"}))
    for features in (None, frozenset({"ss"}), frozenset({"infusion"}), frozenset({"reset"}),
                     frozenset({"censored"}), frozenset({"time_varying"})):
        assert not fused_applies(spec, oral, features)
    assert not fused_applies(dataclasses.replace(spec, model="pk.two_cmt_oral"), two, frozenset())
    for err in (ErrorModel("lognormal"), ErrorModel("known_sd"), ErrorModel("proportional", nu=4.0)):
        assert not fused_applies(dataclasses.replace(spec, error=(err,)), oral, frozenset())
    identity = dataclasses.replace(spec, parameters=(
        *spec.parameters[:2], Parameter("v", unit="L", typical=Prior("Normal", mu=30.0, sigma=5.0),
                                        scale="identity")))
    assert not fused_applies(identity, oral, frozenset())


def _two_cmt_iv_spec():
    lognormal = Prior.lognormal
    params = (Parameter("cl", unit="L/h", typical=lognormal(median=3.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
              Parameter("v1", unit="L", typical=lognormal(median=20.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
              Parameter("q", unit="L/h", typical=lognormal(median=2.0, sigma=1.0)),
              Parameter("v2", unit="L", typical=lognormal(median=40.0, sigma=1.0)))
    return dataclasses.replace(example_spec(), model="pk.two_cmt_iv", parameters=params,
                               error=(ErrorModel("proportional"),))


@pytest.mark.parametrize(("kind", "features"), [("lognormal", frozenset()), ("proportional", frozenset({"ss"})),
                                                ("two_cmt_iv", frozenset())])
def test_other_densities_unchanged_bitwise(kind: str, features: frozenset[str]) -> None:
    """Where the dispatch declines, ``fused=True`` (the default) builds today's program: bitwise equal."""
    spec = _two_cmt_iv_spec() if kind == "two_cmt_iv" else _spec(kind)
    doses, obs = _cohort(False)
    run = _potentials(spec, features, doses, obs)
    for z in _latent_points(spec, 4):
        (value, grad), (ref_value, ref_grad) = run(z)
        assert float(value) == float(ref_value)
        for site in z:
            np.testing.assert_array_equal(np.asarray(grad[site]), np.asarray(ref_grad[site]))
