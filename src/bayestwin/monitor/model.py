"""Hierarchical state-space model of one vital sign across a cohort, fitted by NUTS on the exact Kalman likelihood.

Per patient i (see ``bayestwin.monitor.kalman`` for the observation and state equations) the static
parameters are the baseline, the circadian coefficients (cos, sin), the OU mean-reversion rate (1/h) and
the OU stationary SD; the measurement noise is one SD per *device* (``watch``, ``cuff``, ...), shared by
the cohort. What varies per patient is chosen from the data (``choose_structure``, a documented rule;
``Structure`` overrides it): the baseline always (centred when each patient's readings pin it, else
non-centred ``mu + sd z``); the circadian pair per patient, for the whole cohort, or not at all (when the
readings' hours of day cannot identify it: weight at 07 h, temperature at 08 and 20 h); the OU rate and SD
per patient for dense series, pooled at the population level for sparse ones (two to four readings per
patient cannot separate a patient's OU rate, OU SD and noise: per-patient values were prior funnels that
failed the convergence gate). A patient the fit has not seen starts from the population
(``SignalFit.params`` draws its parameters from the population posterior).

The likelihood is the exact marginal likelihood of the linear-Gaussian model (the latent deviation
integrated out by the Kalman filter, ``lax.scan``, float64), summed over patients with ``vmap``.
The sampler works on standardised values ``(y - center) / scale`` (cohort median and the robust
within-patient SD, ``within_scale``) so one set of priors fits every signal; ``SignalFit`` reports
parameters in the signal's unit.

Circadian time is the hour of day (UTC) of each observation: ``time_h`` plus the hour of day of the
patient's stream origin (from ``timestamp``; 0 when the frame has none), so the cohort shares one clock.

Examples
--------
>>> import numpy as np, pandas as pd
>>> frame = pd.DataFrame({"patient": "P1", "signal": "heart_rate", "time_h": np.arange(4.0),
...                       "value": [70.0, 72.0, 71.0, 69.0], "device": "watch"})
>>> data = signal_arrays(frame, "heart_rate")
>>> data.t.shape, data.devices, float(data.center)
((1, 8), ('watch',), 70.5)
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from bayestwin.diagnostics import ConvergenceGate, ConvergenceReport, check_convergence
from bayestwin.dynamics.events import bucket_size
from bayestwin.exceptions import ConvergenceWarning, InputError
from bayestwin.inference.sampler import SamplerConfig, run_nuts
from bayestwin.monitor.kalman import OUParams, log_likelihood
from bayestwin.monitor.structure import Structure, choose_structure, within_scale

__all__ = ["SignalData", "SignalFit", "assumed_fit", "circadian_offset", "fit_signal", "monitor_model", "signal_arrays"]

log = logging.getLogger(__name__)

#: Population-level quantities the convergence gate checks (with the per-patient parameters).
POPULATION_SITES = ("mu_baseline", "sd_baseline", "mu_cos", "mu_sin", "sd_circadian", "mu_log_rate",
                    "sd_log_rate", "mu_log_sd", "sd_log_sd", "noise")
PATIENT_SITES = ("baseline", "cos", "sin", "rate", "sd")


def _usable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"] if "status" in frame.columns else frame


def circadian_offset(frame: pd.DataFrame) -> dict[str, float]:
    """Hour of day (UTC) of each patient's stream origin: ``timestamp - time_h`` (0 without timestamps).

    >>> f = pd.DataFrame({"patient": ["A"], "time_h": [2.0],
    ...                   "timestamp": pd.to_datetime(["2026-01-01 08:30"], utc=True)})
    >>> circadian_offset(f)
    {'A': 6.5}
    """
    if "timestamp" not in frame.columns or frame.empty:
        return dict.fromkeys(map(str, frame["patient"].unique()), 0.0)
    origin = pd.to_datetime(frame["timestamp"], utc=True) - pd.to_timedelta(frame["time_h"], unit="h")
    hours = origin.dt.hour + origin.dt.minute / 60.0 + origin.dt.second / 3600.0
    return {str(k): float(v) for k, v in hours.groupby(frame["patient"].astype(str)).first().items()}


@dataclass(frozen=True)
class SignalData:
    """Padded arrays of one signal: (patient, obs) times (circadian clock, h), values, device index, mask."""

    signal: str
    patients: tuple[str, ...]
    devices: tuple[str, ...]
    t: np.ndarray
    y: np.ndarray
    dev: np.ndarray
    mask: np.ndarray
    center: float
    scale: float
    offsets: dict[str, float] = field(default_factory=dict)


def signal_arrays(frame: pd.DataFrame, signal: str, *, devices: Sequence[str] | None = None,
                  center: float | None = None, scale: float | None = None, size: int | None = None) -> SignalData:
    """The usable rows (``status == "ok"`` when the column exists) of `signal` as padded arrays.

    Rows are sorted by time within each patient; the padded length is ``bucket_size`` of the longest
    series (or `size`). `devices` fixes the device order (default: sorted devices in the frame).
    """
    rows = _usable(frame)
    rows = rows[rows["signal"] == signal]
    if rows.empty:
        raise InputError(f"no usable rows of signal {signal!r} (status 'ok'); signals present: "
                         f"{sorted(frame['signal'].unique())}")
    if not np.isfinite(rows["value"].to_numpy(float)).all():
        bad = rows[~np.isfinite(rows["value"].to_numpy(float))].index[0]
        raise InputError(f"signal {signal!r}: non-finite value in row {bad}; flag it (status) or drop it")
    device_col = rows["device"].astype(str) if "device" in rows.columns else pd.Series("unknown", index=rows.index)
    devices = tuple(sorted(device_col.unique())) if devices is None else tuple(devices)
    unknown = sorted(set(device_col) - set(devices))
    if unknown:
        raise InputError(f"signal {signal!r}: devices {unknown} were not in the fit (devices {list(devices)}); "
                         "refit with these rows, or map the device column to a fitted device")
    values = rows["value"].to_numpy(float)
    center = float(np.median(values)) if center is None else center
    mad = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    scale = (mad if mad > 0 else max(float(np.std(values)), 1.0)) if scale is None else scale
    # one pass in numpy (no per-patient pandas groups): rows ordered by patient (as str), then time (stable)
    codes, names = pd.factorize(rows["patient"].astype(str), sort=True)
    order = np.lexsort((rows["time_h"].to_numpy(float), codes))
    codes, values, device_col = codes[order], values[order], device_col.iloc[order]
    offsets = circadian_offset(rows.iloc[order])  # each patient's first row in time order gives its origin
    counts = np.bincount(codes, minlength=len(names))
    n = size or bucket_size(int(counts.max()))
    if counts.max() > n:
        big = int(np.argmax(counts))
        raise InputError(f"patient {names[big]!r} has {counts[big]} rows of {signal!r}, more than size={n}")
    shape = (len(names), n)
    t, y, dev, mask = np.zeros(shape), np.zeros(shape), np.zeros(shape, np.int64), np.zeros(shape, bool)
    index = {d: i for i, d in enumerate(devices)}
    pos = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    off = np.array([offsets[str(p)] for p in names])
    tt = rows["time_h"].to_numpy(float)[order] + off[codes]
    t[codes, pos], y[codes, pos], mask[codes, pos] = tt, values, True
    dev_codes, dev_names = pd.factorize(device_col)
    dev[codes, pos] = np.array([index[d] for d in dev_names], np.int64)[dev_codes]
    last = np.cumsum(counts) - 1
    t = np.where(mask, t, tt[last][:, None])  # padded times repeat the patient's last time
    return SignalData(signal, tuple(str(p) for p in names), devices, t, y, dev, mask, center, scale, offsets)


def monitor_model(t: jax.Array, y: jax.Array, dev: jax.Array, mask: jax.Array, noise_scale: jax.Array,
                  structure: Structure | None = None) -> None:
    """NumPyro model on standardised values ``(y - center) / within-patient SD``; `structure` says what varies.

    Priors (standardised units, rate per hour), each with its reason:

    * baseline ~ N(mu, sd), mu ~ N(0, B), sd ~ HalfNormal(B), ``B = structure.baseline_scale`` (twice the
      cohort's spread of patient medians, >= 1): patients differ by about that much (body weight: tens of
      within-patient SDs), nothing more is assumed;
    * circadian cos, sin ~ N(mu, sd_circadian), mu ~ N(0, 0.5), sd_circadian ~ HalfNormal(0.3): a daily
      rhythm of up to about one within-patient SD (heart rate: ~5 /min of a ~6 /min spread);
    * log rate ~ N(mu, sd), mu ~ N(log 0.2, 1.5) (time scales ~15 min to ~4 days at +-2 SD: exercise bouts
      to slow drifts), sd ~ HalfNormal(0.5);
    * per-patient OU: log OU SD ~ N(mu, sd), mu ~ N(log 0.5, 1), sd ~ HalfNormal(0.5); device noise ~
      HalfNormal(noise_scale);
    * pooled OU: total SD ``sqrt(sd^2 + noise^2)`` ~ LogNormal(0, 0.5) (the data were scaled by the
      within-patient SD, so it is ~1) and fraction ``sd^2 / total^2`` ~ Beta(2, 2) (sparse readings do not
      separate a slow deviation from measurement noise: the fraction is then mostly its prior, a straight
      direction for NUTS instead of the curved ridge of sd^2 + noise^2 = const); other devices' noise is the
      first device's times ``noise_ratio`` ~ LogNormal(0, 0.5).
    """
    s = structure or Structure()
    k, n_dev = t.shape[0], noise_scale.shape[0]
    mu_b = numpyro.sample("mu_baseline", dist.Normal(0.0, s.baseline_scale))
    sd_b = numpyro.sample("sd_baseline", dist.HalfNormal(s.baseline_scale))
    zero = jnp.zeros(k)
    with numpyro.plate("patient", k):
        if s.centred:
            baseline = numpyro.sample("baseline", dist.Normal(mu_b, sd_b))
        else:
            baseline = numpyro.deterministic("baseline", mu_b + sd_b * numpyro.sample("z_baseline",
                                                                                       dist.Normal(0.0, 1.0)))
    if s.circadian == "none":
        cos, sin = zero, zero
    else:
        mu_c = numpyro.sample("mu_cos", dist.Normal(0.0, 0.5))
        mu_s = numpyro.sample("mu_sin", dist.Normal(0.0, 0.5))
        cos, sin = mu_c + zero, mu_s + zero
        if s.circadian == "patient":
            sd_circ = numpyro.sample("sd_circadian", dist.HalfNormal(0.3))
            with numpyro.plate("patient", k):
                zc = numpyro.sample("z_circadian", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            cos, sin = mu_c + sd_circ * zc[:, 0], mu_s + sd_circ * zc[:, 1]
    mu_lr = numpyro.sample("mu_log_rate", dist.Normal(float(np.log(0.2)), 1.5))
    if s.ou == "patient":
        sd_lr = numpyro.sample("sd_log_rate", dist.HalfNormal(0.5))
        mu_ls = numpyro.sample("mu_log_sd", dist.Normal(float(np.log(0.5)), 1.0))
        sd_ls = numpyro.sample("sd_log_sd", dist.HalfNormal(0.5))
        with numpyro.plate("device", n_dev):
            noise = numpyro.sample("noise", dist.HalfNormal(noise_scale))
        with numpyro.plate("patient", k):
            zo = numpyro.sample("z_ou", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        rate, sd = jnp.exp(mu_lr + sd_lr * zo[:, 0]), jnp.exp(mu_ls + sd_ls * zo[:, 1])
    else:
        total = numpyro.sample("total_sd", dist.LogNormal(0.0, 0.5))
        frac = numpyro.sample("ou_fraction", dist.Beta(2.0, 2.0))
        sd0, noise0 = total * jnp.sqrt(frac), total * jnp.sqrt(1.0 - frac)
        noise = noise0[None]
        if n_dev > 1:
            with numpyro.plate("extra_device", n_dev - 1):
                ratio = numpyro.sample("noise_ratio", dist.LogNormal(0.0, 0.5))
            noise = jnp.concatenate([noise, noise0 * ratio])
        numpyro.deterministic("noise", noise)
        numpyro.deterministic("mu_log_sd", jnp.log(sd0))
        rate, sd = jnp.exp(mu_lr) + zero, sd0 + zero
    for name, value in (("cos", cos), ("sin", sin), ("rate", rate), ("sd", sd)):
        numpyro.deterministic(name, value)
    p = OUParams(baseline, cos, sin, rate, sd, noise=jnp.broadcast_to(noise, (k, n_dev)))
    numpyro.factor("loglik", jax.vmap(log_likelihood)(p, t, y, dev, mask).sum())


def _checked_sites(s: Structure) -> list[str]:
    """The sampled population quantities and the per-patient parameters that vary, for the gate."""
    pop = ["mu_baseline", "sd_baseline", "mu_log_rate", "noise"]
    pop += [] if s.circadian == "none" else ["mu_cos", "mu_sin"]
    pop += ["sd_circadian"] if s.circadian == "patient" else []
    pop += ["sd_log_rate", "mu_log_sd", "sd_log_sd"] if s.ou == "patient" else ["total_sd", "ou_fraction"]
    patient = ["baseline"] + (["cos", "sin"] if s.circadian == "patient" else [])
    return pop + patient + (["rate", "sd"] if s.ou == "patient" else [])


def _patient_params(z, mu_b, sd_b, mu_c, mu_s, sd_circ, mu_lr, sd_lr, mu_ls, sd_ls):
    return (mu_b + sd_b * z[..., 0], mu_c + sd_circ * z[..., 1], mu_s + sd_circ * z[..., 2],
            jnp.exp(mu_lr + sd_lr * z[..., 3]), jnp.exp(mu_ls + sd_ls * z[..., 4]))


@dataclass(frozen=True)
class SignalFit:
    """Posterior of one signal's hierarchical model: draws (flattened chain x draw), standardisation, gate."""

    signal: str
    patients: tuple[str, ...]
    devices: tuple[str, ...]
    center: float
    scale: float
    idata: az.InferenceData
    diagnostics: ConvergenceReport
    draws: dict[str, np.ndarray]
    offsets: dict[str, float]
    wall_time_s: float = 0.0
    structure: Structure = field(default_factory=lambda: Structure())

    @property
    def ok(self) -> bool:
        """Whether the fit passed its convergence gate."""
        return self.diagnostics.ok

    def params(self, patients: Sequence[str], n_draws: int, *, seed: int = 0) -> OUParams:
        """Parameters in the signal's unit, shape (patient, draw): `n_draws` posterior draws, evenly thinned.

        A patient the fit has seen gets its own posterior draws; any other patient gets, per draw, a
        fresh draw from the population distribution of that posterior draw (it starts from the population).
        """
        total = self.draws["mu_baseline"].shape[0]
        pick = np.linspace(0, total - 1, n_draws).round().astype(int)
        d = {k: v[pick] for k, v in self.draws.items()}
        z = np.random.default_rng(seed).standard_normal((len(patients), n_draws, 5))
        pop = [np.asarray(a) for a in _patient_params(
            z, *(d[k][None, :] for k in POPULATION_SITES if k != "noise"))]
        index = {p: i for i, p in enumerate(self.patients)}
        out = []
        for j, name in enumerate(PATIENT_SITES):
            col = pop[j].copy()
            for i, p in enumerate(patients):
                if p in index:
                    col[i] = d[name][:, index[p]]
            out.append(col)
        c, s = self.center, self.scale
        return OUParams(baseline=c + s * out[0], cos=s * out[1], sin=s * out[2], rate=out[3], sd=s * out[4],
                        noise=np.broadcast_to(s * d["noise"][None], (len(patients), *d["noise"].shape)).copy())

    def summary(self) -> pd.DataFrame:
        """Posterior mean and 90 % interval of the population parameters, in the signal's unit where one applies."""
        rows = []
        for name in ("mu_baseline", "mu_cos", "mu_sin", "mu_log_rate", "mu_log_sd", "noise"):
            v = np.atleast_2d(self.draws[name].T).T
            for k in range(v.shape[1]):
                x = v[:, k]
                if name in ("mu_baseline",):
                    x = self.center + self.scale * x
                elif name in ("mu_cos", "mu_sin", "noise"):
                    x = self.scale * x
                elif name == "mu_log_sd":
                    x = np.log(self.scale) + x
                label = f"noise[{self.devices[k]}]" if name == "noise" else name
                rows.append((label, x.mean(), *np.quantile(x, [0.05, 0.95])))
        return pd.DataFrame(rows, columns=["parameter", "mean", "q05", "q95"]).set_index("parameter")


