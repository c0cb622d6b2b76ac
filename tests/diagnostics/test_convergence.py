"""The convergence gate on synthetic posteriors whose verdict is known by construction.

Draws are seeded, so each verdict is deterministic; the constructions are far from the thresholds (R-hat of
shifted chains ~1.5 against 1.01, ESS of rho = 0.99 chains ~15 against 400, E-BFMI ~1e-5 against 0.2) so the
verdicts do not hinge on the seed either.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import arviz as az
import numpy as np
import pytest

from bayestwin.diagnostics.convergence import ConvergenceGate, ConvergenceReport, check_convergence

CHAINS, DRAWS = 4, 1000


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _idata(posterior: dict[str, np.ndarray], *, diverging: np.ndarray | None = None,
           energy: np.ndarray | None = None, seed: int = 99) -> az.InferenceData:
    chains, draws = next(iter(posterior.values())).shape[:2]
    stats = {"diverging": np.zeros((chains, draws), dtype=bool) if diverging is None else diverging,
             "energy": _rng(seed).normal(size=(chains, draws)) if energy is None else energy}
    return az.from_dict(posterior=posterior, sample_stats=stats)


def _iid(seed: int = 0, chains: int = CHAINS) -> dict[str, np.ndarray]:
    rng = _rng(seed)
    return {"mu": rng.normal(size=(chains, DRAWS)), "theta": rng.normal(size=(chains, DRAWS, 2))}


def _ar1(rho: float, seed: int = 1) -> np.ndarray:
    """Stationary AR(1) chains: x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, x_0 ~ N(0, 1)."""
    e = _rng(seed).normal(size=(CHAINS, DRAWS))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, DRAWS):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1.0 - rho**2) * e[:, t]
    return x


def _exact_bfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain: mean squared energy change over the energy variance (ddof 1), as arviz defines it."""
    return np.mean(np.diff(energy, axis=1) ** 2, axis=1) / np.var(energy, axis=1, ddof=1)


# --- passing ------------------------------------------------------------------------------------
def test_iid_draws_pass() -> None:
    idata = _idata(_iid())
    report = check_convergence(idata)
    assert report.ok, report.format()
    assert (report.failures, report.advice, report.divergences) == ((), (), 0)
    assert report.gate == ConvergenceGate()
    assert list(report.table.index) == ["mu", "theta[0]", "theta[1]"]
    assert list(report.table.columns) == ["r_hat", "ess_bulk", "ess_tail"]
    # the table holds arviz's rank-normalised split R-hat and bulk/tail ESS (computed by
    # bayestwin.diagnostics.rank_stats, arviz's algorithm in numpy: equal to the summation order, rtol 1e-12)
    sub = idata.posterior
    for column, ds in {"r_hat": az.rhat(sub), "ess_bulk": az.ess(sub, method="bulk"),
                       "ess_tail": az.ess(sub, method="tail")}.items():
        np.testing.assert_allclose(report.table[column], [float(ds["mu"]), *ds["theta"].values], rtol=1e-12,
                                   err_msg=column)
    assert report.max_rhat == report.table["r_hat"].max()
    assert report.min_ess == min(report.table["ess_bulk"].min(), report.table["ess_tail"].min())
    # rtol 1e-12: the same formula, evaluated by arviz (numba or numpy) and by numpy here
    np.testing.assert_allclose(report.bfmi, _exact_bfmi(idata.sample_stats["energy"].values), rtol=1e-12)


def test_var_names_restricts_the_check() -> None:
    post = _iid()
    post["bad"] = post["mu"] + np.arange(CHAINS)[:, None]  # would fail R-hat
    idata = _idata(post)
    assert not check_convergence(idata).ok
    report = check_convergence(idata, var_names=["mu", "theta"])
    assert report.ok, report.format()
    assert list(report.table.index) == ["mu", "theta[0]", "theta[1]"]


def test_missing_sample_stats_variables_are_skipped() -> None:
    idata = az.from_dict(posterior=_iid(), sample_stats={"lp": _rng(5).normal(size=(CHAINS, DRAWS))})
    report = check_convergence(idata)
    assert report.ok and report.divergences == 0 and report.bfmi == ()
    assert report.to_dict()["min_bfmi"] is None
    assert report.format().endswith("0 divergences, E-BFMI >= nan")


