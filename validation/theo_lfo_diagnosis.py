"""Why do theophylline's later concentrations sit above the leave-future-out forecasts? (issue 5, brief CAL)

Runs the theophylline leave-future-out study (seed 0, twins conditioned on the first k samples, population
4 x (1000 + 1000), target 0.95; ``make validate`` leaves one patient out: ``--folds 12``) and prints, with
numbers:

1. each fold's population posterior medians (tv_ka, tv_cl, tv_v, omegas, sigmas) beside the full-data fit's;
2. per patient: the twin's posterior medians of ka, CL, V beside the full-data fit's per-patient estimates
   (what all 11 samples say), and the median prediction error of the later samples;
3. PIT, coverage and prediction error by time since the dose;
4. the coverage with its patient-cluster bootstrap interval;
5. with ``--ks 1,2,3,5``: coverage, CRPS and MDAPE against the conditioning size, on each k's own held-out set
   and on the observations after the largest k (the fold populations are fitted once for every k).

Usage: ``python validation/theo_lfo_diagnosis.py [--spec theophylline_lag] [--k 3] [--ks 1,2,3,5] [--folds 3]
[--full] [--out file.csv]``.
One heavy process: ~3-4 min on a loaded 2-core machine per 3-fold study; ~10 min for 12 folds (one population
fit per patient, ~47 s each at load ~5).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Run the study and print the diagnosis tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="theophylline_combined", help="module in model_specs/")
    parser.add_argument("--k", type=int, default=3, help="the conditioning size the tables are printed for")
    parser.add_argument("--ks", default="", help="also these conditioning sizes, e.g. 1,2,3,5 (curve)")
    parser.add_argument("--folds", type=int, default=3, help="patient folds (12: leave one patient out)")
    parser.add_argument("--out", default="")
    parser.add_argument("--full", action="store_true", help="also fit the full data for comparison")
    a = parser.parse_args()

    from bayestwin.data import load_dataset
    from bayestwin.inference import SamplerConfig, fit_population
    from bayestwin.validation.conditioning import conditioning_curve

    spec = importlib.import_module(f"model_specs.{a.spec}").spec()
    theo = load_dataset("theo_sd")
    sampler = SamplerConfig(chains=4, warmup=1000, draws=1000, target_accept=0.95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ks = sorted({a.k, *(int(k) for k in a.ks.split(",") if k)})
        curve = conditioning_curve(spec, theo, ks, n_folds=a.folds, population_sampler=sampler, dataset="theo_sd")
    res = curve.results[a.k]
    pd.set_option("display.width", 200)
    print(res.format())
    print(*res.notes, sep="\n")
    pops = res.populations
    if a.full:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = fit_population(spec, theo, sampler=sampler)
        draws = full.population_draws()
        pops = pd.concat([pops, pd.DataFrame([{"train_patients": full.n_patients, "ok": full.ok,
                                               "max_rhat": full.diagnostics.max_rhat,
                                               "divergences": full.diagnostics.divergences}
                                              | {k: float(np.median(v)) for k, v in draws.items()
                                                 if np.ndim(v) == 1}], index=pd.Index(["all"], name="fold"))])
        post = full.idata.posterior
        per = pd.DataFrame({f"all_{n}": post[n].median(("chain", "draw")).to_numpy() for n in spec.bsv_parameters},
                           index=[int(float(x)) for x in post["patient"].to_numpy()])
    print("\nPopulation posterior medians per fold (and the full-data fit):")
    print(pops.round(4).to_string())

    p = res.predictions.copy()
    p["pe"] = (p["twin_median"] - p["dv"]) / p["dv"]
    p["pe_pop"] = (p["population_median"] - p["dv"]) / p["dv"]
    twin_cols = [f"twin_{n}" for n in spec.bsv_parameters]
    pt = p.groupby("patient").agg(fold=("fold", "first"), WT=("WT", "first"),
                                  **{c: (c, "first") for c in twin_cols},
                                  mdpe_twin=("pe", "median"), mdpe_pop=("pe_pop", "median"),
                                  pit_mean=("pit", "mean"), cov80=("in_0.8", "mean"), cov95=("in_0.95", "mean"))
    if a.full:
        pt = pt.join(per)
    print("\nPer patient: twin posterior medians (first k samples) vs the full-data fit, later-sample errors:")
    print(pt.round(3).to_string())

    bands = pd.cut(p["time"], [0, 1.5, 4, 8, 13, 30])
    bt = p.groupby(bands, observed=True).agg(n=("pit", "size"), pit_mean=("pit", "mean"),
                                             pit_top10=("pit", lambda x: float((x > 0.9).mean())),
                                             pit_bot10=("pit", lambda x: float((x < 0.1).mean())),
                                             cov80=("in_0.8", "mean"), cov95=("in_0.95", "mean"),
                                             mdpe_twin=("pe", "median"), mdpe_pop=("pe_pop", "median"))
    print("\nBy time since the dose (h):")
    print(bt.round(3).to_string())
    print("\nCoverage with patient-cluster bootstrap 95 % intervals:")
    print(res.coverage().round(3).to_string())
    print("PIT histogram:", res.pit_histogram().tolist())
    if len(ks) > 1:
        print("\nAgainst the conditioning size k, each k on its own held-out set:")
        print(curve.table().round(3).to_string())
        print(f"\nOn the observations after the first {curve.common_after} (every k):")
        print(curve.table(common=True).round(3).to_string())
    if a.out:
        p.to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
