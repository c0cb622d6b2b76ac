"""Signals against exact or brute-force values; alert hysteresis and records; the twin online."""

from __future__ import annotations

import json

import arviz as az
import jax
import numpy as np
import pandas as pd
import pytest
from ou_synth import cohort_frame
from scipy.stats import norm

from bayestwin.diagnostics import ConvergenceReport
from bayestwin.exceptions import InputError, NotFittedError
from bayestwin.monitor.alerts import Alert, AlertPolicy, alert_table, alerts_from_scores, raised_indices, record_alerts
from bayestwin.monitor.kalman import FilterState, OUParams
from bayestwin.monitor.model import SignalFit
from bayestwin.monitor.scoring import Crossing, Drift
from bayestwin.monitor.signals import crossing_probability_draws, level_change_probability, summarize, surprise
from bayestwin.monitor.twin import MonitorTwin

# ---------------------------------------------------------------------------------------------- signals


def _brute_force_crossing(p: OUParams, m: float, v: float, t0: float, threshold: float, above: bool,
                          horizon: float, step: float, n: int, rng: np.random.Generator) -> float:
    """Plain numpy simulation of the latent value on the grid t0 + step, ..., t0 + horizon (exact OU steps)."""
    grid = t0 + step * np.arange(1, round(horizon / step) + 1)
    x = rng.normal(m, np.sqrt(v), n)
    phi = np.exp(-p.rate * step)
    crossed = np.zeros(n, bool)
    for tk in grid:
        x = phi * x + rng.normal(0.0, p.sd * np.sqrt(1 - phi**2), n)
        value = p.baseline + p.cos * np.cos(2 * np.pi * tk / 24) + p.sin * np.sin(2 * np.pi * tk / 24) + x
        crossed |= value > threshold if above else value < threshold
    return float(crossed.mean())


@pytest.mark.parametrize(("threshold", "above", "m"), [(130.0, True, 25.0), (90.0, True, -3.0), (60.0, False, -8.0)])
def test_crossing_probability_matches_brute_force_simulation(threshold: float, above: bool, m: float) -> None:
    draws = 3
    p = OUParams(baseline=np.array([100.0, 95.0, 98.0]), cos=np.array([5.0, 0.0, 3.0]), sin=np.array([0.0, 2.0, -1.0]),
                 rate=np.array([0.3, 0.1, 0.6]), sd=np.array([8.0, 10.0, 6.0]), noise=np.full((draws, 1), 2.0))
    state = FilterState(np.full(draws, m), np.full(draws, 4.0), np.full(draws, 3.0))
    n_jax, n_np = 20_000, 20_000
    got = np.asarray(crossing_probability_draws(p, state, jax.random.PRNGKey(7), t0=5.0, threshold=threshold,
                                                above=above, horizon=6.0, step=0.5, n_paths=n_jax))
    rng = np.random.default_rng(5)
    for d in range(draws):
        pd_ = OUParams(*(np.asarray(a)[d] for a in p))
        # the state at t=3 is predicted to t0=5 first (as the function does)
        phi = np.exp(-pd_.rate * 2.0)
        m0, v0 = phi * m, phi**2 * 4.0 + pd_.sd**2 * (1 - phi**2)
        ref = _brute_force_crossing(pd_, m0, v0, 5.0, threshold, above, 6.0, 0.5, n_np, rng)
        se = np.sqrt(max(ref * (1 - ref), 1e-4) * (1 / n_jax + 1 / n_np))
        assert abs(got[d] - ref) <= 4 * se, (d, got[d], ref, se)  # k = 4: two-sided false alarm ~6e-5 per check


def test_level_change_probability_is_the_gaussian_difference() -> None:
    rng = np.random.default_rng(0)
    mn, vn, mt, vt = rng.normal(2.0, 1.0, 5), rng.uniform(0.1, 1.0, 5), rng.normal(0.0, 1.0, 5), rng.uniform(0.1, 1, 5)
    got = np.asarray(level_change_probability(mn, vn, mt, vt, 2.0))
    np.testing.assert_allclose(got, norm.sf(2.0, loc=mn - mt, scale=np.sqrt(vn + vt)), rtol=1e-12)
    down = np.asarray(level_change_probability(mn, vn, mt, vt, -1.0))
    np.testing.assert_allclose(down, norm.cdf(-1.0, loc=mn - mt, scale=np.sqrt(vn + vt)), rtol=1e-12)


def test_surprise_is_the_mixture_tail_and_log_score() -> None:
    means, vars_ = np.array([70.0, 75.0, 72.0]), np.array([9.0, 16.0, 25.0])
    for y in (60.0, 71.0, 90.0):
        cdf = np.mean(norm.cdf(y, means, np.sqrt(vars_)))
        tail, score = (float(a) for a in surprise(np.array(y), means, vars_))
        assert tail == pytest.approx(2 * min(cdf, 1 - cdf), rel=1e-12)
        assert score == pytest.approx(np.log(np.mean(norm.pdf(y, means, np.sqrt(vars_)))), rel=1e-12)