# --- failing ------------------------------------------------------------------------------------
def test_shifted_chains_fail_rhat_naming_the_quantity() -> None:
    post = _iid()
    post["theta"][..., 1] += np.arange(CHAINS)[:, None]  # chain means 0, 1, 2, 3 for theta[1] only
    report = check_convergence(_idata(post))
    assert not report.ok
    worst = report.table.loc["theta[1]", "r_hat"]
    assert worst > 1.4  # between-chain SD ~1.3 against a within-chain SD of 1
    rhat_failure = [f for f in report.failures if f.startswith("R-hat")]
    assert rhat_failure == [f"R-hat >= 1.01 for 1 quantities (worst theta[1]: {worst:.3f})"]
    assert "run longer warm-up and more draws; check for multimodality or a non-identifiable parameter" in (
        report.advice)
    assert report.max_rhat == worst


def test_autocorrelated_chains_fail_ess() -> None:
    report = check_convergence(_idata({"ar": _ar1(0.99)}))
    assert not report.ok
    row = report.table.loc["ar"]
    # ESS of AR(1): N (1 - rho) / (1 + rho) = 4000 * 0.01 / 1.99 ~ 20, far below 400
    assert max(row["ess_bulk"], row["ess_tail"]) < 100
    ess_failure = [f for f in report.failures if f.startswith("ESS")]
    worst = min(row["ess_bulk"], row["ess_tail"])
    assert ess_failure == [f"ESS below 400 (bulk) / 400 (tail) for 1 quantities (worst ar: {worst:.0f})"]
    assert "draw more samples, or reparametrise (non-centred random effects) to reduce autocorrelation" in (
        report.advice)
    assert report.min_ess == worst


def test_mildly_autocorrelated_chains_pass() -> None:
    # rho = 0.5: ESS ~ 4000 / 3 ~ 1300 >> 400
    report = check_convergence(_idata({"ar": _ar1(0.5)}))
    assert report.ok, report.format()


@pytest.mark.parametrize("n_div", [1, 3, 17])
def test_any_divergence_fails_and_is_counted(n_div: int) -> None:
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    diverging.flat[_rng(n_div).choice(CHAINS * DRAWS, size=n_div, replace=False)] = True
    report = check_convergence(_idata(_iid(), diverging=diverging))
    assert not report.ok
    assert report.divergences == n_div
    assert report.failures == (f"{n_div} divergent transitions",)
    assert report.advice == ("raise target_accept (e.g. 0.95), use the non-centred parametrisation, or tighten "
                             "weak priors (a funnel or a non-identifiable model)",)
    assert f"{n_div} divergences" in report.format()


def _low_bfmi_energy(n_low: int) -> np.ndarray:
    """Energy whose first `n_low` chains drift slowly: tiny steps (~1) against a huge spread (var ~ 83000)."""
    energy = _rng(7).normal(size=(CHAINS, DRAWS))
    energy[:n_low] = np.linspace(0.0, 1000.0, DRAWS) + 1e-3 * energy[:n_low]
    return energy


@pytest.mark.parametrize("n_low", [1, 2, 4])
def test_low_bfmi_fails(n_low: int) -> None:
    energy = _low_bfmi_energy(n_low)
    exact = _exact_bfmi(energy)
    assert np.all(exact[:n_low] < 1e-4) and np.all(exact[n_low:] > 1.0)  # the construction
    report = check_convergence(_idata(_iid(), energy=energy))
    assert not report.ok
    np.testing.assert_allclose(report.bfmi, exact, rtol=1e-12)  # rtol: the same formula, two implementations
    assert report.failures == (f"E-BFMI {min(exact):.2f} < 0.2 in {n_low} chains",)
    assert report.advice == ("the sampler explores the energy poorly: reparametrise or use better-scaled priors",)


def test_one_chain_fails() -> None:
    report = check_convergence(_idata(_iid(chains=1)))
    assert not report.ok
    assert report.failures[0] == "only 1 chain: R-hat needs at least 2 chains"
    assert report.advice[0] == "run 4 chains"
    # split R-hat of one chain is undefined: NaN also fails the R-hat check rather than passing silently
    assert report.table["r_hat"].isna().all()
    assert report.failures[1].startswith("R-hat >= 1.01 for 3 quantities (worst mu: nan)")


def test_several_failures_are_all_reported() -> None:
    post = {"mu": _iid()["mu"] + np.arange(CHAINS)[:, None], "ar": _ar1(0.99)}
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    diverging[0, :2] = True
    report = check_convergence(_idata(post, diverging=diverging, energy=_low_bfmi_energy(1)))
    kinds = [f.split(" ")[0] for f in report.failures]
    assert kinds == ["R-hat", "ESS", "2", "E-BFMI"]
    assert len(report.advice) == 4 == len(set(report.advice))


