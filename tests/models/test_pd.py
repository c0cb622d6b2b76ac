"""PK/PD models (bayestwin.models.pd): each closed form against an independent computation.

* Emax and sigmoid Emax against the formula on the PK model's concentration; sigmoid with gamma = 1 is Emax.
* The closed-form effect site against scipy's solve_ivp of ``dCe/dt = ke0 (C - Ce)`` with the PK ODE
  (several doses, an infusion), against the ODE route of the same model (predict_segments), near
  ``ke0 == k`` (the removable singularity), and for ``ke0 -> infinity`` (direct effect).
* The four indirect-response models against solve_ivp of Dayneka et al.'s equations in R (not in the
  deviation from baseline the library integrates), and at zero drug at their baseline.
* Closed-form gradients finite; the factory's errors.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.pd_rhs import drug_effect
from bayestwin.exceptions import SpecError
from bayestwin.models import get_model, validate_spec
from bayestwin.models.pd import linked_pd
from bayestwin.spec import ErrorModel, Parameter, Prior, TwinSpec

TIMES = np.array([0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 13.0, 18.0, 24.0, 36.0])
ORAL = {"ka": 1.3, "cl": 2.0, "v": 20.0}


def _doses(kind: str) -> Doses:
    """Two oral doses (0 h, 12 h), or an IV bolus then a 2 h infusion (cmt 0 is central for IV models)."""
    if kind == "oral":
        return Doses(time=jnp.array([0.0, 12.0]), amt=jnp.array([100.0, 60.0]), rate=jnp.zeros(2),
                     cmt=jnp.zeros(2, int), ii=jnp.zeros(2), ss=jnp.zeros(2, int), reset=jnp.zeros(2, bool),
                     mask=jnp.ones(2, bool))
    return Doses(time=jnp.array([0.0, 12.0]), amt=jnp.array([100.0, 80.0]), rate=jnp.array([0.0, 40.0]),
                 cmt=jnp.zeros(2, int), ii=jnp.zeros(2), ss=jnp.zeros(2, int), reset=jnp.zeros(2, bool),
                 mask=jnp.ones(2, bool))


def _scipy_pk_effect_site(kind: str, theta: dict, extra) -> np.ndarray:
    """States (PK amounts..., extra state) at TIMES by solve_ivp, doses applied between integrations."""
    k = theta["cl"] / theta["v"]
    n_pk = 2 if kind == "oral" else 1

    def rhs(t, y, infusion):
        pk = [-theta["ka"] * y[0], theta["ka"] * y[0] - k * y[1]] if kind == "oral" else [-k * y[0] + infusion(t)]
        conc = y[n_pk - 1] / theta["v"]
        return [*pk, extra(conc, y[-1])]

    y = np.zeros(n_pk + 1)
    y[0] = 100.0  # first dose at 0 into the depot (oral) or central (IV)
    out, t0 = [], 0.0
    for seg_end in (12.0, 40.0):
        grid = [t for t in TIMES if t0 < t <= seg_end]

        def infusion(t: float) -> float:
            return 40.0 if kind == "iv" and 12.0 <= t < 14.0 else 0.0

        breaks = sorted({t0, *grid, *([14.0] if kind == "iv" and t0 == 12.0 else []), seg_end})
        for a, b in itertools.pairwise(breaks):
            sol = solve_ivp(rhs, (a, b), y, args=(infusion,), method="DOP853", rtol=1e-12, atol=1e-14)
            y = sol.y[:, -1]
            if b in grid:
                out.append(y.copy())
        if seg_end == 12.0 and kind == "oral":
            y[0] += 60.0
        t0 = seg_end
    return np.array(out)


@pytest.fixture(scope="module")
def jitted():
    """One jitted predict per (model name, dose features), compiled once per module.

    ``features`` promises which dose kinds occur: bolus-only histories get the cheap kernel (frozenset()).
    """
    cache = {}

    def get(name: str, features: frozenset[str] | None = frozenset()):
        if (name, features) not in cache:
            model = get_model(name)
            cache[name, features] = jax.jit(lambda th, d, t: model.predict(th, d, t, features=features))
        return cache[name, features]

    return get


def test_direct_emax_and_sigmoid_match_the_formula(jitted) -> None:
    th = {k: jnp.asarray(v) for k, v in {**ORAL, "e0": 10.0, "emax": 20.0, "ec50": 2.0}.items()}
    conc = np.asarray(jitted("pk.one_cmt_oral")(dict(ORAL), _doses("oral"), jnp.asarray(TIMES)))[:, 0]
    emax = np.asarray(jitted("pd.one_cmt_oral_emax")(th, _doses("oral"), jnp.asarray(TIMES)))
    np.testing.assert_allclose(emax[:, 0], conc, rtol=1e-14)
    np.testing.assert_allclose(emax[:, 1], 10.0 + 20.0 * conc / (2.0 + conc), rtol=1e-13)
    sig = jitted("pd.one_cmt_oral_sigmoid_emax")
    one = np.asarray(sig({**th, "gamma": jnp.asarray(1.0)}, _doses("oral"), jnp.asarray(TIMES)))
    np.testing.assert_allclose(one, emax, rtol=1e-13)
    two = np.asarray(sig({**th, "gamma": jnp.asarray(2.5)}, _doses("oral"), jnp.asarray(TIMES)))[:, 1]
    np.testing.assert_allclose(two, 10.0 + 20.0 * conc**2.5 / (2.0**2.5 + conc**2.5), rtol=1e-13)


def test_drug_effect_is_zero_without_drug_with_finite_gradients() -> None:
    assert float(drug_effect(0.0, 5.0, 1.0, 3.0)) == 0.0
    grads = jax.grad(lambda p: drug_effect(jnp.array([0.0, 1e-300, 2.0]), p[0], p[1], p[2]).sum())(
        jnp.array([5.0, 1.0, 30.0]))
    assert np.isfinite(np.asarray(grads)).all()
    assert float(drug_effect(1e6, 5.0, 1.0, 80.0)) == pytest.approx(5.0, rel=1e-15)  # no overflow at large gamma


@pytest.mark.parametrize(("name", "kind"), [("pd.one_cmt_oral_ke0_emax", "oral"), ("pd.one_cmt_iv_ke0_emax", "iv")])
@pytest.mark.parametrize("ke0", [0.05, 0.7])
def test_effect_site_closed_form_matches_scipy(jitted, name: str, kind: str, ke0: float) -> None:
    theta = {**ORAL, "ke0": ke0, "e0": 0.0, "emax": 1.0, "ec50": 1.0}
    features = frozenset({"infusion"}) if kind == "iv" else frozenset()
    pred = np.asarray(jitted(name, features)({k: jnp.asarray(v) for k, v in theta.items()}, _doses(kind),
                                             jnp.asarray(TIMES)))
    ref = _scipy_pk_effect_site(kind, theta, lambda c, ce: ke0 * (c - ce))
    np.testing.assert_allclose(pred[:, 0], ref[:, -2] / theta["v"], rtol=1e-9)
    ce = pred[:, 1] / (1.0 - pred[:, 1])  # invert E = Ce / (1 + Ce)
    np.testing.assert_allclose(ce, ref[:, -1], rtol=1e-7)


def test_effect_site_closed_form_matches_the_ode_route() -> None:
    model = get_model("pd.one_cmt_oral_ke0_emax")
    theta = {**ORAL, "ke0": 0.3, "e0": 10.0, "emax": 20.0, "ec50": 2.0}
    closed = np.asarray(model.predict(theta, _doses("oral"), jnp.asarray(TIMES)))
    seg = {k: jnp.array([v]) for k, v in theta.items()}
    ode = np.asarray(jax.jit(lambda th: model.predict_segments(th, jnp.array([-jnp.inf]), _doses("oral"),
                                                               jnp.asarray(TIMES), features=frozenset()))(seg))
    np.testing.assert_allclose(ode, closed, rtol=1e-7)


def test_effect_site_at_ke0_equal_to_k_and_in_the_direct_limit() -> None:
    model, direct = get_model("pd.one_cmt_oral_ke0_emax"), get_model("pd.one_cmt_oral_emax")
    base = {**ORAL, "e0": 10.0, "emax": 20.0, "ec50": 2.0}
    k = ORAL["cl"] / ORAL["v"]
    at_k = np.asarray(model.predict({**base, "ke0": k}, _doses("oral"), jnp.asarray(TIMES)))[:, 1]
    ref = _scipy_pk_effect_site("oral", base, lambda c, ce: k * (c - ce))[:, -1]
    # ke0 is moved 1e-6 (relative) off k there: the documented ~1e-6 relative accuracy
    np.testing.assert_allclose((at_k - 10.0) / 20.0, ref / (2.0 + ref), rtol=2e-6)
    fast = np.asarray(model.predict({**base, "ke0": 1e5}, _doses("oral"), jnp.asarray(TIMES)))
    now = np.asarray(direct.predict(base, _doses("oral"), jnp.asarray(TIMES)))
    np.testing.assert_allclose(fast, now, rtol=1e-4)  # lag ~ 1 / ke0 = 1e-5 h: |dE/dt| / ke0 ~ 1e-4


IDR = {"idr1": (lambda r, c, p: p["kin"] * (1 - c / (p["c50"] + c)) - p["kout"] * r),
       "idr2": (lambda r, c, p: p["kin"] - p["kout"] * (1 - c / (p["c50"] + c)) * r),
       "idr3": (lambda r, c, p: p["kin"] * (1 + p["cap"] * c / (p["c50"] + c)) - p["kout"] * r),
       "idr4": (lambda r, c, p: p["kin"] - p["kout"] * (1 + p["cap"] * c / (p["c50"] + c)) * r)}


@pytest.mark.parametrize("idr", sorted(IDR))
def test_indirect_response_matches_scipy(jitted, idr: str) -> None:
    name = f"pd.one_cmt_oral_{idr}"
    pd_theta = ({"r0": 10.0, "kout": 0.3, "ic50": 2.0} if idr in ("idr1", "idr2")
                else {"r0": 10.0, "kout": 0.3, "emax": 2.0, "ec50": 2.0})
    theta = {**ORAL, **pd_theta}
    pred = np.asarray(jitted(name)({k: jnp.asarray(v) for k, v in theta.items()}, _doses("oral"), jnp.asarray(TIMES)))
    p = {"kin": 10.0 * 0.3, "kout": 0.3, "c50": 2.0, "cap": 2.0}
    rate = IDR[idr]
    # Dayneka et al.'s equations written in R (= state + R0), independently of the library's deviation form
    ref = _scipy_pk_effect_site("oral", theta, lambda c, r: rate(r + 10.0, c, p))[:, -1] + 10.0
    np.testing.assert_allclose(pred[:, 1], ref, rtol=1e-6)
    direction = {"idr1": -1, "idr2": 1, "idr3": 1, "idr4": -1}[idr]
    assert direction * (pred[3, 1] - 10.0) > 0.5  # the response moves the documented way


def test_indirect_response_stays_at_baseline_without_drug(jitted) -> None:
    theta = {**ORAL, "r0": 7.5, "kout": 0.4, "ic50": 2.0}
    no_drug = _doses("oral")._replace(amt=jnp.zeros(2))
    pred = np.asarray(jitted("pd.one_cmt_oral_idr1")({k: jnp.asarray(v) for k, v in theta.items()}, no_drug,
                                                     jnp.asarray(TIMES)))
    np.testing.assert_array_equal(pred[:, 1], 7.5)
    np.testing.assert_array_equal(pred[:, 0], 0.0)


def test_gradients_are_finite() -> None:
    # closed form only: ODE (IDR) gradients cost a ~60 s compile; check_model's gradient check runs on them
    # in make validate (validation/test_check_model.py)
    closed = get_model("pd.one_cmt_oral_ke0_emax")
    names = ("ka", "cl", "v", "ke0", "e0", "emax", "ec50")

    def total(x):
        return jnp.sum(closed.predict(dict(zip(names, x, strict=True)), _doses("oral"), jnp.asarray(TIMES),
                                      features=frozenset()))

    g = np.asarray(jax.jit(jax.grad(total))(jnp.array([1.3, 2.0, 20.0, 0.1, 10.0, 20.0, 2.0])))
    assert np.isfinite(g).all() and np.all(g != 0.0)


def test_a_spec_may_observe_the_effect_only() -> None:
    spec = TwinSpec(
        name="effect_only", model="pd.one_cmt_oral_emax",
        parameters=tuple(Parameter(n, unit=u, typical=Prior.lognormal(median=1.0, sigma=1.0))
                         for n, u in get_model("pd.one_cmt_oral_emax").parameters.items()),
        error=(ErrorModel("additive", output="effect"),),
        units=(("time", "h"), ("amt", "mg"), ("conc", "mg/L"), ("effect", "mmHg")))
    validate_spec(spec)
    assert spec.observed_outputs == ("effect",)


def test_other_pk_models_link_through_the_factory() -> None:
    cls = linked_pd("pk.two_cmt_iv", "sigmoid_emax", name="test.pd_two_cmt_iv_sigmoid")
    assert cls is linked_pd("pk.two_cmt_iv", "sigmoid_emax", name="test.pd_two_cmt_iv_sigmoid")
    assert cls.kind == "closed_form" and cls.outputs == ("conc", "effect")
    ke0 = linked_pd("pk.two_cmt_iv", "emax", link="effect_compartment", name="test.pd_two_cmt_iv_ke0")
    assert ke0.kind == "ode"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"pk": "pk.one_cmt_oral", "effect": "hill"}, "unknown drug effect 'hill'"),
    ({"pk": "pk.one_cmt_oral", "effect": "emax", "link": "biophase"}, "unknown link 'biophase'"),
    ({"pk": "pk.one_cmt_oral", "effect": "idr1", "link": "effect_compartment"}, "use link='direct'"),
    ({"pk": "longitudinal.level", "effect": "emax"}, "not a concentration"),
    ({"pk": "pk.one_cmt_iv", "effect": "emax", "name": "pd.one_cmt_oral_emax"}, "already links"),
])
def test_factory_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        linked_pd(**kwargs)


@pytest.mark.parametrize("name", ["emax_oral", "emax_effect_site"])
def test_example_specs_fit_their_models(name: str) -> None:
    from pathlib import Path

    from bayestwin.cli.demo import load_spec_file
    from bayestwin.units import parse_unit

    spec = load_spec_file(Path(__file__).resolve().parents[2] / "model_specs" / f"{name}.py")
    validate_spec(spec)
    for _, unit in spec.units:
        parse_unit(unit)