def test_summarize_interval_and_mcse() -> None:
    x = np.linspace(0.0, 1.0, 101)
    s = summarize(x)
    assert s.probability == pytest.approx(0.5) and s.lower == pytest.approx(0.05) and s.upper == pytest.approx(0.95)
    assert s.mcse == pytest.approx(x.std(ddof=1) / np.sqrt(101))

# ---------------------------------------------------------------------------------------------- alerts


def test_hysteresis_raises_once_per_episode() -> None:
    t = np.arange(10.0)
    p = [0.1, 0.55, 0.7, 0.45, 0.6, 0.2, 0.1, 0.5, 0.3, 0.9]
    # raise at 0.5, clear below 0.3: episode 1 from t=1 (0.45 and 0.6 keep it), cleared at t=5,
    # episode 2 at t=7 (0.3 does not clear: not below), so t=9 raises nothing
    assert raised_indices(t, p, raise_level=0.5, clear_level=0.3) == [1, 7]
    # no hysteresis (clear = raise): every re-crossing raises
    assert raised_indices(t, p, raise_level=0.5, clear_level=0.5) == [1, 4, 7, 9]
    # de-duplication: nothing within 8 h of the last alert
    assert raised_indices(t, p, raise_level=0.5, clear_level=0.5, dedup_h=8.0) == [1, 9]
    assert raised_indices(t, [np.nan, 0.6, np.nan, 0.1, 0.6], raise_level=0.5, clear_level=0.3) == [1, 4]
    with pytest.raises(InputError, match="non-decreasing"):
        raised_indices([1.0, 0.0], [0.1, 0.2], raise_level=0.5)
    with pytest.raises(InputError, match="clear_level"):
        AlertPolicy(0.5, 0.7)


def test_alerts_from_scores_per_series_and_per_kind_policy() -> None:
    s = pd.DataFrame({"patient": ["A"] * 4 + ["B"] * 4, "signal": "spo2",
                      "kind": ["crossing", "crossing", "drift", "drift"] * 2,
                      "time_h": [0.0, 1.0, 0.0, 1.0] * 2, "probability": [0.9, 0.9, 0.6, 0.2, 0.1, 0.95, 0.1, 0.1]})
    one = alerts_from_scores(s, AlertPolicy(0.5))
    assert one[["patient", "kind", "time_h"]].values.tolist() == [["A", "crossing", 0.0], ["A", "drift", 0.0],
                                                                   ["B", "crossing", 1.0]]
    per_kind = alerts_from_scores(s, {"crossing": AlertPolicy(0.92)})
    assert per_kind[["patient", "kind"]].values.tolist() == [["B", "crossing"]]


def _alert(**kw: object) -> Alert:
    base = dict(patient="P1", signal="spo2", kind="crossing", time_h=30.0, probability=0.7, lower=0.5, upper=0.85,
                level=0.5, baseline=96.0, now=91.0, unit="%", horizon_h=6.0, window_start_h=0.0, window_end_h=30.0,
                fit_ok=True, explanation="spo2 < 90 % within 6 h")
    return Alert(**(base | kw))  # type: ignore[arg-type]


def test_alert_records_are_json_and_go_to_the_sink() -> None:
    a = _alert(lower=float("nan"))
    data = json.loads(a.to_json())
    assert data["schema"] == "bayestwin.monitor.alert/1" and data["lower"] is None
    assert Alert.from_dict(data).probability == 0.7
    table = alert_table([_alert(time_h=40.0), _alert(patient="P0")])
    assert table[["patient", "time_h"]].values.tolist() == [["P0", 30.0], ["P1", 40.0]]

    class Sink:
        def __init__(self, heads: dict[str, int | None]) -> None:
            self.heads, self.rows = heads, []

        def head(self, patient: object) -> int | None:
            return self.heads.get(str(patient))

        def add_record(self, patient: object, version: int, kind: str, payload: object) -> int:
            self.rows.append((patient, version, kind, payload))
            return len(self.rows)

    sink = Sink({"P1": 3})
    assert record_alerts(sink, [_alert()]) == [1]
    assert sink.rows[0][1:3] == (3, "monitor_alert")
    empty = Sink({})
    with pytest.raises(InputError, match="no twin version"):
        record_alerts(empty, [_alert()])
    assert empty.rows == []

# ---------------------------------------------------------------------------------------------- twin


TRUE = OUParams(baseline=95.0, cos=0.5, sin=0.0, rate=0.3, sd=1.0, noise=np.array([0.8, 1.2]))


