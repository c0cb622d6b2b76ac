"""Disease progression on real data: the pbcseq loader and a small fit of the log-bilirubin spec.

Loader: counts, the log transform against the raw file, the treatment coding and file line numbers; a bad
row is reported at its line (non-positive bilirubin: ``InputError``; a non-numeric day or a negative one:
the readers' ``DataValidationError``). Fit: ``model_specs/pbc_bilirubin.py`` on the first 24 patients
(2 chains x (200 + 200), dense mass matrix, one compilation for the module), compared with an independent
generalised-least-squares computation of the same linear mixed model (see the test).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayestwin.data import dataset_path, load_dataset
from bayestwin.data.datasets import _pbcseq
from bayestwin.exceptions import DataValidationError, InputError

N_PATIENTS = 24


@pytest.fixture(scope="module")
def table():
    return load_dataset("pbcseq")


def test_loader_counts_units_and_log_transform(table) -> None:
    raw = pd.read_csv(dataset_path("pbcseq"))
    assert (table.n_patients, len(table.observations)) == (312, 1945)
    obs = table.observations
    np.testing.assert_allclose(obs["dv"].to_numpy(), np.log(raw["bili"].to_numpy()), rtol=1e-15)
    np.testing.assert_array_equal(obs["time"].to_numpy(), raw["day"].to_numpy())
    assert table.units["time"] == "day" and table.units["dv"] == "dimensionless" and table.units["age"] == "year"
    arms = table.frame.groupby("id")["trt"].first().value_counts().to_dict()
    assert arms == {1.0: 158, 0.0: 154}  # 1 D-penicillamine, 0 placebo: the trial's arm sizes
    assert list(table.frame.index[:2]) == ["observations:2", "observations:3"]  # file lines (header = line 1)


def _corrupt(tmp_path, line: int, column: str, value: str):
    raw = pd.read_csv(dataset_path("pbcseq"), dtype=str, keep_default_na=False)
    raw.loc[line - 2, column] = value
    path = tmp_path / "pbcseq_bad.csv"
    raw.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("value", ["0", "-1.2", "n/a", ""])
def test_bad_bilirubin_is_refused_at_its_line(tmp_path, value: str) -> None:
    path = _corrupt(tmp_path, 7, "bili", value)
    with pytest.raises(InputError, match=rf"column bili .*line 7 \(patient 2\): '{value}'.*Fix or remove"):
        _pbcseq(path)


@pytest.mark.parametrize(("value", "rule"), [("abc", "column day"), ("-30", "T001")])
def test_bad_day_is_reported_by_the_reader_at_its_line(tmp_path, value: str, rule: str) -> None:
    path = _corrupt(tmp_path, 7, "day", value)
    with pytest.raises(DataValidationError, match=rf"(?s)observations:7.*{rule}|{rule}.*observations:7"):
        _pbcseq(path)


@pytest.fixture(scope="module")
def fit(table):
    from model_specs.pbc_bilirubin import spec

    from bayestwin.inference import SamplerConfig, fit_population

    ids = table.patients[:N_PATIENTS]
    sub = table.exclude(~table.frame["id"].isin(ids).to_numpy(), reason="patients beyond the first 24")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the gate's verdict is checked below
        return fit_population(spec(), sub, sampler=SamplerConfig(chains=2, warmup=200, draws=200, seed=3,
                                                                  dense_mass=True)), sub


def test_fit_is_labelled_and_converged(fit) -> None:
    pop, _ = fit
    post = pop.idata.posterior
    for name in ("tv_intercept", "tv_slope", "beta_intercept_trt", "beta_slope_trt", "omega_intercept",
                 "omega_slope", "sigma_add"):
        assert name in post, name
    assert post["slope"].attrs["unit"] == "1/year"
    assert pop.diagnostics.divergences == 0, pop.diagnostics.format()
    assert pop.diagnostics.max_rhat < 1.05, pop.diagnostics.format()


def test_fixed_effects_agree_with_generalised_least_squares(fit) -> None:
    """Given the variance components, the posterior of the fixed effects is normal and exact (GLS + prior).

    With the between-patient covariance, residual SD and time reference fixed at their posterior means,
    the fixed effects (a, b_a, s, b_s) have a normal posterior with precision ``X' V^-1 X + P0`` and mean
    ``(X' V^-1 X + P0)^-1 (X' V^-1 y + P0 m0)`` (normal priors m0, P0^-1). The MCMC means integrate over
    the variance components instead, which moves them by a small fraction of a posterior SD; the
    tolerance, 0.5 posterior SD, is that allowance plus 4 MCSE (MCSE <= 0.1 SD at ESS >= 100).
    """
    from model_specs.pbc_bilirubin import TIME_REF

    pop, sub = fit
    post = pop.idata.posterior
    mean = lambda name: float(post[name].mean())  # noqa: E731
    om_a, om_s, sig = mean("omega_intercept"), mean("omega_slope"), mean("sigma_add")
    rho = float(post["corr_chol"].values[..., 1, 0].mean()) if "corr_chol" in post else 0.0
    g = np.array([[om_a**2, rho * om_a * om_s], [rho * om_a * om_s, om_s**2]])
    obs = sub.observations
    trt = sub.frame.groupby("id")["trt"].first()
    xtvx, xtvy = np.zeros((4, 4)), np.zeros(4)
    for pid, rows in obs.groupby("id"):
        t = rows["time"].to_numpy() / 365.25 - TIME_REF
        z = np.column_stack([np.ones_like(t), t])
        x = np.column_stack([np.ones_like(t), np.full_like(t, trt[pid]), t, t * trt[pid]])
        v = z @ g @ z.T + sig**2 * np.eye(len(t))
        vi = np.linalg.inv(v)
        xtvx += x.T @ vi @ x
        xtvy += x.T @ vi @ rows["dv"].to_numpy()
    m0, sd0 = np.array([0.5, 0.0, 0.0, 0.0]), np.array([1.0, 0.5, 0.5, 0.25])
    precision = xtvx + np.diag(sd0**-2)
    gls = np.linalg.solve(precision, xtvy + m0 / sd0**2)
    names = ["tv_intercept", "beta_intercept_trt", "tv_slope", "beta_slope_trt"]
    for name, expected in zip(names, gls, strict=True):
        draws = post[name].values
        assert abs(draws.mean() - expected) < 0.5 * draws.std(), (name, draws.mean(), expected, draws.std())