def fit_signal(frame: pd.DataFrame, signal: str, *, sampler: SamplerConfig | None = None,
               gate: ConvergenceGate | None = None, noise_scale: float = 0.5,
               structure: Structure | None = None) -> SignalFit:
    """Fit the hierarchical model of `signal` to the usable rows of the canonical stream `frame` with NUTS.

    Values are standardised by the cohort median and the within-patient SD (``within_scale``); the
    `structure` (default: ``choose_structure`` of the data: pooled OU for sparse signals, no circadian term
    where the hours of day do not cover the circle) is kept on the fit. Returns the fit always; one that
    fails its convergence gate emits a ``ConvergenceWarning`` naming the signal, what failed and what to
    try, and ``fit.ok`` is False (``MonitorTwin`` marks every alert from it). `noise_scale` is the
    HalfNormal scale of each device's noise SD in standardised units (per-patient OU only).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> frame = pd.DataFrame({"patient": np.repeat(["A", "B"], 30), "signal": "heart_rate",
    ...                       "time_h": np.tile(np.arange(30.0), 2), "value": rng.normal(70, 3, 60),
    ...                       "device": "watch"})
    >>> fit = fit_signal(frame, "heart_rate", sampler=SamplerConfig(chains=2, warmup=100, draws=100))  # doctest: +SKIP
    >>> fit.params(["A", "new"], 10).baseline.shape  # doctest: +SKIP
    (2, 10)
    """
    sampler = sampler or SamplerConfig.default()
    data = signal_arrays(frame, signal, scale=within_scale(frame, signal))
    structure = structure or choose_structure(data)
    args = (jnp.asarray(data.t), jnp.asarray((data.y - data.center) / data.scale), jnp.asarray(data.dev),
            jnp.asarray(data.mask), jnp.full((len(data.devices),), noise_scale))
    start = time.perf_counter()
    mcmc = run_nuts(functools.partial(monitor_model, structure=structure), args, sampler)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items() if not k.startswith("z_")}
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    wall = time.perf_counter() - start  # after the draws are on the host: JAX dispatches asynchronously
    dims = {name: ["patient"] for name in PATIENT_SITES} | {"noise": ["device"], "noise_ratio": ["extra_device"]}
    idata = az.from_dict(posterior=samples, sample_stats={"diverging": extra["diverging"], "energy": extra["energy"]},
                         coords={"patient": list(data.patients), "device": list(data.devices),
                                 "extra_device": list(data.devices[1:])},
                         dims={k: v for k, v in dims.items() if k in samples})
    idata.posterior.attrs.update({"signal": signal, "center": data.center, "scale": data.scale,
                                  "units": "standardised: (value - center) / scale; rate 1/h",
                                  "structure": repr(structure)})
    report = check_convergence(idata, var_names=_checked_sites(structure), gate=gate)
    if not report.ok:
        warnings.warn(f"monitoring model of signal {signal!r} ({len(data.patients)} patients, {structure}) FAILED "
                      f"its convergence gate; its alerts are marked as coming from a failed fit:\n{report.format()}",
                      ConvergenceWarning, stacklevel=2)
    log.info("monitor fit %s: %s (%.1f s)", signal, report.format().splitlines()[0], wall)
    draws = {k: v.reshape(-1, *v.shape[2:]) for k, v in samples.items()}
    n = draws["mu_baseline"].shape[0]
    for name in POPULATION_SITES:  # pooled or absent parts: a zero between-patient SD / a zero circadian mean
        draws.setdefault(name, np.zeros(n))
    return SignalFit(signal, data.patients, data.devices, data.center, data.scale, idata, report, draws,
                     data.offsets, wall, structure)


