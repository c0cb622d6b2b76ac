"""The peer-benchmark model (issue 9) written once per engine, its simulated data and its starting points.

Hierarchical one-compartment oral PK, one oral dose per patient (320 mg at t = 0, ten samples 0.25-24 h),
the ``model_specs.oral_1cpt`` spec: log-normal typical values (ka median 1.5 /h SD 1, CL 3 L/h SD 1, V 50 L SD
0.5), half-normal BSV SDs (1, 0.5, 0.5), centred log-normal random effects ``eta`` (patient x 3), proportional
residual error ``y ~ Normal(c, sigma_prop * c)`` with ``sigma_prop ~ HalfNormal(0.5)``. Every engine samples
the same unconstrained coordinates: log of the seven positive population parameters and the ``eta`` matrix.

Flip-flop guard: the V prior (SD 0.5 on the log scale around 50 L) puts the swapped mode (ka and ke exchanged,
V about 70 L x ke / ka ~ 4 L) about 5 prior SDs out, and every chain starts at the prior medians (ka 1.5 /h,
ke = 3 / 50 = 0.06 /h), jittered by U(-0.5, 0.5) on the unconstrained scale, with every random effect at 0:
the same rule as bayestwin's ``init_near_prior_median``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TIMES = np.array([0.25, 0.5, 1.0, 2.0, 3.5, 5.0, 7.0, 9.0, 12.0, 24.0])
DOSE = 320.0
TRUTH = {"tv_ka": 1.0, "tv_cl": 4.1, "tv_v": 68.4, "omega_ka": 0.3, "omega_cl": 0.25, "omega_v": 0.2,
         "sigma_prop": 0.1}
PARAMS = ("ka", "cl", "v")
TV_PRIOR = {"ka": (1.5, 1.0), "cl": (3.0, 1.0), "v": (50.0, 0.5)}  # (median, log-scale SD)
OMEGA_PRIOR = {"ka": 1.0, "cl": 0.5, "v": 0.5}  # half-normal scales
SIGMA_PRIOR = 0.5
POPULATION = ("tv_ka", "tv_cl", "tv_v", "omega_ka", "omega_cl", "omega_v", "sigma_prop")
JITTER = 0.5


def simulate(n: int, seed: int = 20261127) -> dict[str, np.ndarray]:
    """`n` patients' data: flat observation arrays ``pid`` (0-based), ``t``, ``y`` and per-patient ``dose``.

    Values are rounded to 6 significant digits so that every engine (and bayestwin's CSV-like table) gets the
    same numbers.
    """
    rng = np.random.default_rng(seed)
    eta = rng.normal(size=(n, 3)) * np.array([TRUTH[f"omega_{p}"] for p in PARAMS])
    ka, cl, v = (TRUTH[f"tv_{p}"] * np.exp(eta[:, j]) for j, p in enumerate(PARAMS))
    ke = cl / v
    conc = DOSE * ka[:, None] / (v[:, None] * (ka - ke)[:, None]) * (
        np.exp(-ke[:, None] * TIMES) - np.exp(-ka[:, None] * TIMES))
    y = conc * (1.0 + TRUTH["sigma_prop"] * rng.normal(size=conc.shape))
    y = np.abs(y)  # a 10 % proportional error never crosses zero in practice; keep the sign rule explicit
    y = np.array([float(f"{v:.6g}") for v in y.ravel()])
    return {"pid": np.repeat(np.arange(n), TIMES.size), "t": np.tile(TIMES, n), "y": y,
            "dose": np.full(n, DOSE)}


def nonmem_frame(data: dict[str, np.ndarray]) -> pd.DataFrame:
    """The same data as NONMEM rows (ID, TIME, EVID, AMT, DV) for bayestwin's ``read_nonmem``."""
    rows = []
    for i, dose in enumerate(data["dose"]):
        rows.append({"ID": i + 1, "TIME": 0.0, "EVID": 1, "AMT": float(dose), "DV": "."})
        sel = data["pid"] == i
        rows += [{"ID": i + 1, "TIME": float(t), "EVID": 0, "AMT": 0.0, "DV": float(y)}
                 for t, y in zip(data["t"][sel], data["y"][sel], strict=True)]
    return pd.DataFrame(rows)


def prior_medians() -> dict[str, float]:
    """Prior median of each population parameter (half-normal median: 0.6745 x scale)."""
    med = {f"tv_{p}": TV_PRIOR[p][0] for p in PARAMS}
    med |= {f"omega_{p}": 0.6744897501960817 * OMEGA_PRIOR[p] for p in PARAMS}
    med["sigma_prop"] = 0.6744897501960817 * SIGMA_PRIOR
    return med


def initial_values(n: int, chains: int, seed: int) -> list[dict[str, np.ndarray | float]]:
    """One start per chain (constrained values): prior medians x exp(U(-0.5, 0.5)), every eta 0."""
    rng = np.random.default_rng(seed)
    med = prior_medians()
    return [{k: float(med[k] * math.exp(rng.uniform(-JITTER, JITTER))) for k in POPULATION}
            | {"eta": np.zeros((n, 3))} for _ in range(chains)]


def numpyro_model(pid, t, y, dose, n: int) -> None:
    """The model in NumPyro, written directly (flat observations, gather by patient index)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    tv = {p: numpyro.sample(f"tv_{p}", dist.LogNormal(math.log(TV_PRIOR[p][0]), TV_PRIOR[p][1])) for p in PARAMS}
    omega = jnp.stack([numpyro.sample(f"omega_{p}", dist.HalfNormal(OMEGA_PRIOR[p])) for p in PARAMS])
    sigma = numpyro.sample("sigma_prop", dist.HalfNormal(SIGMA_PRIOR))
    with numpyro.plate("patient", n):
        eta = numpyro.sample("eta", dist.Normal(jnp.zeros(3), omega).to_event(1))
    ka, cl, v = (tv[p] * jnp.exp(eta[:, j]) for j, p in enumerate(PARAMS))
    ka, ke, v = ka[pid], (cl / v)[pid], v[pid]
    conc = dose[pid] * ka / (v * (ka - ke)) * (jnp.exp(-ke * t) - jnp.exp(-ka * t))
    numpyro.sample("y", dist.Normal(conc, sigma * conc), obs=y)


def pymc_model(data: dict[str, np.ndarray]):
    """The model in PyMC (returns the ``pm.Model``; value variables ``<name>_log__`` and ``eta``)."""
    import pymc as pm
    import pytensor.tensor as pt

    n = data["dose"].size
    pid = data["pid"]
    with pm.Model() as model:
        tv = {p: pm.LogNormal(f"tv_{p}", mu=math.log(TV_PRIOR[p][0]), sigma=TV_PRIOR[p][1]) for p in PARAMS}
        omega = pt.stack([pm.HalfNormal(f"omega_{p}", sigma=OMEGA_PRIOR[p]) for p in PARAMS])
        sigma = pm.HalfNormal("sigma_prop", sigma=SIGMA_PRIOR)
        eta = pm.Normal("eta", mu=0.0, sigma=omega, shape=(n, 3))
        ka, cl, v = (tv[p] * pt.exp(eta[:, j]) for j, p in enumerate(PARAMS))
        ka, ke, v = ka[pid], (cl / v)[pid], v[pid]
        conc = data["dose"][pid] * ka / (v * (ka - ke)) * (pt.exp(-ke * data["t"]) - pt.exp(-ka * data["t"]))
        pm.Normal("y", mu=conc, sigma=sigma * conc, observed=data["y"])
    return model


_STAN_TEMPLATE = """
data {
  int<lower=1> N;
  int<lower=1> M;
  array[M] int<lower=1, upper=N> pid;
  vector[M] t;
  vector[M] y;
  vector[N] dose;
}
parameters {
  real<lower=0> tv_ka;
  real<lower=0> tv_cl;
  real<lower=0> tv_v;
  real<lower=0> omega_ka;
  real<lower=0> omega_cl;
  real<lower=0> omega_v;
  real<lower=0> sigma_prop;
  matrix[N, 3] eta;
}
model {
  tv_ka ~ lognormal(log(%(ka_m)r), %(ka_s)r);
  tv_cl ~ lognormal(log(%(cl_m)r), %(cl_s)r);
  tv_v ~ lognormal(log(%(v_m)r), %(v_s)r);
  omega_ka ~ normal(0, %(ka_o)r);
  omega_cl ~ normal(0, %(cl_o)r);
  omega_v ~ normal(0, %(v_o)r);
  sigma_prop ~ normal(0, %(sig)r);
  eta[:, 1] ~ normal(0, omega_ka);
  eta[:, 2] ~ normal(0, omega_cl);
  eta[:, 3] ~ normal(0, omega_v);
  {
    vector[N] ka_i = tv_ka * exp(eta[:, 1]);
    vector[N] v_i = tv_v * exp(eta[:, 3]);
    vector[N] ke_i = tv_cl * exp(eta[:, 2]) ./ v_i;
    vector[M] ka = ka_i[pid];
    vector[M] ke = ke_i[pid];
    vector[M] conc = dose[pid] .* ka ./ (v_i[pid] .* (ka - ke)) .* (exp(-ke .* t) - exp(-ka .* t));
    y ~ normal(conc, sigma_prop * conc);
  }
}
"""
_STAN_VALUES = {"ka_m": TV_PRIOR["ka"][0], "ka_s": TV_PRIOR["ka"][1], "cl_m": TV_PRIOR["cl"][0],
                "cl_s": TV_PRIOR["cl"][1], "v_m": TV_PRIOR["v"][0], "v_s": TV_PRIOR["v"][1],
                "ka_o": OMEGA_PRIOR["ka"], "cl_o": OMEGA_PRIOR["cl"], "v_o": OMEGA_PRIOR["v"], "sig": SIGMA_PRIOR}
STAN_CODE = _STAN_TEMPLATE % _STAN_VALUES  # %-formatting leaves the braces of Stan literal


def stan_data(data: dict[str, np.ndarray]) -> dict:
    """The Stan data block's values (1-based patient index)."""
    return {"N": int(data["dose"].size), "M": int(data["y"].size), "pid": (data["pid"] + 1).tolist(),
            "t": data["t"].tolist(), "y": data["y"].tolist(), "dose": data["dose"].tolist()}
