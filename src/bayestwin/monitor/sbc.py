"""Simulation-based calibration of the monitoring model: static-parameter posterior and Kalman predictive.

For r = 1..R (all replications fitted by ONE compiled NUTS program, ``run_batched_nuts``): draw every
static parameter of ``monitor_model`` from its OWN prior (population and per-patient; standardised units,
the scale the model samples in), simulate readings on a fixed design from the exact model (stationary OU
deviation, ``x' = phi x + N(0, sd^2 (1 - phi^2))``, ``phi = exp(-rate dt)``; circadian term; Gaussian
noise of each reading's device), fit the same model with NUTS to the readings of the training window
(every patient's first ``train`` fraction), and rank each true static parameter among L thinned draws.
When the sampler computes the posterior the model implies, every rank is uniform on {0..L} (Talts et al.
2018). Ranked: every scalar population parameter (both device noises) and the first patient's own
parameters (see ``ranked_quantities``).

Uniformity test and correction: those of ``bayestwin.validation.sbc.SBCResult`` (reused, not copied):
a chi-square test of the ranks in at most 20 equal-width bins (>= 5 expected per bin), Bonferroni over
the Q quantities at family-wise level ``alpha`` (0.01).

Filter calibration (``FilterCalibration``), per replication and patient:

* with the TRUE parameters, the probability integral transforms (PIT) of every reading under the Kalman
  filter's one-step-ahead predictive are iid U(0, 1) exactly (Rosenblatt): tested by the same chi-square;
* with the POSTERIOR (equal-weight mixture over the L draws, each filtered through all readings), the PIT
  of each held-out later reading. For the FIRST held-out reading the mixture is the exact posterior
  predictive (uniform when the posterior is right); later ones condition the deviation, not the static
  parameters, on the held-out readings before them (near-uniform). Reported as coverage of the central
  50/80/95 % predictive intervals with a standard error clustered by replication.

Broken variants (the power check; each must FAIL): ``"noise_prior"`` fits with a device-noise prior scale
x 1/3 (per-patient OU: each device's ``noise ~ HalfNormal(noise_scale / 3)``; pooled OU: the other devices'
``noise_ratio ~ LogNormal(0, 0.5 / 3)``), applied by a NumPyro handler around the unchanged
``monitor_model`` with the factor as data; ``"transition"`` simulates the OU deviation without the
``(1 - phi^2)`` factor of its transition variance (the fit keeps the exact one: the same mismatch as a fit
that dropped it). The transition break only shows where readings are close relative to the OU time scale
(``phi`` near 1): on sparse designs it is weak (measured, pooled OU: 30 replications of 4 patients x 8-14
readings over 72 h, smallest p 0.047, not detected; 100 replications of 10 patients x 4-8, detected, p 6.9e-5
on total_sd). The noise-prior variant is the strong one (same 100: p 1.3e-37).

Examples
--------
>>> design = monitor_design(n_patients=2, n_min=3, n_max=4, seed=0)
>>> design.t.shape, int(design.mask.sum()), sorted(set(design.dev[design.mask].tolist()))
((2, 4), 8, [0, 1])
>>> ranked_quantities(Structure(ou="population", circadian="none"), n_devices=2)
['mu_baseline', 'sd_baseline', 'mu_log_rate', 'total_sd', 'ou_fraction', 'noise_ratio[0]', 'noise[0]', \
'noise[1]', 'baseline[0]']
>>> res = run_monitor_sbc(Structure(), 30)        # doctest: +SKIP
>>> print(res.sbc.format())                       # doctest: +SKIP
SBC monitor[patient OU, patient circadian] (monitor): PASSED -- 30 replications, ...
"""

from __future__ import annotations

import functools
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
from jax.scipy.special import ndtr
from numpyro.infer import Predictive
from numpyro.primitives import Messenger