def assumed_fit(frame: pd.DataFrame, signal: str, n_draws: int = 16, *, seed: int = 3) -> SignalFit:
    """A ``SignalFit`` with ASSUMED parameters, no sampling: for simulations, throughput runs and tests.

    The population sits near the data in standardised units (baseline mean ~0, circadian cosine 0.2, rate
    0.3/h, OU SD 0.7, device noise 0.4); each patient's baseline is jittered around it. The diagnostics say
    "assumed, not fitted": never use it for a patient.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> frame = pd.DataFrame({"patient": np.repeat(["A", "B"], 5), "signal": "heart_rate",
    ...                       "time_h": np.tile(np.arange(5.0), 2), "value": 70.0 + np.arange(10.0),
    ...                       "device": "watch"})
    >>> fit = assumed_fit(frame, "heart_rate", n_draws=4)
    >>> fit.draws["baseline"].shape, fit.params(["A", "new"], 4).baseline.shape
    ((4, 2), (2, 4))
    """
    data = signal_arrays(frame, signal)
    k, n, rng = len(data.patients), n_draws, np.random.default_rng(seed)
    d = {"mu_baseline": rng.normal(0, 0.05, n), "sd_baseline": np.full(n, 0.5), "mu_cos": np.full(n, 0.2),
         "mu_sin": np.zeros(n), "sd_circadian": np.full(n, 0.05), "mu_log_rate": np.full(n, np.log(0.3)),
         "sd_log_rate": np.full(n, 0.1), "mu_log_sd": np.full(n, np.log(0.7)), "sd_log_sd": np.full(n, 0.1),
         "noise": np.full((n, len(data.devices)), 0.4)}
    d |= {"baseline": rng.normal(0, 0.3, (n, k)), "cos": np.full((n, k), 0.2), "sin": np.zeros((n, k)),
          "rate": np.exp(rng.normal(np.log(0.3), 0.1, (n, k))), "sd": np.full((n, k), 0.7)}
    report = ConvergenceReport(ok=True, table=pd.DataFrame({"r_hat": [1.0], "note": ["assumed, not fitted"]}),
                               divergences=0, bfmi=())
    return SignalFit(signal, data.patients, data.devices, data.center, data.scale, None, report,  # type: ignore[arg-type]
                     d, data.offsets)