def _known_fit(patients: list[str], n: int = 16) -> SignalFit:
    """A SignalFit whose posterior is the truth (no sampling): population scales small, draws all equal."""
    center, scale = 95.0, 2.0
    d = {"mu_baseline": np.zeros(n), "sd_baseline": np.full(n, 0.5), "mu_cos": np.full(n, 0.25),
         "mu_sin": np.zeros(n), "sd_circadian": np.full(n, 0.05), "mu_log_rate": np.full(n, np.log(0.3)),
         "sd_log_rate": np.full(n, 0.1), "mu_log_sd": np.full(n, np.log(0.5)), "sd_log_sd": np.full(n, 0.1),
         "noise": np.tile([0.4, 0.6], (n, 1))}
    k = len(patients)
    d |= {"baseline": np.zeros((n, k)), "cos": np.full((n, k), 0.25), "sin": np.zeros((n, k)),
          "rate": np.full((n, k), 0.3), "sd": np.full((n, k), 0.5)}
    idata = az.from_dict(posterior={k: v[None] for k, v in d.items()})
    report = ConvergenceReport(ok=True, table=pd.DataFrame({"r_hat": [1.0], "ess_bulk": [1e3], "ess_tail": [1e3]}),
                               divergences=0, bfmi=())
    return SignalFit("spo2", tuple(patients), ("patch", "watch"), center, scale, idata, report, d,
                     dict.fromkeys(patients, 0.0))


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    frame = cohort_frame([TRUE] * 3, 40, signal="spo2", seed=4, devices=("patch", "watch"))
    frame.loc[(frame["patient"] == "P001") & (frame.index % 40 >= 25), "value"] -= 6.0  # a fall from row 25 on
    return frame


def _twin(patients: list[str]) -> MonitorTwin:
    return MonitorTwin(signals=("spo2",), crossings=[Crossing("spo2", 90.0, above=False, horizon_h=4.0)],
                       drifts=[Drift("spo2", -3.0, window_h=12.0, smooth_h=2.0)], n_draws=16, n_paths=8,
                       policy=AlertPolicy(0.5, 0.25, 24.0))


def _chunks(frame: pd.DataFrame, size: int = 8) -> list[pd.DataFrame]:
    """Rows 0-7, 8-15, ... of every patient: every online batch has the same padded shape."""
    pos = frame.groupby("patient").cumcount()
    return [frame[(pos >= k) & (pos < k + size)] for k in range(0, int(pos.max()) + 1, size)]


def test_twin_online_equals_batch_and_handles_late_rows(stream: pd.DataFrame) -> None:
    fits = {"spo2": _known_fit(["P000", "P001", "P002"])}
    chunks = _chunks(stream)
    batch = _twin([]).fit(stream, fits=fits)
    online = _twin([]).fit(chunks[0], fits=fits)
    for c in chunks[1:]:
        online.observe(c)
    cols = ["patient", "kind", "time_h"]
    a = batch.scores().sort_values(cols).reset_index(drop=True)
    b = online.scores().sort_values(cols).reset_index(drop=True)
    assert len(a) == len(b) == 2 * len(stream)
    np.testing.assert_allclose(b["now"], a["now"], rtol=1e-10)  # the filter: identical
    drift = a["kind"] == "drift"
    assert a.loc[drift, "probability"].notna().sum() > len(stream) / 2
    np.testing.assert_allclose(b.loc[drift, "probability"], a.loc[drift, "probability"], rtol=1e-8, atol=1e-12)
    with pytest.raises(NotFittedError, match="fit"):
        MonitorTwin().alerts()
    # a late row (older than the patient's latest) makes the twin refilter that patient in time order
    last = chunks[-1]
    late_row = last[last["patient"] == "P002"].iloc[[0]]
    online2 = _twin([]).fit(chunks[0], fits=fits)
    for c in chunks[1:-1]:
        online2.observe(c)
    online2.observe(last.drop(index=late_row.index))
    online2.observe(late_row)
    c = online2.scores().sort_values(cols).reset_index(drop=True)
    np.testing.assert_allclose(c["now"], a["now"], rtol=1e-10)
    # the fall in P001 raises alerts there; the record says what and why
    alerts = batch.alerts()
    assert set(alerts["patient"]) == {"P001"}
    rec = batch.alert_records()[0]
    assert rec.patient == "P001" and "spo2" in rec.explanation and json.loads(rec.to_json())["fit_ok"] is True


def test_twin_does_not_recompile_for_a_new_patient_set_of_the_same_padded_size(stream: pd.DataFrame,
                                                                             count_compiles) -> None:
    chunks = _chunks(stream)
    twin = _twin([]).fit(chunks[0], fits={"spo2": _known_fit(["P000", "P001", "P002"])})
    renamed = [c.assign(patient=c["patient"].str.replace("P", "Q")) for c in chunks]
    other = _twin([]).fit(renamed[0], fits={"spo2": _known_fit(["X"])})  # Q patients: from the population
    with count_compiles() as compiles:
        twin.observe(chunks[1])  # may compile (first batch of this padded size in this process)
        warm = compiles.n
        twin.observe(chunks[2])
        other.observe(renamed[1])  # a second patient set of the same padded size, other parameters
        assert compiles.n == warm, "a batch of the same padded size recompiled"
        twin.observe(pd.concat(chunks[3:]))  # a larger batch: a new padded size compiles (the counter works)
        assert compiles.n > warm
