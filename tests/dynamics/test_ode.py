"""ODE dosing engine against truth: closed forms, superposition, steady-state identities, finite differences.

The closed forms are written here, independently of the library. Compilation dominates the run time, so almost
every case goes through one module-scoped compiled function: the three built-in models sit behind ``lax.switch``
(``theta[0]`` picks the model) and every input is padded to the same sizes. Its trace counter proves that all those
different histories reuse one compilation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from scipy.integrate import solve_ivp

from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.ode import SolveStatus, solve_amounts, status_messages
from bayestwin.dynamics.ode_models import one_cmt_oral_mm_rhs, one_cmt_oral_rhs, two_cmt_iv_rhs
from bayestwin.exceptions import SpecError

ND, NT = 64, 32  # padded sizes of the shared compiled function
ORAL, TWO_CMT, MM = 0, 1, 2
MODELS = (one_cmt_oral_rhs, two_cmt_iv_rhs, one_cmt_oral_mm_rhs)
# The acceptance bar. With rtol=1e-8, atol=1e-10 the solver actually lands near 1e-8; amounts are O(100),
# so an absolute floor of 1e-8 only matters for values that are themselves ~0 (a depot after many half-lives).
RTOL, ATOL = 1e-6, 1e-8

KA, CL, V = 1.2, 4.0, 30.0  # 1-cmt oral: 1/h, L/h, L
CL2, V1, Q, V2 = 3.0, 20.0, 8.0, 60.0  # 2-cmt IV: L/h, L, L/h, L


def any_rhs(t, a, theta, rate):
    """The three built-in models behind one compiled function: theta = (model index, its parameters, padding)."""
    return lax.switch(theta[0].astype(jnp.int32), MODELS, t, a, theta[1:], rate)


def params(model: int, *values: float) -> np.ndarray:
    return np.array([model, *values, *[0.0] * (4 - len(values))], dtype=float)


def dose(time: float, amt: float, *, cmt: int = 0, rate: float = 0.0, ii: float = 0.0, ss: int = 0,
         reset: bool = False, mask: bool = True) -> dict:
    return {"time": time, "amt": amt, "cmt": cmt, "rate": rate, "ii": ii, "ss": ss, "reset": reset, "mask": mask}


def make_doses(records: list[dict], n: int = ND) -> Doses:
    pad = n - len(records)
    fill = {"time": np.inf, "amt": 0.0, "cmt": 0, "rate": 0.0, "ii": 0.0, "ss": 0, "reset": False, "mask": False}
    dtypes = {"time": float, "amt": float, "cmt": np.int32, "rate": float, "ii": float, "ss": np.int32,
              "reset": bool, "mask": bool}
    cols = {k: jnp.asarray(np.array([r[k] for r in records] + [fill[k]] * pad, dtype=dt)) for k, dt in dtypes.items()}
    return Doses(**cols)


def pad(values: np.ndarray | list, n: int, fill: float | bool) -> jnp.ndarray:
    values = np.asarray(values)
    return jnp.asarray(np.concatenate([values, np.full(n - values.size, fill, dtype=values.dtype)]))


# ---------------------------------------------------------------- closed forms (amounts, numpy or jax arrays) --


def oral_closed_form(t, boluses, ka, cl, v):
    """Depot and central amounts of a 1-cmt oral model after depot boluses [(time, amt), ...]; dose at t counts."""
    k = cl / v
    depot = central = 0.0
    for td, amt in boluses:
        tau = jnp.maximum(t - td, 0.0)
        on = t >= td
        depot = depot + jnp.where(on, amt * jnp.exp(-ka * tau), 0.0)
        central = central + jnp.where(on, amt * ka / (ka - k) * (jnp.exp(-k * tau) - jnp.exp(-ka * tau)), 0.0)
    return jnp.stack([depot * jnp.ones_like(t), central * jnp.ones_like(t)], axis=-1)


def oral_steady_state(s, amt, tau, ka, cl, v):
    """Depot and central amounts `s` after the last dose of an infinite train of depot boluses every `tau`."""
    k = cl / v
    depot = amt * jnp.exp(-ka * s) / (1 - jnp.exp(-ka * tau))
    central = amt * ka / (ka - k) * (jnp.exp(-k * s) / (1 - jnp.exp(-k * tau)) - depot / amt)
    return jnp.stack([depot, central], axis=-1)


def infusion_closed_form(t, start, amt, rate, k):
    """Amount in a 1-cmt model (elimination rate constant k) from a zero-order infusion into it."""
    dur, tau = amt / rate, t - start
    during = rate / k * (1 - jnp.exp(-k * jnp.clip(tau, 0.0, dur)))
    return jnp.where(tau <= 0, 0.0, during * jnp.exp(-k * jnp.maximum(tau - dur, 0.0)))


def two_cmt_closed_form(t, boluses, cl, v1, q, v2):
    """Central and peripheral amounts of a 2-cmt model after central boluses [(time, amt), ...]."""
    k10, k12, k21 = cl / v1, q / v1, q / v2
    s = k10 + k12 + k21
    root = np.sqrt(s * s - 4 * k10 * k21)
    alpha, beta = (s + root) / 2, (s - root) / 2
    central = periph = 0.0
    for td, amt in boluses:
        tau = np.maximum(t - td, 0.0)
        on = t >= td
        ea, eb = np.exp(-alpha * tau), np.exp(-beta * tau)
        central = central + np.where(on, amt / (alpha - beta) * ((alpha - k21) * ea + (k21 - beta) * eb), 0.0)
        periph = periph + np.where(on, amt * k12 / (alpha - beta) * (eb - ea), 0.0)
    return np.stack([central * np.ones_like(t), periph * np.ones_like(t)], axis=-1)


# ------------------------------------------------------------------------------------------------- fixtures --


@pytest.fixture(scope="module", autouse=True)
def _float64_strict_promotion():
    with jax.enable_x64(True), jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture(scope="module")
def solve():
    """solve(theta, records, times, predose=None, times_mask=None) -> (amounts, status) via ONE compiled function."""
    traces = []

    @jax.jit
    def run(theta, doses, times, times_mask, predose):
        traces.append(1)  # Python side effect: runs once per trace
        return solve_amounts(any_rhs, theta, doses, times, n_cmt=2, times_mask=times_mask, predose=predose)

    def call(theta, records, times, *, predose=None, times_mask=None):
        n = len(times)
        predose = np.zeros(n, bool) if predose is None else np.asarray(predose, bool)
        times_mask = np.ones(n, bool) if times_mask is None else np.asarray(times_mask, bool)
        amounts, status = run(jnp.asarray(theta, float), make_doses(records), pad(np.asarray(times, float), NT, np.inf),
                              pad(times_mask, NT, False), pad(predose, NT, False))
        return np.asarray(amounts)[:n], int(status)

    call.traces = traces
    return call


# ---------------------------------------------------------------------------------------- against closed forms --


def test_single_oral_dose_matches_closed_form(solve) -> None:
    times = np.array([0.0, 0.5, 1.0, 1.25, 2.0, 3.0, 5.0, 8.0, 12.0, 24.0, 48.0])
    amounts, status = solve(params(ORAL, KA, CL, V), [dose(1.0, 100.0)], times)
    assert status == SolveStatus.OK
    np.testing.assert_allclose(amounts, oral_closed_form(times, [(1.0, 100.0)], KA, CL, V), rtol=RTOL, atol=ATOL)
    assert amounts[:2].tolist() == [[0.0, 0.0], [0.0, 0.0]]  # nothing before the dose
    assert amounts[2].tolist() == [100.0, 0.0]  # a dose at t is seen by a reading at t


def test_dose_between_observation_times_is_not_lost(solve) -> None:
    times = np.array([0.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0])  # nothing recorded at 5 h
    boluses = [(0.0, 100.0), (5.0, 80.0)]
    amounts, status = solve(params(ORAL, KA, CL, V), [dose(t, a) for t, a in boluses], times)
    assert status == SolveStatus.OK
    np.testing.assert_allclose(amounts, oral_closed_form(times, boluses, KA, CL, V), rtol=RTOL, atol=ATOL)
    # from 6 h on, the second dose is all there: exactly its own closed form on top of the first dose's
    extra = amounts[3:] - np.asarray(oral_closed_form(times[3:], boluses[:1], KA, CL, V))
    np.testing.assert_allclose(extra, oral_closed_form(times[3:], boluses[1:], KA, CL, V), rtol=1e-6, atol=ATOL)
    assert extra[0, 1] > 40.0


def test_overlapping_infusions_switch_on_and_off_at_their_exact_times(solve) -> None:
    # into the central compartment (cmt 1) of the oral model, a 1-cmt IV model; 1-3.5 h and 2-5 h
    infusions = [(1.0, 100.0, 40.0), (2.0, 30.0, 10.0)]
    times = np.array([0.5, 1.0, 2.0, 2.75, 3.5, 4.0, 5.0, 6.0, 12.0])  # before, at the start, during, at ends, after
    records = [dose(t, a, rate=r, cmt=1) for t, a, r in infusions]
    amounts, status = solve(params(ORAL, KA, CL, V), records, times)
    assert status == SolveStatus.OK
    expected = sum(infusion_closed_form(times, t, a, r, CL / V) for t, a, r in infusions)
    np.testing.assert_allclose(amounts[:, 1], expected, rtol=RTOL, atol=ATOL)
    assert np.all(amounts[:, 0] == 0.0)  # the depot is untouched


def test_two_compartment_iv_boluses_match_biexponential(solve) -> None:
    boluses = [(0.0, 500.0), (12.0, 250.0)]
    times = np.array([0.0, 0.25, 1.0, 4.0, 12.0, 13.0, 24.0, 72.0])
    amounts, status = solve(params(TWO_CMT, CL2, V1, Q, V2), [dose(t, a) for t, a in boluses], times)
    assert status == SolveStatus.OK
    np.testing.assert_allclose(amounts, two_cmt_closed_form(times, boluses, CL2, V1, Q, V2), rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------------------------- steady state --

TAU = 12.0  # oral: 50 doses at 0, 12, ..., 588 h; after 600 h a dose keeps e^{-k 600} = e^{-80} of itself


@pytest.mark.parametrize("case", ["oral ss=1", "oral ss=2 on top of a bolus", "infusion ss=1", "michaelis-menten ss=1"])
def test_steady_state_matches_fifty_repeated_doses(solve, case: str) -> None:
    theta = params(MM, 0.75, 1.0, 3.0, 2.0) if case.startswith("michaelis") else params(ORAL, KA, CL, V)
    kw = {"rate": 50.0, "cmt": 1} if case.startswith("infusion") else {}
    amt, tau = (10.0, 7.0) if case.startswith("michaelis") else (100.0, TAU)  # MM: 10 mg/week < Vm = 3 mg/day
    train = [k * tau for k in range(50)]
    explicit = [dose(t, amt, **kw) for t in train]
    if case.startswith("oral ss=2"):
        other = dose(train[-1] - 8.0, 200.0, cmt=1)
        explicit, steady = [*explicit, other], [other, dose(train[-1], amt, ii=tau, ss=2)]
    else:  # an earlier unrelated dose, which the ss=1 record must wipe out
        steady = [dose(0.0, 500.0), dose(train[-1], amt, ii=tau, ss=1, **kw)]
    times = train[-1] + np.array([0.0, 0.5, 1.0, 2.0, 3.0, 6.0, 0.95 * tau])
    a_explicit, s1 = solve(theta, explicit, times)
    a_steady, s2 = solve(theta, steady, times)
    assert (s1, s2) == (SolveStatus.OK, SolveStatus.OK)
    np.testing.assert_allclose(a_steady, a_explicit, rtol=RTOL, atol=ATOL)
    if case == "oral ss=1":
        np.testing.assert_allclose(a_steady, oral_steady_state(times - train[-1], amt, tau, KA, CL, V),
                                   rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------------ resets and padding --


def test_resets_empty_the_system_and_stop_infusions(solve) -> None:
    records = [
        dose(0.0, 100.0),
        dose(10.0, 50.0, reset=True),  # EVID 4: reset, then dose
        dose(20.0, 0.0, reset=True),  # EVID 3
        dose(24.0, 100.0, rate=20.0, cmt=1),  # infusion 24-29 h ...
        dose(26.0, 0.0, reset=True),  # ... stopped by a reset at 26 h
        dose(30.0, 40.0), dose(30.0, 0.0, reset=True),  # same time: the later record wipes the earlier one
        dose(32.0, 60.0),
    ]
    times = np.array([5.0, 10.0, 15.0, 20.0, 22.0, 25.0, 26.0, 28.0, 30.0, 31.0, 32.0, 36.0])
    amounts, status = solve(params(ORAL, KA, CL, V), records, times)
    assert status == SolveStatus.OK
    expected = np.zeros((times.size, 2))
    expected[0] = oral_closed_form(5.0, [(0.0, 100.0)], KA, CL, V)
    expected[1:3] = oral_closed_form(times[1:3], [(10.0, 50.0)], KA, CL, V)
    expected[5, 1] = infusion_closed_form(25.0, 24.0, 100.0, 20.0, CL / V)
    expected[10:] = oral_closed_form(times[10:], [(32.0, 60.0)], KA, CL, V)
    np.testing.assert_allclose(amounts, expected, rtol=RTOL, atol=ATOL)


def test_padded_and_masked_entries_are_no_ops(solve) -> None:
    theta = params(ORAL, KA, CL, V)
    real = [dose(0.0, 100.0), dose(6.0, 50.0)]
    junk = [dose(3.0, 1e3, rate=5.0, cmt=1, ii=12.0, ss=1, reset=True, mask=False),
            dose(0.0, 7.0, reset=True, mask=False)]
    times = np.array([24.0, np.inf, 7.0, 5.0, 1.0, 6.0, 6.0])  # unsorted, one +inf, one masked, 6 h read twice
    times_mask = [True, True, True, False, True, True, True]
    predose = [False, False, False, False, False, True, False]  # the first 6 h reading is a trough
    amounts, status = solve(theta, [real[0], junk[0], real[1], junk[1]], times, times_mask=times_mask,
                            predose=predose)
    assert status == SolveStatus.OK
    expected = np.array(oral_closed_form(np.where(np.isfinite(times), times, 0.0), [(0.0, 100.0), (6.0, 50.0)],
                                           KA, CL, V))
    expected[[1, 3]] = 0.0  # padded rows are zeros
    expected[5] = oral_closed_form(6.0, [(0.0, 100.0)], KA, CL, V)  # read before the 6 h dose
    np.testing.assert_allclose(amounts, expected, rtol=RTOL, atol=ATOL)
    clean, _ = solve(theta, real, times, times_mask=times_mask, predose=predose)
    np.testing.assert_array_equal(amounts, clean)


def test_one_compilation_serves_different_histories(solve) -> None:
    theta = params(ORAL, KA, CL, V)
    first, _ = solve(theta, [dose(0.0, 100.0)], [1.0, 2.0])
    second, _ = solve(theta, [dose(0.0, 50.0), dose(1.5, 50.0, rate=10.0, cmt=1)], [1.0, 2.0, 3.0])
    assert first[0, 1] != second[0, 1]
    assert len(solve.traces) == 1  # every call in this module, these two included, reused one trace


# ------------------------------------------------------------------------------------------ Michaelis-Menten --

# posteriordb one_comp_mm_elim_abs: data.json (t in days, D mg, V L, C_hat mg/L) and the reference posterior medians
MM_D, MM_V = 30.0, 2.0
MM_TIMES = np.arange(1, 21) * 0.5
MM_C_HAT = np.array([5.70812264865215, 7.10126075072086, 8.38520678426651, 9.79008249883381, 13.4390409239245,
                     11.4478987597702, 11.2124282696837, 11.4269217682577, 12.2432859438401, 13.8201804108938,
                     13.8408670746042, 11.422291744251, 10.5031943081843, 11.9121452242965, 14.0849980781312,
                     10.5505145523917, 10.1905539351877, 12.2232272590821, 11.7290653047821, 12.2719396535996])
MM_KA, MM_KM, MM_VM = 0.75502586, 0.97953902, 0.89729772


def test_michaelis_menten_model_is_the_posteriordb_stan_model(solve) -> None:
    def stan_rhs(t, c):
        dose_in = np.exp(-MM_KA * t) * MM_D * MM_KA / MM_V if t > 0 else 0.0
        return [dose_in - (MM_VM / MM_V) * c[0] / (MM_KM + c[0])]

    ref = solve_ivp(stan_rhs, (0.0, MM_TIMES[-1]), [0.0], method="DOP853", t_eval=MM_TIMES, rtol=1e-12, atol=1e-12)
    amounts, status = solve(params(MM, MM_KA, MM_KM, MM_VM, MM_V), [dose(0.0, MM_D)], MM_TIMES)
    assert status == SolveStatus.OK
    conc = amounts[:, 1] / MM_V
    np.testing.assert_allclose(conc, ref.y[0], rtol=RTOL)
    # and the posterior medians fit the data: log residual SD near the posterior sigma (median 0.125)
    assert np.sqrt(np.mean(np.log(MM_C_HAT / conc) ** 2)) < 0.2


def test_builtin_right_hand_sides_are_the_stated_equations() -> None:
    a, rate = jnp.array([3.0, 7.0]), jnp.array([0.5, 0.25])
    k = CL / V
    np.testing.assert_allclose(one_cmt_oral_rhs(0.0, a, jnp.array([KA, CL, V]), rate),
                               np.array([[-KA, 0.0], [KA, -k]]) @ np.asarray(a) + rate, rtol=1e-14)
    k10, k12, k21 = CL2 / V1, Q / V1, Q / V2
    np.testing.assert_allclose(two_cmt_iv_rhs(0.0, a, jnp.array([CL2, V1, Q, V2]), rate),
                               np.array([[-k10 - k12, k21], [k12, -k21]]) @ np.asarray(a) + rate, rtol=1e-14)
    c = 7.0 / 2.0
    np.testing.assert_allclose(one_cmt_oral_mm_rhs(0.0, a, jnp.array([0.75, 1.0, 3.0, 2.0]), rate),
                               [-0.75 * 3.0 + 0.5, 0.75 * 3.0 - 3.0 * c / (1.0 + c) + 0.25], rtol=1e-14)


# --------------------------------------------------------------------------------- status codes and messages --


def test_nonfinite_inputs_give_a_status_not_an_exception(solve) -> None:
    amounts, status = solve(params(ORAL, np.nan, CL, V), [dose(0.0, 100.0)], [0.0, 1.0, 2.0])
    assert status == SolveStatus.NONFINITE
    assert np.isnan(amounts[1:]).all()
    _, status = solve(params(ORAL, KA, CL, V), [dose(0.0, np.inf)], [1.0])
    assert status == SolveStatus.NONFINITE


def test_a_dose_rate_above_the_elimination_capacity_has_no_steady_state(solve) -> None:
    # Michaelis-Menten with Vm = 3 mg/day: 30 mg a week (4.3 mg/day) accumulates without bound
    _, status = solve(params(MM, 0.75, 1.0, 3.0, 2.0), [dose(7.0, 30.0, ii=7.0, ss=1)], [8.0])
    assert status == SolveStatus.STEADY_STATE_NOT_CONVERGED
    _, status = solve(params(MM, 0.75, 1.0, np.nan, 2.0), [dose(7.0, 10.0, ii=7.0, ss=1)], [8.0])
    assert status == SolveStatus.NONFINITE  # a NaN parameter is named as such, not as a convergence failure


@pytest.mark.parametrize("record", [dose(0.0, 100.0, cmt=2), dose(0.0, 100.0, ss=1, ii=0.0),
                                    dose(0.0, 100.0, rate=5.0, ss=1, ii=12.0)],
                         ids=["cmt out of range", "ss without ii", "ss infusion longer than ii"])
def test_unusable_dose_records_are_reported(solve, record: dict) -> None:
    _, status = solve(params(ORAL, KA, CL, V), [record], [1.0])
    assert status == SolveStatus.UNSUPPORTED_DOSE


def test_status_messages_name_the_patient() -> None:
    assert status_messages(np.array([0, 0])) == []
    (msg,) = status_messages(np.array([0, 1, 0]), ["P1", "P2", "P3"])
    assert msg.startswith("patient P2: max_steps_reached:") and "kvaerno5" in msg
    assert all(s.message for s in SolveStatus)
    with pytest.raises(SpecError, match="2 status codes but 3 patient ids"):
        status_messages([0, 1], ["P1", "P2", "P3"])


def test_bad_configuration_raises_at_trace_time() -> None:
    d, t = make_doses([dose(0.0, 1.0)], 2), jnp.array([1.0])
    with pytest.raises(SpecError, match="unknown ODE solver 'rk4'"):
        solve_amounts(one_cmt_oral_rhs, jnp.array([KA, CL, V]), d, t, n_cmt=2, solver="rk4")
    with pytest.raises(SpecError, match=r"rhs returned shape \(\) for a state of shape \(2,\)"):
        solve_amounts(lambda t, a, th, r: jnp.sum(a), jnp.array([KA, CL, V]), d, t, n_cmt=2)


# ------------------------------------------------------------------------------ stiffness, vmap and gradients --

STIFF = (5.0, 10.0, 2e4, 10.0)  # 2-cmt with Q = 2e4 L/h: eigenvalues ~ -4000/h and ~ -0.25/h


def test_stiff_solver_agrees_with_explicit_solver_and_closed_form(solve) -> None:
    kvaerno = jax.jit(functools.partial(solve_amounts, two_cmt_iv_rhs, n_cmt=2, solver="kvaerno5", ss_iterations=0))
    records = [dose(0.0, 100.0), dose(3.0, 50.0, rate=25.0)]
    times = np.arange(1, 25) * 0.5  # 0.5 h apart: explicit Tsit5 needs ~600 stability-bound steps per interval
    a_stiff, s_stiff = kvaerno(jnp.asarray(STIFF), make_doses(records, 8), jnp.asarray(times))
    a_explicit, s_explicit = solve(params(TWO_CMT, *STIFF), records, times)
    assert (int(s_stiff), s_explicit) == (SolveStatus.OK, SolveStatus.OK)
    np.testing.assert_allclose(np.asarray(a_stiff), a_explicit, rtol=1e-6, atol=ATOL)
    before_infusion = times <= 3.0
    np.testing.assert_allclose(a_explicit[before_infusion],
                               two_cmt_closed_form(times[before_infusion], [(0.0, 100.0)], *STIFF), rtol=RTOL)


def test_vmap_over_patients_isolates_a_failing_one() -> None:
    cohort = jax.jit(jax.vmap(functools.partial(solve_amounts, any_rhs, n_cmt=2, max_steps=256, ss_iterations=0)))
    thetas = jnp.asarray(np.stack([params(ORAL, KA, CL, V), params(TWO_CMT, CL2, V1, Q, V2),
                                   params(TWO_CMT, 5.0, 10.0, 1e6, 10.0)]))  # patient 3: far too stiff for 256 steps
    histories = [[dose(0.0, 100.0), dose(12.0, 100.0)], [dose(0.0, 500.0)], [dose(0.0, 100.0)]]
    doses = jax.tree.map(lambda *x: jnp.stack(x), *[make_doses(h, 8) for h in histories])
    times = np.array([1.0, 6.0, 12.0, 13.0, 24.0])
    amounts, status = cohort(thetas, doses, jnp.asarray(np.tile(times, (3, 1))))
    assert np.asarray(status).tolist() == [SolveStatus.OK, SolveStatus.OK, SolveStatus.MAX_STEPS_REACHED]
    np.testing.assert_allclose(amounts[0], oral_closed_form(times, [(0.0, 100.0), (12.0, 100.0)], KA, CL, V),
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(amounts[1], two_cmt_closed_form(times, [(0.0, 500.0)], CL2, V1, Q, V2),
                               rtol=RTOL, atol=ATOL)
    (msg,) = status_messages(status, ["P1", "P2", "P3"])
    assert msg.startswith("patient P3: max_steps_reached")


def test_gradient_matches_closed_form_and_finite_differences() -> None:
    # Gradients in theta, and also in dose times, amounts, infusion rates and evaluation times (exact as long as
    # the order of events does not change: each moves the end of an interval, which the rescaled time carries).
    records = [dose(0.0, 100.0, ii=TAU, ss=1), dose(TAU, 100.0), dose(24.0, 50.0, rate=25.0, cmt=1)]
    doses = make_doses(records, 8)
    c_obs = jnp.asarray([2.0, 2.5, 1.5, 3.0, 2.0, 1.0])

    def loss_from(amounts, v):
        return jnp.sum((jnp.log(amounts[:, 1] / v) - jnp.log(c_obs)) ** 2)  # a lognormal sum of squares

    @jax.jit
    @jax.value_and_grad
    def ode_loss(x):
        d = doses._replace(time=x["time"], amt=x["amt"], rate=x["rate"])
        amounts, _ = solve_amounts(one_cmt_oral_rhs, x["theta"], d, x["obs"], n_cmt=2, rtol=1e-10, atol=1e-12)
        return loss_from(amounts, x["theta"][2])

    def exact_loss(x):
        (ka, cl, v), t, amt, obs = x["theta"], x["time"], x["amt"], x["obs"]
        ss = oral_steady_state(obs - t[0], amt[0], TAU, ka, cl, v)  # the ss=1 dose, then a dose on top of it
        amounts = ss + oral_closed_form(obs, [(t[1], amt[1])], ka, cl, v) + jnp.stack(
            [jnp.zeros_like(obs), infusion_closed_form(obs, t[2], amt[2], x["rate"][2], cl / v)], axis=-1)
        return loss_from(amounts, v)

    theta = jnp.asarray([KA, CL, V])
    x = {"theta": theta, "time": doses.time, "amt": doses.amt, "rate": doses.rate,
         "obs": jnp.asarray([1.0, 6.0, 12.5, 13.0, 25.0, 30.0])}
    value, grad = ode_loss(x)
    exact_value, exact_grad = jax.value_and_grad(exact_loss)(x)
    np.testing.assert_allclose(value, exact_value, rtol=1e-8)
    for key in x:
        assert np.all(np.isfinite(grad[key])), key
        np.testing.assert_allclose(grad[key], exact_grad[key], rtol=1e-7, atol=1e-12, err_msg=key)
    # Central differences in theta with relative step h: truncation error ~h^2 = 1e-8, and the adaptive solver's
    # answer moves by ~rtol = 1e-10 (relative) as its step sequence changes with theta, which the difference
    # divides by h: ~1e-6. So 1e-5 relative is ten times the expected error.
    h = 1e-4 * theta
    fd = [(ode_loss({**x, "theta": theta.at[i].add(h[i])})[0] - ode_loss({**x, "theta": theta.at[i].add(-h[i])})[0])
          / (2 * h[i]) for i in range(3)]
    np.testing.assert_allclose(np.asarray(fd), grad["theta"], rtol=1e-5)


def test_failed_solve_gives_nan_not_a_wrong_value() -> None:
    # ka = 1e5 /day makes the MM model stiff for tsit5: the solver stops at max_steps, where its state is finite
    # but belongs to an earlier time. The structural model must return NaN so no likelihood uses it.
    from bayestwin.models import get_model

    model = get_model("pk.one_cmt_oral_mm")
    dose = Doses.single(time=0.0, amt=30.0, n=1)
    stiff = model.predict({"ka": jnp.asarray(1e5), "km": jnp.asarray(1.0), "vm": jnp.asarray(0.9),
                           "v": jnp.asarray(2.0)}, dose, jnp.asarray([0.5, 1.0]))
    assert np.all(np.isnan(np.asarray(stiff)))
    fine = model.predict({"ka": jnp.asarray(0.76), "km": jnp.asarray(1.0), "vm": jnp.asarray(0.9),
                          "v": jnp.asarray(2.0)}, dose, jnp.asarray([0.5, 1.0]))
    assert np.all(np.isfinite(np.asarray(fine)))
