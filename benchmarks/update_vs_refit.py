"""Warm twin update vs cold refit, in one script (issue 6's benchmark; not a test).

A one-compartment oral twin (theophylline spec) of a simulated patient who takes 100 mg every 12 h for
10 days and has 48 concentrations; the population comes from theo_sd (all 12 subjects). The twin is fitted
cold to the first 24 concentrations, then updated with the other 24 one by one (``Twin.update``: warm start,
program compiled once per size bucket). Each update is timed, and so is a cold refit on the same data
(``Twin.fit``: numpyro ``MCMC.run``, which traces and compiles its sampler on every call). Output: a markdown
section written to ``docs/benchmarks.md`` (the page keeps one section per benchmark script) and printed.

Usage: ``python benchmarks/update_vs_refit.py`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_specs.theophylline import spec as theophylline_spec  # noqa: E402

from bayestwin.data import load_dataset, read_nonmem  # noqa: E402
from bayestwin.dynamics.events import bucket_size  # noqa: E402
from bayestwin.inference import SamplerConfig, fit_population  # noqa: E402
from bayestwin.twin import Twin  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import _cores, write_section  # noqa: E402  (re-exported: other scripts import them from here)

SAMPLER = SamplerConfig(chains=4, warmup=500, draws=1000, seed=0)


def patient(n_obs: int = 48, seed: int = 0) -> pd.DataFrame:
    """One simulated patient (NONMEM rows): 100 mg orally every 12 h, `n_obs` concentrations over 10 days."""
    rng = np.random.default_rng(seed)
    ka, cl, v = 1.5, 2.8, 32.0
    doses = np.arange(0.0, 240.0, 12.0)
    times = np.sort(rng.uniform(0.5, 240.0, n_obs)).round(2)
    ke = cl / v
    conc = np.zeros_like(times)
    for d in doses:
        dt = np.clip(times - d, 0.0, None)
        conc += np.where(times > d, 100.0 * ka / (v * (ka - ke)) * (np.exp(-ke * dt) - np.exp(-ka * dt)), 0.0)
    dv = conc + 0.5 * rng.normal(size=n_obs)
    rows = [{"ID": 1, "TIME": t, "EVID": 1, "AMT": 100.0, "DV": "."} for t in doses]
    rows += [{"ID": 1, "TIME": t, "EVID": 0, "AMT": 0.0, "DV": round(float(y), 3)}
             for t, y in zip(times, dv, strict=True)]
    return pd.DataFrame(sorted(rows, key=lambda r: (r["TIME"], -r["EVID"])))


def main() -> None:
    warnings.simplefilter("ignore")
    spec = theophylline_spec()
    pop = fit_population(spec, load_dataset("theo_sd"), sampler=SamplerConfig(chains=4, warmup=1000, draws=1000))
    table = read_nonmem(patient(), units={"time": "h", "amt": "mg", "dv": "mg/L"})
    frame = table.frame
    obs_idx = frame.index[frame["evid"] == 0]
    first = table.exclude(frame.index.isin(obs_idx[24:]), reason="later")
    twin = Twin(spec, population=pop, sampler=SAMPLER).fit(first)
    rows = []
    for k, idx in enumerate(obs_idx[24:]):
        new = table.exclude(~frame.index.isin([idx]), reason="not yet measured")
        started = time.perf_counter()
        twin.update(new)
        rows.append({"observations": 25 + k, "bucket": bucket_size(25 + k), "update_s": time.perf_counter() - started,
                     "mode": twin.update_mode_, "ok": twin.diagnostics_.ok})
    started = time.perf_counter()
    cold = Twin(spec, population=pop, sampler=SAMPLER).fit(twin.events_)
    cold_s = time.perf_counter() - started
    t = pd.DataFrame(rows)
    # the first update compiles the warm program, and so does each one that enters a new size bucket
    new_bucket = t["bucket"].ne(t["bucket"].shift())
    steady = t.loc[~new_bucket, "update_s"]
    lines = [
        "## Warm twin update vs cold refit (issue 6)", "",
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {_cores()} cores; Python "
        f"{platform.python_version()}; " + ", ".join(f"{p} {md.version(p)}" for p in ("jax", "numpyro", "arviz")),
        "", f"One-compartment oral twin (theophylline spec), 48 simulated concentrations; 24 fitted cold, then 24 "
        f"updates of one concentration each; {SAMPLER.chains} chains x {SAMPLER.draws} draws, warm-up "
        f"{SAMPLER.warmup} (cold) / {twin.update_warmup} (warm update).", "",
        f"* warm update within a size bucket ({len(steady)} updates): median **{steady.median():.2f} s**, max "
        f"{steady.max():.2f} s; the {int(new_bucket.sum())} updates that entered a new bucket and compiled: "
        + ", ".join(f"{x:.1f} s" for x in t.loc[new_bucket, "update_s"]),
        f"* cold refit on all 48 concentrations (MCMC.run, compiles): **{cold_s:.1f} s**",
        f"* ratio warm update / cold refit: **{steady.median() / cold_s:.3f}**",
        f"* updates refitted cold after a failed gate: {int((t['mode'] != 'warm').sum())} of {len(t)}; final "
        f"gate: {'passed' if twin.diagnostics_.ok and cold.diagnostics_.ok else 'FAILED'}", "",
    ]
    write_section(ROOT / "docs" / "benchmarks.md", lines)
    print("\n".join(lines))
    print(t.to_string())


if __name__ == "__main__":
    main()