from bayestwin.exceptions import InputError
from bayestwin.inference.batch import run_batched_nuts
from bayestwin.monitor.kalman import OUParams, filter_series, initial_state, seasonal
from bayestwin.monitor.model import monitor_model
from bayestwin.monitor.structure import Structure
from bayestwin.validation.sbc import SBCResult, _max_rhat

__all__ = ["FilterCalibration", "MonitorDesign", "MonitorSBC", "monitor_design", "ranked_quantities",
           "run_monitor_sbc", "simulate_readings"]

#: The broken variants (module docstring): each must fail.
BROKEN = ("noise_prior", "transition")
#: Central predictive intervals whose PIT coverage is reported.
LEVELS = (0.5, 0.8, 0.95)
_FILTER = ("baseline", "cos", "sin", "rate", "sd")


class MonitorDesign(NamedTuple):
    """A fixed design: (patient, obs) times (h, circadian clock), device index, mask, and training mask."""

    t: np.ndarray
    dev: np.ndarray
    mask: np.ndarray
    train: np.ndarray


def monitor_design(n_patients: int = 6, n_min: int = 24, n_max: int = 48, *, n_devices: int = 2,
                   hours: float = 72.0, train: float = 2.0 / 3.0, seed: int = 0) -> MonitorDesign:
    """`n_patients` series of `n_min`..`n_max` readings at irregular times over `hours`, on `n_devices` devices.

    Times are sorted uniform draws (so the hours of day cover the circle), devices alternate at random
    (every device appears), padding repeats a patient's last time. ``train`` marks every patient's first
    ``ceil(train * n)`` readings (the fit's window); the rest are held out for the predictive check.

    >>> d = monitor_design(3, 5, 8, seed=1)
    >>> d.mask.sum(axis=1).tolist(), bool((d.train <= d.mask).all())
    ([6, 7, 8], True)
    """
    if not 2 <= n_min <= n_max or n_patients < 1 or not 0.0 < train <= 1.0:
        raise InputError(f"monitor_design(n_patients={n_patients}, n_min={n_min}, n_max={n_max}, train={train}): "
                         "need n_patients >= 1, 2 <= n_min <= n_max and 0 < train <= 1")
    rng = np.random.default_rng(seed)
    counts = rng.integers(n_min, n_max + 1, n_patients)
    t = np.zeros((n_patients, n_max))
    dev = np.zeros((n_patients, n_max), np.int64)
    mask = np.arange(n_max)[None, :] < counts[:, None]
    for i, n in enumerate(counts):  # design construction, once (not a hot path)
        times = np.sort(rng.uniform(0.0, hours, n))
        t[i] = np.concatenate([times, np.full(n_max - n, times[-1])])
        dev[i, :n] = rng.permutation(np.arange(n) % n_devices)
    n_train = np.ceil(train * counts).astype(int)
    return MonitorDesign(t, dev, mask, np.arange(n_max)[None, :] < n_train[:, None])


def ranked_quantities(structure: Structure, n_devices: int) -> list[str]:
    """The quantities SBC ranks: scalar population parameters, device noises, the first patient's parameters.

    >>> " ".join(ranked_quantities(Structure(), 1)[-5:])
    'baseline[0] cos[0] sin[0] rate[0] sd[0]'
    """
    s = structure
    names = ["mu_baseline", "sd_baseline"]
    names += [] if s.circadian == "none" else ["mu_cos", "mu_sin"]
    names += ["sd_circadian"] if s.circadian == "patient" else []
    names += ["mu_log_rate"]
    if s.ou == "patient":
        names += ["sd_log_rate", "mu_log_sd", "sd_log_sd"]
    else:
        names += ["total_sd", "ou_fraction"] + [f"noise_ratio[{j}]" for j in range(n_devices - 1)]
    names += [f"noise[{j}]" for j in range(n_devices)] + ["baseline[0]"]
    names += ["cos[0]", "sin[0]"] if s.circadian == "patient" else []
    return names + (["rate[0]", "sd[0]"] if s.ou == "patient" else [])


