"""Closed-form linear PK kernels (bayestwin.dynamics.closed_form) against exact truth.

References are independent of the kernels: textbook poly-exponentials written out here, quadrature of
the bolus response for infusions, explicit superposition of dose trains for steady state, and 50-digit
``decimal`` arithmetic where float64 itself cannot give the reference (rates that are equal or nearly
so). Everything is deterministic float64, so tolerances are rounding-level (rtol ~1e-12) unless a
reference is approximate; each looser tolerance says why.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import integrate

from bayestwin.dynamics.closed_form import (
    log_one_cmt_oral_single,
    one_cmt_iv,
    one_cmt_oral,
    superpose,
    two_cmt_iv,
    two_cmt_oral,
)
from bayestwin.dynamics.events import Doses

jax.config.update("jax_enable_x64", True)

RTOL = 1e-12  # float64 rounding of a few dozen operations, with margin
FN = {"one_cmt_iv": one_cmt_iv, "one_cmt_oral": one_cmt_oral, "two_cmt_iv": two_cmt_iv, "two_cmt_oral": two_cmt_oral}
JIT = {name: jax.jit(fn) for name, fn in FN.items()}
PARAMS = {
    "one_cmt_iv": {"cl": 2.0, "v": 20.0},
    "one_cmt_oral": {"ka": 1.0, "cl": 2.0, "v": 20.0},
    "two_cmt_iv": {"cl": 2.0, "v1": 20.0, "q": 3.0, "v2": 40.0},
    "two_cmt_oral": {"ka": 1.5, "cl": 2.0, "v1": 20.0, "q": 3.0, "v2": 40.0},
}
# Faster disposition (beta ~ 0.117 /h) for the 50-dose trains; see test_steady_state_matches_explicit_train.
FAST = {
    "one_cmt_iv": {"cl": 2.0, "v": 20.0},
    "one_cmt_oral": {"ka": 1.0, "cl": 2.0, "v": 20.0},
    "two_cmt_iv": {"cl": 4.0, "v1": 10.0, "q": 2.0, "v2": 10.0},
    "two_cmt_oral": {"ka": 1.5, "cl": 4.0, "v1": 10.0, "q": 2.0, "v2": 10.0},
}
INPUTS = {"one_cmt_iv": (0,), "one_cmt_oral": (0, 1), "two_cmt_iv": (0, 1), "two_cmt_oral": (0, 1, 2)}
CASES = [(name, cmt) for name, cmts in INPUTS.items() for cmt in cmts]


@pytest.fixture(autouse=True)
def _strict_jax():
    # STYLE section 9: our kernels run with rank promotion raising and strict dtype promotion.
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield


def rec(time: float, amt: float, **kw) -> dict:
    return {"time": time, "amt": amt, "rate": 0.0, "cmt": 0, "ii": 0.0, "ss": 0, "reset": False} | kw


def make_doses(*records: dict, n: int = 8) -> Doses:
    """Padded Doses with the conventions of bayestwin.dynamics.events (time +inf, amount 0, mask false)."""
    pad = n - len(records)
    assert pad >= 0

    def col(key: str, fill: float, dtype) -> jax.Array:
        return jnp.array([r[key] for r in records] + [fill] * pad, dtype=dtype)

    return Doses(time=col("time", math.inf, jnp.float64), amt=col("amt", 0.0, jnp.float64),
                 rate=col("rate", 0.0, jnp.float64), cmt=col("cmt", 0, jnp.int32), ii=col("ii", 0.0, jnp.float64),
                 ss=col("ss", 0, jnp.int32), reset=col("reset", False, jnp.bool_), mask=jnp.arange(n) < len(records))


def run(name: str, t, doses: Doses, params: dict | None = None, **kw) -> np.ndarray:
    """The jitted model at times `t`. Times are padded to a multiple of 16 and every argument is a float64 array, so
    that tests share compiled kernels (one per model and dose-axis length)."""
    t = np.asarray(t, dtype=float)
    n = t.size
    padded = np.zeros(-(-max(n, 1) // 16) * 16)
    padded[:n] = t
    args = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in (params or PARAMS[name]).items()}
    if "oral" in name:
        kw = {"f": 1.0, "tlag": 0.0} | kw
    kw = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in kw.items()}
    return np.asarray(JIT[name](jnp.asarray(padded), doses, **args, **kw))[:n]


# ---- textbook references, written out independently of the library -----------------------------------------

def two_cmt_macro(cl: float, v1: float, q: float, v2: float) -> tuple[float, float, float]:
    k10, k12, k21 = cl / v1, q / v1, q / v2
    s = k10 + k12 + k21
    alpha = (s + math.sqrt(s * s - 4.0 * k10 * k21)) / 2.0
    return alpha, k10 * k21 / alpha, k21  # beta from alpha beta = k10 k21 (Vieta), not (s - root) / 2


def unit_response(name: str, cmt: int, p: dict, t: np.ndarray) -> np.ndarray:
    """Concentration after a unit bolus into `cmt` (textbook formulas; ka must differ from the other rates)."""
    t = np.asarray(t, dtype=float)
    if name.startswith("one"):
        ke = p["cl"] / p["v"]
        if name == "one_cmt_oral" and cmt == 0:
            if p["ka"] == ke:
                return p["ka"] * t * np.exp(-ke * t) / p["v"]
            return p["ka"] / (p["v"] * (p["ka"] - ke)) * (np.exp(-ke * t) - np.exp(-p["ka"] * t))
        return np.exp(-ke * t) / p["v"]
    a, b, k21 = two_cmt_macro(p["cl"], p["v1"], p["q"], p["v2"])
    central, peripheral = cmt, cmt - 1
    if name == "two_cmt_oral":
        ka = p["ka"]
        if cmt == 0:
            return ka / p["v1"] * ((k21 - a) / ((ka - a) * (b - a)) * np.exp(-a * t)
                                   + (k21 - b) / ((ka - b) * (a - b)) * np.exp(-b * t)
                                   + (k21 - ka) / ((a - ka) * (b - ka)) * np.exp(-ka * t))
        central, peripheral = cmt - 1, cmt - 2
    if central == 0:
        return ((a - k21) * np.exp(-a * t) + (k21 - b) * np.exp(-b * t)) / ((a - b) * p["v1"])
    assert peripheral == 0
    return k21 * (np.exp(-b * t) - np.exp(-a * t)) / ((a - b) * p["v1"])


# ---- single doses: textbook values -----------------------------------------------------------------------

def test_one_cmt_iv_bolus_hand_computed():
    # 100 mg bolus, CL 2 L/h, V 20 L: C(t) = 5 exp(-0.1 t) mg/L; at 5 h, 5 e^-0.5.
    c = run("one_cmt_iv", [0.0, 1.0, 5.0, 24.0], make_doses(rec(0.0, 100.0)))
    np.testing.assert_allclose(c, [5.0, 5.0 * math.exp(-0.1), 5.0 * math.exp(-0.5), 5.0 * math.exp(-2.4)], rtol=RTOL)
    assert abs(c[2] - 3.0326532985631656) < 1e-14


@pytest.mark.parametrize(("ka", "cl", "v", "f"), [(1.0, 2.0, 20.0, 1.0), (0.05, 6.0, 20.0, 0.8), (2.5, 0.5, 35.0, 0.3)],
                         ids=["ka>ke", "flip-flop", "slow-elimination"])
def test_one_cmt_oral_bateman(ka, cl, v, f):
    t = np.array([0.0, 0.5, 1.0, 2.0, 6.0, 24.0, 72.0])
    ke = cl / v
    bateman = f * 100.0 * ka / (v * (ka - ke)) * (np.exp(-ke * t) - np.exp(-ka * t))
    np.testing.assert_allclose(run("one_cmt_oral", t, make_doses(rec(0.0, 100.0)), {"ka": ka, "cl": cl, "v": v}, f=f),
                               bateman, rtol=RTOL, atol=1e-300)


@pytest.mark.parametrize("p", [{"cl": 2.0, "v1": 20.0, "q": 3.0, "v2": 40.0},
                               {"cl": 1.0, "v1": 10.0, "q": 2.0, "v2": 2.0},
                               {"cl": 30.0, "v1": 5.0, "q": 0.5, "v2": 100.0}],
                         ids=["k10+k12>k21", "k10+k12<k21", "fast-elimination"])
@pytest.mark.parametrize("cmt", [0, 1], ids=["central", "peripheral"])
def test_two_cmt_iv_bolus_biexponential(p, cmt):
    t = np.array([0.0, 0.25, 1.0, 4.0, 12.0, 48.0])
    expected = 100.0 * unit_response("two_cmt_iv", cmt, p, t)
    # A peripheral dose's coefficients have both signs and cancel exactly at t = 0, leaving rounding ~eps * coeff.
    np.testing.assert_allclose(run("two_cmt_iv", t, make_doses(rec(0.0, 100.0, cmt=cmt)), p), expected, rtol=RTOL,
                               atol=1e-14 * expected.max() * cmt)


@pytest.mark.parametrize("p", [PARAMS["two_cmt_oral"], {"ka": 0.05, "cl": 4.0, "v1": 10.0, "q": 2.0, "v2": 10.0}],
                         ids=["ka-fast", "flip-flop"])
def test_two_cmt_oral_triexponential(p):
    t = np.array([0.5, 1.0, 3.0, 8.0, 24.0, 96.0])
    expected = 100.0 * unit_response("two_cmt_oral", 0, p, t)
    # The triexponential sums terms of both signs (cancelling ~10x at 0.5 h): reference good to ~1e-14.
    np.testing.assert_allclose(run("two_cmt_oral", t, make_doses(rec(0.0, 100.0)), p), expected, rtol=1e-11)


def test_superpose_generic_three_exponentials():
    coeffs, lam = np.array([[0.02, 0.01, 0.005]]), np.array([2.0, 0.3, 0.01])
    t = np.array([0.0, 0.5, 3.0, 10.0, 100.0])
    d = make_doses(rec(0.0, 100.0), rec(5.0, 40.0, rate=10.0))
    u, s = np.clip(t - 5.0, 0.0, 4.0), np.clip(t - 9.0, 0.0, None)
    exact = sum(c * (100.0 * np.exp(-k * t) + 10.0 * (1.0 - np.exp(-k * u)) / k * np.exp(-k * s))
                for c, k in zip(coeffs[0], lam, strict=True))
    np.testing.assert_allclose(np.asarray(jax.jit(superpose)(jnp.asarray(t), d, jnp.asarray(coeffs), jnp.asarray(lam))),
                               exact, rtol=RTOL)


# ---- infusions against quadrature of the bolus response ---------------------------------------------------

@pytest.mark.parametrize(("name", "cmt"), [*CASES, ("one_cmt_oral@ka=ke", 0)])
def test_infusion_matches_integrated_bolus(name, cmt):
    model = name.split("@")[0]
    p = dict(PARAMS[model])
    if name.endswith("ka=ke"):
        p["ka"] = p["cl"] / p["v"]
    rate, dur = 50.0, 2.0  # 100 mg over 2 h
    t = np.array([0.005, 0.3, 1.0, 1.99, 2.0, 2.5, 6.0, 30.0])  # 0.005: the depot series branch (max rate * t < 0.01)
    got = run(model, t, make_doses(rec(0.0, 100.0, rate=rate, cmt=cmt)), p)
    ref = []
    for ti in t:
        val, err = integrate.quad(lambda s, ti=ti: unit_response(model, cmt, p, ti - s), 0.0, min(ti, dur),
                                  epsabs=0.0, epsrel=1e-13, limit=200)
        assert err <= 1e-12 * abs(val)
        ref.append(rate * val)
    # Reference approximate: quadrature (error estimate <= 1e-12) on textbook forms that cancel at small t.
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_bioavailability_changes_infusion_duration():
    # NONMEM: with RATE given, F scales the amount and so the duration (F amt / rate).
    t = np.linspace(0.0, 30.0, 13)
    d = make_doses(rec(0.0, 100.0, rate=50.0))
    half = run("one_cmt_oral", t, make_doses(rec(0.0, 50.0, rate=50.0)))
    np.testing.assert_allclose(run("one_cmt_oral", t, d, f=0.5), half, rtol=RTOL)


# ---- steady state ------------------------------------------------------------------------------------------

def slowest_rate(name: str, p: dict) -> float:
    rates = [p["cl"] / p["v"]] if name.startswith("one") else list(two_cmt_macro(p["cl"], p["v1"], p["q"], p["v2"])[:2])
    return min([*rates, p.get("ka", math.inf)])


TRAIN_T = np.array([0.0, 0.5, 1.0, 1.9, 2.0, 5.0, 11.99, 12.0, 30.0])


@pytest.mark.parametrize("n_doses", [50, 200])
@pytest.mark.parametrize("kind", ["bolus", "infusion"])
@pytest.mark.parametrize(("name", "cmt"), CASES)
def test_steady_state_matches_explicit_train(name, cmt, kind, n_doses):
    ii = 12.0
    p = FAST[name] if n_doses == 50 else PARAMS[name]
    # Truncation: every unit response is positive and bounded by c (1 + t) exp(-lam_min t), so the doses left out
    # of the explicit train (all >= n ii old) add < c n ii exp(-lam_min n ii) / (1 - exp(-lam_min ii)); with
    # lam_min n ii >= 50 that is < 1e-17 of the values compared. Rounding of the explicit sum of n positive terms
    # is <= n eps ~ 4e-14 relative. Hence rtol 1e-11.
    assert slowest_rate(name, p) * n_doses * ii >= 50.0
    extra = {"rate": 50.0} if kind == "infusion" else {}
    ss_dose = make_doses(rec(0.0, 100.0, cmt=cmt, ii=ii, ss=1, reset=True, **extra))
    train = make_doses(*[rec(-k * ii, 100.0, cmt=cmt, **extra) for k in range(n_doses)][::-1], n=256)
    np.testing.assert_allclose(run(name, TRAIN_T, ss_dose, p), run(name, TRAIN_T, train, p), rtol=1e-11)


@pytest.mark.parametrize("kind", ["bolus", "infusion"])
@pytest.mark.parametrize("name", ["one_cmt_oral", "two_cmt_oral"])
def test_steady_state_with_lag_time(name, kind):
    # The lagged last dose arrives 1.5 h after the record; the train's earlier doses are already there.
    ii, lag = 12.0, 1.5
    extra = {"rate": 50.0} if kind == "infusion" else {}
    t = np.array([0.0, 0.7, 1.49, 1.5, 2.0, 4.0, 13.0])
    ss_dose = make_doses(rec(0.0, 100.0, ii=ii, ss=1, reset=True, **extra))
    train = make_doses(*[rec(-k * ii, 100.0, **extra) for k in range(200)][::-1], n=256)
    np.testing.assert_allclose(run(name, t, ss_dose, tlag=lag, f=0.7), run(name, t, train, tlag=lag, f=0.7),
                               rtol=1e-11)  # as in test_steady_state_matches_explicit_train


@pytest.mark.parametrize(("name", "cmt"), CASES)
def test_ss1_resets_and_ss2_adds(name, cmt):
    t = np.array([1.0, 20.0, 24.0, 25.0, 40.0])
    earlier = rec(0.0, 300.0, cmt=cmt)
    ss = {"cmt": cmt, "ii": 12.0, "rate": 25.0}
    alone = run(name, t, make_doses(rec(24.0, 100.0, ss=1, reset=True, **ss)))
    first = run(name, t, make_doses(earlier))
    after = t >= 24.0
    # ss = 1 empties the system: only the steady state from 24 h on, the earlier dose before.
    for reset_flag in (True, False):  # ss == 1 resets even if the adapter forgot the reset flag
        got = run(name, t, make_doses(earlier, rec(24.0, 100.0, ss=1, reset=reset_flag, **ss)))
        np.testing.assert_allclose(got, np.where(after, alone, first), rtol=RTOL)
    # ss = 2 adds the steady-state amounts to what is there.
    got = run(name, t, make_doses(earlier, rec(24.0, 100.0, ss=2, **ss)))
    np.testing.assert_allclose(got, first + alone, rtol=RTOL)


@pytest.mark.parametrize("name", list(FN))
def test_constant_infusion_at_steady_state(name):
    # SS=1, AMT=0, RATE=R, II=0: C = R / CL from the record on, until the next reset (into the depot: F R / CL).
    cl, rate = PARAMS[name]["cl"], 8.0
    t = np.array([9.0, 10.0, 30.0, 49.9, 50.0, 70.0])
    cmts = (0, 1) if "oral" in name else (0,)
    for cmt in cmts:
        f = 0.6 if "oral" in name and cmt == 0 else 1.0
        d = make_doses(rec(10.0, 0.0, rate=rate, ss=1, reset=True, cmt=cmt), rec(50.0, 0.0, reset=True))
        kw = {"f": 0.6} if "oral" in name else {}
        expected = np.where((t >= 10.0) & (t < 50.0), f * rate / cl, 0.0)
        np.testing.assert_allclose(run(name, t, d, **kw), expected, rtol=RTOL)


def test_unsupported_steady_state_is_nan_from_its_record_on():
    t = np.array([5.0, 10.0, 20.0])
    bolus_no_ii = run("one_cmt_iv", t, make_doses(rec(0.0, 100.0), rec(10.0, 100.0, ss=1, reset=True)))
    too_long = run("one_cmt_iv", t, make_doses(rec(0.0, 100.0), rec(10.0, 100.0, rate=5.0, ii=12.0, ss=2)))
    for c in (bolus_no_ii, too_long):
        assert np.isfinite(c[0]) and np.isnan(c[1:]).all()


# ---- near-equal rates: 50-digit references ----------------------------------------------------------------

def dec_exp(x: Decimal) -> Decimal:
    return x.exp()


def bateman_dec(amt: float, ka: float, ke: float, v: float, tau: float) -> Decimal:
    a, k, t = Decimal(ka), Decimal(ke), Decimal(tau)
    shape = t * dec_exp(-k * t) if a == k else (dec_exp(-k * t) - dec_exp(-a * t)) / (a - k)
    return Decimal(amt) * a / Decimal(v) * shape


def ss_oral_dec(amt: float, ka: float, ke: float, v: float, tau: float, ii: float) -> Decimal:
    """sum_k Bateman(tau + k ii) = amt ka / v [g(ke) - g(ka)] / (ka - ke), g(k) = e^{-k tau} / (1 - e^{-k ii})."""
    a, k, t, i = Decimal(ka), Decimal(ke), Decimal(tau), Decimal(ii)

    def g(r: Decimal) -> Decimal:
        return dec_exp(-r * t) / (1 - dec_exp(-r * i))

    if a == k:  # -g'(k)
        q = dec_exp(-k * i)
        shape = t * dec_exp(-k * t) / (1 - q) + dec_exp(-k * t) * i * q / (1 - q) ** 2
    else:
        shape = (g(k) - g(a)) / (a - k)
    return Decimal(amt) * a / Decimal(v) * shape


DELTAS = [0.0, 1e-12, 1e-9, -1e-9, 1e-6, -0.5]
TAUS = [0.01, 0.5, 5.0, 50.0, 300.0]


@pytest.mark.parametrize("delta", DELTAS)
def test_one_cmt_oral_near_equal_rates_single(delta):
    cl, v = 2.0, 20.0
    ke = cl / v
    ka = ke * (1.0 + delta)
    got = run("one_cmt_oral", TAUS, make_doses(rec(0.0, 100.0)), {"ka": ka, "cl": cl, "v": v})
    with localcontext() as ctx:
        ctx.prec = 50
        ref = [float(bateman_dec(100.0, ka, ke, v, tau)) for tau in TAUS]
    np.testing.assert_allclose(got, ref, rtol=RTOL)


@pytest.mark.parametrize("delta", [0.0, 1e-12])
def test_one_cmt_oral_equals_limit_formula(delta):
    # At ka == ke the Bateman function is amt f ka / v * tau exp(-ke tau); at ka = ke (1 + 1e-12) it differs from
    # that by a relative ~ 1e-12 ke tau / 2 <= 2e-11 for the times below, hence rtol 1e-10.
    cl, v, f = 2.0, 20.0, 0.7
    ke = cl / v
    ka = ke * (1.0 + delta)
    tau = np.array(TAUS)
    got = run("one_cmt_oral", tau, make_doses(rec(0.0, 100.0)), {"ka": ka, "cl": cl, "v": v}, f=f)
    np.testing.assert_allclose(got, 100.0 * f * ka / v * tau * np.exp(-ke * tau), rtol=1e-10)


@pytest.mark.parametrize("delta", DELTAS)
def test_one_cmt_oral_near_equal_rates_steady_state(delta):
    cl, v, ii = 2.0, 20.0, 12.0
    ke = cl / v
    ka = ke * (1.0 + delta)
    tau = [0.0, *TAUS[:3], 11.5]
    got = run("one_cmt_oral", tau, make_doses(rec(0.0, 100.0, ii=ii, ss=1)), {"ka": ka, "cl": cl, "v": v})
    with localcontext() as ctx:
        ctx.prec = 50
        ref = [float(ss_oral_dec(100.0, ka, ke, v, t, ii)) for t in tau]
    np.testing.assert_allclose(got, ref, rtol=RTOL)


@pytest.mark.parametrize("mode", ["alpha", "beta"])
@pytest.mark.parametrize("delta", [0.0, 1e-9])
def test_two_cmt_oral_ka_near_a_macro_rate(mode, delta):
    p = dict(PARAMS["two_cmt_oral"])
    a, b, _ = two_cmt_macro(p["cl"], p["v1"], p["q"], p["v2"])
    p["ka"] = (a if mode == "alpha" else b) * (1.0 + delta)
    tau = [0.3, 2.0, 10.0, 60.0]
    got = run("two_cmt_oral", tau, make_doses(rec(0.0, 100.0)), p)
    with localcontext() as ctx:
        ctx.prec = 60
        cl, v1, q, v2, ka = (Decimal(p[k]) for k in ("cl", "v1", "q", "v2", "ka"))
        k10, k12, k21 = cl / v1, q / v1, q / v2
        s = k10 + k12 + k21
        root = (s * s - 4 * k10 * k21).sqrt()
        al, be = (s + root) / 2, (s - root) / 2
        ref = []
        for t in map(Decimal, tau):
            total = Decimal(0)
            for lam, coef in ((al, (al - k21) / root), (be, (k21 - be) / root)):
                shape = t * dec_exp(-lam * t) if lam == ka else (dec_exp(-lam * t) - dec_exp(-ka * t)) / (ka - lam)
                total += coef * shape
            ref.append(float(100 * ka / v1 * total))
    np.testing.assert_allclose(got, ref, rtol=RTOL)


# ---- log concentration -------------------------------------------------------------------------------------

LOG_CASES = [(1.0, 2.0, 20.0), (0.02, 2.0, 20.0), (0.1, 2.0, 20.0)]  # ka > ke, flip-flop, ka == ke


@pytest.mark.parametrize(("ka", "cl", "v"), LOG_CASES, ids=["ka>ke", "flip-flop", "ka=ke"])
def test_log_form_finite_where_concentration_underflows(ka, cl, v):
    tau = 1e4  # exp(-1000) or exp(-200) ... the concentration itself underflows for ka > ke and ka == ke
    got = float(jax.jit(log_one_cmt_oral_single)(tau, 100.0, ka, cl, v, f=0.9))
    with localcontext() as ctx:
        ctx.prec = 50
        ref = float((Decimal("0.9") * bateman_dec(100.0, ka, cl / v, v, tau)).ln())
    assert math.isfinite(got)
    # |log| ~ 1e3: its rounding (lo * tau and a few logs) is ~1e-13 absolute.
    assert abs(got - ref) <= 1e-12 * abs(ref)
    grads = jax.grad(log_one_cmt_oral_single, argnums=(0, 2, 3, 4))(tau, 100.0, ka, cl, v)
    assert all(math.isfinite(float(g)) for g in grads)


@pytest.mark.parametrize(("ka", "cl", "v"), LOG_CASES, ids=["ka>ke", "flip-flop", "ka=ke"])
def test_log_form_matches_concentration(ka, cl, v):
    tau = np.array([0.05, 0.5, 3.0, 30.0, 200.0])
    conc = run("one_cmt_oral", tau, make_doses(rec(0.0, 100.0)), {"ka": ka, "cl": cl, "v": v})
    log_c = np.asarray(jax.jit(log_one_cmt_oral_single)(jnp.asarray(tau), 100.0, ka, cl, v))
    np.testing.assert_allclose(np.exp(log_c), conc, rtol=RTOL)
    assert np.asarray(log_one_cmt_oral_single(jnp.asarray([0.0, -1.0]), 100.0, ka, cl, v)).tolist() == [-np.inf] * 2


# ---- resets, padding, compartments, F and lag ----------------------------------------------------------

@pytest.mark.parametrize("name", list(FN))
def test_reset_record_removes_earlier_doses(name):
    cmt = 1 if "oral" in name else 0  # central
    t = np.array([5.0, 9.99, 10.0, 11.0, 12.0, 20.0])
    first, last = rec(0.0, 100.0, cmt=cmt), rec(12.0, 50.0, cmt=cmt)
    evid3 = rec(10.0, 0.0, cmt=cmt, reset=True)
    got = run(name, t, make_doses(first, evid3, last))
    expected = np.where(t < 10.0, run(name, t, make_doses(first)), run(name, t, make_doses(last)))
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    # EVID 4 (reset and dose): the record's own dose counts.
    got = run(name, t, make_doses(first, rec(10.0, 50.0, cmt=cmt, reset=True)))
    expected = np.where(t < 10.0, run(name, t, make_doses(first)), run(name, t, make_doses(rec(10.0, 50.0, cmt=cmt))))
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_reset_at_same_time_follows_record_order():
    t = np.array([9.0, 10.0, 15.0])
    before, after = rec(10.0, 100.0), rec(10.0, 40.0)
    reset = rec(10.0, 0.0, reset=True)
    got = run("one_cmt_iv", t, make_doses(rec(0.0, 70.0), before, reset, after))
    expected = np.where(t < 10.0, run("one_cmt_iv", t, make_doses(rec(0.0, 70.0))),
                        run("one_cmt_iv", t, make_doses(after)))
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_reset_removes_a_lagged_dose_recorded_before_it():
    t = np.array([10.5, 11.5, 20.0])
    got = run("one_cmt_oral", t, make_doses(rec(9.0, 100.0), rec(10.0, 0.0, reset=True)), tlag=2.0)
    np.testing.assert_array_equal(got, 0.0)


@pytest.mark.parametrize("name", list(FN))
def test_padding_contributes_nothing(name):
    t = np.linspace(0.0, 48.0, 9)
    records = [rec(0.0, 100.0), rec(12.0, 100.0, rate=20.0), rec(24.0, 80.0, ii=12.0, ss=2)]
    short = run(name, t, make_doses(*records, n=8))
    np.testing.assert_allclose(run(name, t, make_doses(*records, n=16)), short, rtol=1e-15)
    # Masked entries holding garbage (a reset, a steady-state dose, a huge amount) are ignored too.
    d = make_doses(*records, rec(1.0, 1e6, ss=1, ii=0.0, reset=True), rec(2.0, 1e6, rate=1.0, ii=1.0, ss=1), n=8)
    d = d._replace(mask=jnp.arange(8) < 3)
    np.testing.assert_allclose(run(name, t, d), short, rtol=1e-15)


@pytest.mark.parametrize("cmt", [-1, 3, 7])
def test_dose_into_unknown_compartment_contributes_nothing(cmt):
    t = np.array([1.0, 5.0])
    base = run("two_cmt_oral", t, make_doses(rec(0.0, 100.0)))
    np.testing.assert_array_equal(run("two_cmt_oral", t, make_doses(rec(0.0, 100.0), rec(0.5, 1e3, cmt=cmt))), base)


@pytest.mark.parametrize("name", ["one_cmt_oral", "two_cmt_oral"])
def test_bioavailability_and_lag_apply_to_the_depot_only(name):
    f, lag = 0.6, 1.5
    t = np.array([0.5, 1.5, 2.0, 5.0, 7.0, 24.0])
    depot, central = rec(0.0, 100.0, cmt=0), rec(5.0, 20.0, cmt=1)
    got = run(name, t, make_doses(depot, central), f=f, tlag=lag)
    shifted = np.where(t >= lag, f * run(name, np.maximum(t - lag, 0.0), make_doses(depot)), 0.0)
    np.testing.assert_allclose(got, shifted + run(name, t, make_doses(central)), rtol=RTOL)


def test_time_shapes_are_preserved():
    d = make_doses(rec(0.0, 100.0))
    grid = jnp.linspace(0.0, 10.0, 6).reshape(2, 3)
    assert jax.eval_shape(two_cmt_oral, 2.0, d, 1.5, 2.0, 20.0, 3.0, 40.0).shape == ()
    out = JIT["one_cmt_iv"](grid, d, 2.0, 20.0)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(np.ravel(out), run("one_cmt_iv", np.ravel(grid), d), rtol=1e-14)


# ---- transformations: jit, vmap, grad ------------------------------------------------------------------

def mixed_history(oral: bool) -> Doses:
    central = 1 if oral else 0
    records = [rec(0.0, 100.0), rec(24.0, 100.0, rate=50.0), rec(48.0, 100.0, ii=12.0, ss=2),
               rec(72.0, 60.0, rate=30.0, ii=12.0, ss=1, reset=True), rec(80.0, 30.0, cmt=central)]
    if oral:
        records.append(rec(90.0, 20.0, cmt=central, rate=40.0))
    return make_doses(*records)


MIXED_T = np.array([0.0, 1.0, 25.0, 26.3, 49.0, 73.0, 74.5, 81.0, 90.2, 97.0])


@pytest.mark.parametrize("name", list(FN))
def test_jit_equals_eager(name):
    d, t = mixed_history("oral" in name), jnp.asarray(MIXED_T)
    kw = {"f": 0.8, "tlag": 0.4} if "oral" in name else {}
    eager = np.asarray(FN[name](t, d, **PARAMS[name], **kw))
    # XLA may fuse and reorder floating-point operations: agreement to a few ulp.
    np.testing.assert_allclose(run(name, MIXED_T, d, **kw), eager, rtol=1e-13)


@pytest.mark.parametrize("name", list(FN))
def test_vmap_over_patients(name):
    oral = "oral" in name
    central = 1 if oral else 0
    histories = [mixed_history(oral), make_doses(rec(3.0, 50.0), rec(20.0, 80.0, rate=10.0)),
                 make_doses(rec(0.0, 0.0, rate=5.0, ss=1, reset=True, cmt=central), rec(40.0, 10.0))]
    scales = np.array([1.0, 1.3, 0.7])
    params = {k: jnp.asarray(v * scales) for k, v in PARAMS[name].items()}
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *histories)
    t = jnp.broadcast_to(jnp.asarray(MIXED_T), (3, MIXED_T.size))
    got = np.asarray(jax.jit(jax.vmap(FN[name]))(t, stacked, **params))
    for i, d in enumerate(histories):
        one = run(name, MIXED_T, d, {k: float(v[i]) for k, v in params.items()})
        np.testing.assert_allclose(got[i], one, rtol=1e-13)  # batched kernels may reorder operations


GRAD_CASES = [
    ("one_cmt_iv", PARAMS["one_cmt_iv"]),
    ("one_cmt_oral", PARAMS["one_cmt_oral"]),
    ("one_cmt_oral", {"ka": 0.1, "cl": 2.0, "v": 20.0}),  # ka == ke exactly (0.1 == 2.0 / 20.0 in float64)
    ("one_cmt_oral", {"ka": 0.03, "cl": 2.0, "v": 20.0}),  # flip-flop
    ("two_cmt_iv", PARAMS["two_cmt_iv"]),
    ("two_cmt_oral", PARAMS["two_cmt_oral"]),
    ("two_cmt_oral", dict(PARAMS["two_cmt_oral"], ka=two_cmt_macro(2.0, 20.0, 3.0, 40.0)[1])),  # ka == beta
]


def _conc_of(name: str):
    keys = [*PARAMS[name], *(("f", "tlag") if "oral" in name else ())]

    def conc(theta: tuple, t: jax.Array, d: Doses) -> jax.Array:
        return FN[name](t, d, **dict(zip(keys, theta, strict=True)))

    return conc


CONC = {name: jax.jit(_conc_of(name)) for name in FN}
JACOBIAN = {name: jax.jit(jax.jacrev(_conc_of(name))) for name in FN}


@pytest.mark.parametrize(("name", "p"), GRAD_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(GRAD_CASES)])
def test_gradients_match_finite_differences(name, p):
    oral = "oral" in name
    d, t = mixed_history(oral), jnp.asarray(MIXED_T)
    theta = tuple(jnp.asarray(x, dtype=jnp.float64) for x in [*p.values(), *((0.8, 0.4) if oral else ())])
    assert all(np.isfinite(np.asarray(g)).all() for g in JACOBIAN[name](theta, t, d))
    # Central differences with step 1e-6: truncation ~ (1e-6 t)^2 f''' / 6 < 1e-8 relative even for ka ~ 0.03 /h at
    # t ~ 100 h (the default step 1e-4 is too coarse there), rounding ~ 1e-16 / 1e-6 = 1e-10; tolerance 1e-5.
    check_grads(lambda th: CONC[name](th, t, d), (theta,), order=1, modes=["rev"], eps=1e-6)


def test_hessian_at_equal_rates():
    # Second derivatives (Laplace approximations) are exact at ka == ke too, through the series branch of phi:
    # the Hessian against central differences (step 1e-5 relative) of the gradient, agreement to ~1e-10 expected.
    d, t = make_doses(rec(0.0, 100.0), rec(24.0, 100.0, ii=12.0, ss=2)), jnp.asarray([1.0, 6.0, 30.0])

    def total(theta):
        return jnp.sum(one_cmt_oral(t, d, theta[0], theta[1], theta[2]))

    theta = np.array([0.1, 2.0, 20.0])
    hessian = np.asarray(jax.jit(jax.hessian(total))(jnp.asarray(theta)))
    grad = jax.jit(jax.grad(total))
    steps = 1e-5 * theta
    fd = np.stack([(np.asarray(grad(jnp.asarray(theta + h))) - np.asarray(grad(jnp.asarray(theta - h)))) / (2 * h[i])
                   for i, h in enumerate(np.diag(steps))], axis=1)
    np.testing.assert_allclose(hessian, fd, rtol=1e-7, atol=1e-7 * np.abs(fd).max())
    np.testing.assert_allclose(hessian, hessian.T, rtol=1e-12)


def test_gradients_finite_at_edges():
    # At a dose time (tau = 0), before any dose, through padding, where the concentration underflows (t = 1e4 h),
    # and at ka == ke, ka > ke and flip-flop.
    d = make_doses(rec(5.0, 100.0), rec(6.0, 100.0, rate=10.0), rec(7.0, 50.0, cmt=1), n=8)
    t = jnp.asarray([0.0, 5.0, 6.0, 7.0, 8.0, 1e3, 1e4, 2e4, 0.0, 0.0])  # length of MIXED_T: reuses compiled kernels
    for ka in (0.1, 1.0, 0.02):
        for name, p in (("one_cmt_oral", {"ka": ka, "cl": 2.0, "v": 20.0}),
                        ("two_cmt_oral", {"ka": ka, "cl": 2.0, "v1": 20.0, "q": 3.0, "v2": 40.0})):
            theta = tuple(jnp.asarray(x, dtype=jnp.float64) for x in (*p.values(), 0.8, 0.0))
            assert all(np.isfinite(np.asarray(g)).all() for g in JACOBIAN[name](theta, t, d)), (name, ka)
    # A 48 h infusion and a steady-state constant infusion (amt ignored) with a fast mode (alpha ~ 10.4 /h):
    # unused steady-state terms like exp(alpha * 47) must not overflow into NaN gradients.
    d = make_doses(rec(0.0, 480.0, rate=10.0), rec(50.0, 1e3, rate=10.0, ss=1, reset=True), n=8)
    theta = tuple(jnp.asarray(x, dtype=jnp.float64) for x in (50.0, 5.0, 2.0, 40.0))
    assert all(np.isfinite(np.asarray(g)).all() for g in JACOBIAN["two_cmt_iv"](theta, t * 0.01, d))