# --- custom thresholds --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gate", "failure"),
    [
        (ConvergenceGate(max_rhat=0.5), "R-hat >= 0.5 for 3 quantities"),
        (ConvergenceGate(min_ess_bulk=1e6), "ESS below 1000000 (bulk) / 400 (tail) for 3 quantities"),
        (ConvergenceGate(min_ess_tail=1e6), "ESS below 400 (bulk) / 1000000 (tail) for 3 quantities"),
        (ConvergenceGate(min_bfmi=100.0), "E-BFMI"),
    ],
)
def test_strict_gate_fails_good_draws(gate: ConvergenceGate, failure: str) -> None:
    report = check_convergence(_idata(_iid()), gate=gate)
    assert not report.ok
    assert len(report.failures) == 1 and report.failures[0].startswith(failure)
    assert report.gate == gate


@pytest.mark.parametrize(
    ("make", "gate"),
    [
        (lambda: _idata({"mu": _iid()["mu"] + np.arange(CHAINS)[:, None]}), ConvergenceGate(max_rhat=10.0,
                                                                                             min_ess_bulk=1.0,
                                                                                             min_ess_tail=1.0)),
        (lambda: _idata({"ar": _ar1(0.99)}), ConvergenceGate(max_rhat=2.0, min_ess_bulk=5.0, min_ess_tail=5.0)),
        (lambda: _idata(_iid(), diverging=np.eye(CHAINS, DRAWS, dtype=bool)), ConvergenceGate(max_divergences=4)),
        (lambda: _idata(_iid(), energy=_low_bfmi_energy(4)), ConvergenceGate(min_bfmi=0.0)),
    ],
    ids=["rhat", "ess", "divergences", "bfmi"],
)
def test_lenient_gate_passes_bad_draws(make: Callable[[], az.InferenceData], gate: ConvergenceGate) -> None:
    idata = make()
    assert not check_convergence(idata).ok  # the default gate fails them
    report = check_convergence(idata, gate=gate)
    assert report.ok, report.format()


def test_divergence_threshold_is_inclusive() -> None:
    diverging = np.eye(CHAINS, DRAWS, dtype=bool)  # 4 divergences
    assert check_convergence(_idata(_iid(), diverging=diverging), gate=ConvergenceGate(max_divergences=4)).ok
    report = check_convergence(_idata(_iid(), diverging=diverging), gate=ConvergenceGate(max_divergences=3))
    assert report.failures == ("4 divergent transitions",)


# --- report formatting --------------------------------------------------------------------------
def test_format_ok() -> None:
    report = check_convergence(_idata(_iid()))
    text = report.format()
    assert text == (f"convergence OK: R-hat <= {report.max_rhat:.3f}, ESS >= {report.min_ess:.0f}, 0 divergences, "
                    f"E-BFMI >= {min(report.bfmi):.2f}")
    assert "\n" not in text


def test_format_failed_lists_failures_then_advice() -> None:
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    diverging[1, 10] = True
    report = check_convergence(_idata({"ar": _ar1(0.99)}, diverging=diverging))
    lines = report.format().splitlines()
    assert lines[0].startswith("convergence FAILED: R-hat <= ")
    assert lines[0].endswith(f"1 divergences, E-BFMI >= {min(report.bfmi):.2f}")
    assert lines[1:] == [f"  failed: {f}" for f in report.failures] + [f"  try: {a}" for a in report.advice]


def test_to_dict() -> None:
    diverging = np.zeros((CHAINS, DRAWS), dtype=bool)
    diverging[2, 3] = True
    report = check_convergence(_idata(_iid(), diverging=diverging))
    d = report.to_dict()
    assert d == {"ok": False, "max_rhat": report.max_rhat, "min_ess": report.min_ess, "divergences": 1,
                 "min_bfmi": min(report.bfmi), "failures": ["1 divergent transitions"]}
    assert all(type(d[k]) is float for k in ("max_rhat", "min_ess", "min_bfmi"))
    assert json.loads(json.dumps(d)) == d  # JSON-safe


def test_report_is_frozen() -> None:
    report = check_convergence(_idata(_iid()))
    assert isinstance(report, ConvergenceReport)
    with pytest.raises(AttributeError):
        report.ok = False  # type: ignore[misc]