def _pick(values: dict[str, Any], name: str) -> Any:
    """Quantity `name` (``site`` or ``site[j]``, last axis indexed) of a dict of site values."""
    if name.endswith("]"):
        site, j = name[:-1].split("[")
        return values[site][..., int(j)]
    return values[name]


def _params(v: dict[str, Any]) -> OUParams:
    """OUParams from site values with a trailing patient axis (noise: trailing device axis)."""
    shape = jnp.shape(v["baseline"])
    noise = jnp.broadcast_to(v["noise"][..., None, :], (*shape, v["noise"].shape[-1]))
    return OUParams(*(jnp.broadcast_to(v[n], shape) for n in _FILTER), noise=noise)


def simulate_readings(p: OUParams, t: jax.Array, dev: jax.Array, mask: jax.Array, key: jax.Array, *,
                      broken_transition: bool = False) -> jax.Array:
    """Readings of one series from the exact model: stationary OU deviation at the first time, exact transitions.

    `p` holds scalars (``noise`` per device); padded rows are 0. ``broken_transition`` drops the
    ``(1 - phi^2)`` factor of the transition variance (the broken variant).

    >>> p = OUParams(0.0, 0.0, 0.0, 0.5, 1.0, jnp.array([1e-9]))
    >>> y = simulate_readings(p, jnp.zeros(3), jnp.zeros(3, int), jnp.array([True, True, False]),
    ...                       jax.random.PRNGKey(0))
    >>> bool(abs(y[0] - y[1]) < 1e-6), float(y[2])      # dt = 0: phi = 1, the deviation does not move
    (True, 0.0)
    """
    k_x0, k_x, k_e = jax.random.split(key, 3)
    phi = jnp.exp(-p.rate * jnp.diff(t, prepend=t[:1]))
    innovation = p.sd**2 * (jnp.ones_like(phi) if broken_transition else 1.0 - phi**2)

    def step(x: jax.Array, inp: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        f, v, e = inp
        x = f * x + jnp.sqrt(v) * e
        return x, x

    _, x = jax.lax.scan(step, p.sd * jax.random.normal(k_x0),
                        (phi, innovation, jax.random.normal(k_x, t.shape)))
    y = seasonal(p, t) + x + p.noise[dev] * jax.random.normal(k_e, t.shape)
    return jnp.where(mask, y, 0.0)


class _ScaledNoisePrior(Messenger):
    """Multiply the scale of the device-noise prior (site ``noise``, or ``noise_ratio`` when pooled) by `factor`."""

    def __init__(self, fn: Any, factor: jax.Array) -> None:
        self.factor = factor
        super().__init__(fn)

    def process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample" and msg["name"] in ("noise", "noise_ratio") and not msg["is_observed"]:
            msg["fn"] = _rescaled(msg["fn"], self.factor)


def _rescaled(fn: Any, factor: jax.Array) -> Any:
    if isinstance(fn, dist.ExpandedDistribution):
        return _rescaled(fn.base_dist, factor).expand(fn.batch_shape)
    if isinstance(fn, dist.HalfNormal):
        return dist.HalfNormal(fn.scale * factor)
    if isinstance(fn, dist.LogNormal):
        return dist.LogNormal(fn.loc, fn.scale * factor)
    raise InputError(f"run_monitor_sbc: cannot rescale the noise prior {type(fn).__name__}; monitor_model changed")


def _fit_model(t: jax.Array, y: jax.Array, dev: jax.Array, mask: jax.Array, noise_scale: jax.Array,
               factor: jax.Array, structure: Structure) -> None:
    """``monitor_model`` with its device-noise prior scale multiplied by `factor` (1: the model itself)."""
    with _ScaledNoisePrior(None, factor):
        monitor_model(t, y, dev, mask, noise_scale, structure)


@dataclass(frozen=True)
class FilterCalibration:
    """PIT values of the Kalman one-step-ahead predictive: with the true and with the posterior parameters.

    ``truth_pit``: every reading (flattened); ``first_pit``/``later_pit``: (replication, patient) first
    held-out reading and the (replication, patient, obs) later ones (NaN where absent).
    """

    truth_pit: np.ndarray
    first_pit: np.ndarray
    later_pit: np.ndarray

    def truth_test(self, alpha: float = 0.01) -> dict[str, float]:
        """Chi-square uniformity of the true-parameter PITs (20 bins: the PITs are iid U(0,1) exactly)."""
        from scipy import stats

        observed = np.bincount(np.minimum((self.truth_pit * 20).astype(int), 19), minlength=20)
        expected = self.truth_pit.size / 20
        chi2 = float(((observed - expected) ** 2 / expected).sum())
        p = float(stats.chi2.sf(chi2, 19))
        return {"n": float(self.truth_pit.size), "chi2": chi2, "p_value": p, "passed": float(p >= alpha)}

    def coverage(self) -> pd.DataFrame:
        """Coverage of the central 50/80/95 % intervals: true-parameter, first held-out and all held-out PITs.

        ``se_*``: standard errors clustered by replication (patients within one replication share its
        population posterior); the truth's is binomial (iid).
        """
        rows = []
        for level in LEVELS:
            row: dict[str, float] = {"level": level}
            inside = np.abs(self.truth_pit - 0.5) <= level / 2
            row["truth"], row["se_truth"] = inside.mean(), np.sqrt(level * (1 - level) / inside.size)
            for name, pit in (("first", self.first_pit), ("held_out", self.later_pit)):
                pit = pit.reshape(pit.shape[0], -1)
                ok = ~np.isnan(pit)
                hit = (np.abs(pit - 0.5) <= level / 2) & ok
                cover = hit.sum() / ok.sum()
                per_rep = (hit.sum(axis=1) - cover * ok.sum(axis=1)) / ok.sum() * len(pit)  # ratio estimator
                row[name], row[f"se_{name}"] = cover, float(np.sqrt((per_rep**2).sum()) / len(pit))
            rows.append(row)
        return pd.DataFrame(rows).set_index("level")


@dataclass(frozen=True)
class MonitorSBC:
    """One monitoring-model SBC run: ranks and tests (``sbc``), filter calibration, broken variants' ``SBCResult``."""

    sbc: SBCResult
    filter: FilterCalibration
    structure: Structure
    broken: dict[str, SBCResult]
    settings: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Ranks uniform (Bonferroni), the true-parameter PITs uniform, and every broken variant FAILED."""
        return (self.sbc.ok and bool(self.filter.truth_test(self.sbc.alpha)["passed"])
                and not any(b.ok for b in self.broken.values()))


def _describe(s: Structure) -> str:
    return f"{s.ou} OU, {s.circadian} circadian" + (", centred" if s.centred else "")


def run_monitor_sbc(structure: Structure, n_reps: int, *, design: MonitorDesign | None = None,
                    broken: Sequence[str] = (), broken_reps: int | None = None, noise_scale: float = 0.5,
                    chains: int = 2, warmup: int = 300,
                    draws: int = 250, thin: int = 5, max_tree_depth: int | tuple[int, int] = (6, 8),
                    target_accept: float = 0.9, batch: int = 16, alpha: float = 0.01, seed: int = 0) -> MonitorSBC:
    """SBC of ``monitor_model`` with `structure` on `design` (default ``monitor_design()``), `n_reps` replications.

    The broken variants are fitted in the same compiled program as the good run (their data and noise
    prior scale are arguments): one compilation for everything.

    Parameters
    ----------
    structure : Structure
        What varies per patient, for the simulation and the fit.
    broken : sequence of {"noise_prior", "transition"}
        Deliberately mismatched fits (see the module docstring), each on the first `broken_reps` (default
        all) of the same prior draws; each must fail.
    noise_scale : float
        HalfNormal scale of each device's noise SD (standardised units, per-patient OU), as ``fit_signal``.
    chains, warmup, draws, thin, max_tree_depth, target_accept, batch :
        NUTS per replication (diagonal mass matrix); ranks are among ``chains * (draws // thin)`` draws.
    alpha : float
        Family-wise level of the rank tests (Bonferroni) and the level of the true-parameter PIT test.
    """
    for b in broken:
        if b not in BROKEN:
            raise InputError(f"run_monitor_sbc(broken={tuple(broken)!r}): each variant is one of {BROKEN}")
    started = _time.perf_counter()
    d = design or monitor_design()
    if "noise_prior" in broken and structure.ou != "patient" and d.dev.max() < 1:
        raise InputError("run_monitor_sbc: broken variant 'noise_prior' of the pooled OU structure narrows the "
                         "other devices' noise_ratio prior; give a design with at least 2 devices (n_devices=2)")
    t, dev, mask, train = (jnp.asarray(a) for a in d)
    n_dev, k = int(d.dev.max()) + 1, d.t.shape[0]
    scales = jnp.full((n_dev,), noise_scale)
    model = functools.partial(monitor_model, structure=structure)
    k_prior, k_sim = jax.random.split(jax.random.PRNGKey(seed))
    truth = Predictive(model, num_samples=n_reps)(k_prior, t, jnp.zeros_like(t), dev, mask, scales)
    truth = {key: v for key, v in truth.items() if not key.startswith("z_")}
    rep = lambda a: jnp.broadcast_to(a, (n_reps, *a.shape))  # noqa: E731
    variants: list[str | None] = [None, *broken]
    ys, factors = [], []
    for i, b in enumerate(variants):  # one simulation per variant (vmapped over replication and patient)
        keys = jax.random.split(jax.random.fold_in(k_sim, i), n_reps * k).reshape(n_reps, k, -1)
        sim = jax.vmap(jax.vmap(functools.partial(simulate_readings, broken_transition=b == "transition")))
        ys.append(jax.jit(sim)(_params(truth), rep(t), rep(dev), rep(mask), keys))
        factors.append(jnp.full(n_reps, 1.0 / 3.0 if b == "noise_prior" else 1.0))
    names = ranked_quantities(structure, n_dev)

    def keep(s: dict[str, jax.Array]) -> jax.Array:
        ranked = jnp.stack([jnp.asarray(_pick(s, n), float) for n in names])
        return jnp.concatenate([ranked, *(jnp.broadcast_to(s[n], (k,)) for n in _FILTER),
                                jnp.broadcast_to(s["noise"], (n_dev,))])

    n_fit = int(d.train.sum(axis=1).max())  # the fit sees the training window only: scan that many rows
    n_b = n_reps if broken_reps is None else min(broken_reps, n_reps)
    sizes = [n_reps] + [n_b] * len(broken)
    tile = lambda a: jnp.concatenate([rep(a)[:n] for n in sizes])  # noqa: E731
    data = (tile(t[:, :n_fit]), jnp.concatenate([y[:n, :, :n_fit] for y, n in zip(ys, sizes, strict=True)]),
            tile(dev[:, :n_fit]), tile(train[:, :n_fit]), tile(scales),
            jnp.concatenate([f[:n] for f, n in zip(factors, sizes, strict=True)]))
    out = run_batched_nuts(functools.partial(_fit_model, structure=structure), data,
                           warmup=warmup, draws=draws, chains=chains, thin=thin, keep=keep,
                           max_tree_depth=max_tree_depth, target_accept=target_accept, dense_mass=False, batch=batch,
                           seed=seed + 1, cache_key=("bayestwin.monitor.run_monitor_sbc", structure, n_dev, k))
    q = len(names)
    true_arr = np.stack([np.asarray(_pick(truth, n)) for n in names], axis=-1)
    settings = {"replications": n_reps, "patients": k, "readings": d.mask.sum(axis=1).tolist(),
                "training_readings": d.train.sum(axis=1).tolist(), "devices": n_dev, "chains": chains,
                "warmup": warmup, "draws": draws, "thin": thin, "max_tree_depth": max_tree_depth,
                "target_accept": target_accept, "noise_scale": noise_scale, "seed": seed}
    wall = _time.perf_counter() - started
    results: dict[str | None, SBCResult] = {}
    offsets = np.cumsum([0, *sizes])
    for i, b in enumerate(variants):
        part = slice(offsets[i], offsets[i + 1])
        kept = out.draws[part]  # (replication, chain, draw, quantity + filter params)
        ranks = (kept[..., :q] < true_arr[:sizes[i], None, None, :]).sum(axis=(1, 2))
        reps = pd.DataFrame({"max_rhat": _max_rhat(kept[..., :q]), "divergences": out.divergences[part].sum(axis=1),
                             "mean_steps": out.mean_steps[part].mean(axis=1)})
        label = f"monitor[{_describe(structure)}]" + (f".broken_{b}" if b else "")
        results[b] = SBCResult(model="monitor", spec=label, ranks=pd.DataFrame(ranks, columns=names),
                               n_draws=chains * (draws // thin), replications=reps.rename_axis("replication"),
                               alpha=alpha, wall_s=wall, settings=settings | {"broken": b, "replications": sizes[i]})
    kept = out.draws[:n_reps, ..., q:]
    post = kept.reshape(n_reps, -1, kept.shape[-1])  # (replication, draw, filter params)
    post_vals = {n: jnp.asarray(np.moveaxis(post[..., i * k:(i + 1) * k], 1, 2)) for i, n in enumerate(_FILTER)}
    post_vals["noise"] = jnp.asarray(post[..., 5 * k:])[:, None, :, :]  # (replication, 1, draw, device)
    truth_pit, first_pit, later_pit = (np.asarray(a) for a in _filter_pits(_params(truth), post_vals, ys[0], t, dev,
                                                                          mask, train))
    calib = FilterCalibration(truth_pit[np.broadcast_to(d.mask, truth_pit.shape)], first_pit, later_pit)
    good = results.pop(None)
    return MonitorSBC(good, calib, structure, results, settings | {"wall_s": _time.perf_counter() - started})


@jax.jit
def _filter_pits(truth: OUParams, post: dict[str, jax.Array], y: jax.Array, t: jax.Array, dev: jax.Array,
                 mask: jax.Array, train: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """PITs of the one-step-ahead predictive, all replications at once (vmap over replication, patient, draw)."""
    def pit(p: OUParams, yy: jax.Array, tt: jax.Array, dd: jax.Array, mm: jax.Array) -> jax.Array:
        _, o = filter_series(p, tt, yy, dd, mm, initial_state(p))
        return ndtr((yy - o.pred_mean) / jnp.sqrt(jnp.where(mm, o.pred_var, 1.0)))

    per_patient = jax.vmap(pit, in_axes=(0, 0, 0, 0, 0))
    truth_pit = jax.vmap(per_patient, in_axes=(0, 0, None, None, None))(truth, y, t, dev, mask)
    k = t.shape[0]
    p_post = OUParams(*(post[n] for n in _FILTER), noise=jnp.broadcast_to(
        post["noise"], (*post["baseline"].shape, post["noise"].shape[-1])))
    per_draw = jax.vmap(pit, in_axes=(0, None, None, None, None))
    mix = jax.vmap(jax.vmap(per_draw, in_axes=(0, 0, 0, 0, 0)), in_axes=(0, 0, None, None, None))(
        p_post, y, t, dev, mask).mean(axis=2)  # (replication, patient, obs): equal-weight mixture CDF
    held = mask & ~train
    first = jnp.argmax(held, axis=1)  # first held-out row of each patient
    first_pit = jnp.where(held[jnp.arange(k), first][None], mix[:, jnp.arange(k), first], jnp.nan)
    later = held.at[jnp.arange(k), first].set(False)
    return truth_pit, first_pit, jnp.where(later[None], mix, jnp.nan)
