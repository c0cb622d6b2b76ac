"""The end-to-end demo behind ``make demo``: a theophylline twin, from raw data to a forecast.

1. Read and validate the real theophylline data (12 adults, one oral dose, 11 samples each).
2. Fit the population model on 11 subjects with NUTS; show estimates with units and the
   convergence gate next to the published nlmixr2 estimates.
3. Build the twin of the 12th subject from its first 3 concentrations only.
4. Forecast the rest of its profile with intervals; compare with what was measured later.
5. Save the plot and the forecast JSON; print the wall time of each step.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["load_spec_file", "run_demo"]

#: nlmixr2 SAEM estimates and 95% CIs for theo_sd (the data README's reference table).
NLMIXR2 = {"tv_ka": (1.57, 1.07, 2.31), "tv_cl": (2.76, 2.34, 3.26), "tv_v": (31.5, 28.8, 34.4),
           "sigma_add": (0.693, None, None)}


def load_spec_file(path: str | Path) -> Any:
    """Import a Python spec file (e.g. ``model_specs/theophylline.py``) and return its ``spec()``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"spec file {path} not found; from the repo root pass "
                                "--spec model_specs/theophylline.py")
    module_spec = importlib.util.spec_from_file_location(f"bayestwin_user_spec_{path.stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module.spec()


def _step(title: str, timings: list[tuple[str, float]]) -> Callable[[Callable[[], Any]], Any]:
    def run(fn: Callable[[], Any]) -> Any:
        print(f"\n== {title}", flush=True)
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        timings.append((title, elapsed))
        print(f"   ({elapsed:.1f} s)", flush=True)
        return out

    return run


def run_demo(spec_path: str | Path, output: str | Path = "demo_output") -> int:
    """Run the twin demo with the spec in `spec_path`; write files under `output`; return 0 on success."""
    import warnings

    from bayestwin.data import load_dataset
    from bayestwin.exceptions import ConvergenceWarning
    from bayestwin.inference import SamplerConfig, fit_population
    from bayestwin.twin import Twin

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    timings: list[tuple[str, float]] = []
    pd.set_option("display.width", 140)
    pd.set_option("display.precision", 3)
    import sys

    # numpyro's per-chain progress bars when a person is watching (a terminal), not in logs or CI
    sampler = SamplerConfig.default(progress_bar=sys.stderr.isatty())
    print("bayestwin demo: a digital twin of a patient on theophylline (an asthma drug), built from a "
          "population model\nand the patient's own first three blood samples, forecasting the rest of the profile.\n"
          f"NUTS settings: {sampler.chains} chains x ({sampler.warmup} warm-up + {sampler.draws} draws)")

    def read() -> Any:
        table = load_dataset("theo_sd")
        print(table.describe())
        return table

    theo = _step("1. Read and validate the data (dose in mg, concentrations in mg/L, time in h)", timings)(read)
    spec = load_spec_file(spec_path)
    held_out_id = 12
    cohort = theo.exclude(theo.frame["id"] == held_out_id, reason=f"subject {held_out_id} is the demo's patient")

    def population() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("default", ConvergenceWarning)
            fit = fit_population(spec, cohort, sampler=sampler)
        table = fit.summary()[["unit", "mean", "sd", "hdi_2.5%", "hdi_97.5%", "ess_bulk", "r_hat"]]
        ref = pd.DataFrame({k: {"nlmixr2": v[0], "nlmixr2 95% CI": "-" if v[1] is None else f"{v[1]}-{v[2]}"}
                            for k, v in NLMIXR2.items()}).T
        print(table.join(ref).to_string())
        print("   " + fit.diagnostics.format().replace("\n", "\n   "))
        return fit

    pop = _step(f"2. Fit the population model '{spec.name}' to 11 subjects (NUTS)", timings)(population)

    patient = theo.patient(held_out_id)
    obs_rows = patient.frame.index[(patient.frame["evid"] == 0)]
    later = patient.frame.index.isin(obs_rows[3:])
    first_three = patient.exclude(later, reason="measured after the twin is built")

    def build() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("default", ConvergenceWarning)
            twin = Twin(spec, population=pop, sampler=sampler, override_convergence=not pop.ok).fit(first_three)
        print(f"   {twin}")
        draws = twin.idata_.posterior[list(spec.parameter_names)].to_dataframe()
        print(draws.quantile([0.05, 0.5, 0.95]).rename(index=lambda q: f"{q:.0%}").to_string())
        return twin

    twin = _step(f"3. Build the twin of subject {held_out_id} from its first 3 samples "
                 f"({', '.join(f'{t:g} h' for t in first_three.observations['time'])})", timings)(build)

    def forecast() -> Any:
        measured = patient.observations[["time", "dv"]].iloc[3:].reset_index(drop=True)
        override = not (twin.diagnostics_.ok and pop.ok)
        fc = twin.forecast(measured["time"].to_numpy(), override_convergence=override)
        table = fc.interval(0.8).drop(columns=["output"])
        wide = fc.interval(0.95)
        table.insert(4, "lower_95", wide["lower"])
        table.insert(5, "upper_95", wide["upper"])
        table["measured"] = measured["dv"].to_numpy()
        table["in 80%"] = (table["measured"] >= table["lower"]) & (table["measured"] <= table["upper"])
        table["in 95%"] = (table["measured"] >= table["lower_95"]) & (table["measured"] <= table["upper_95"])
        print("   forecast of a new measurement (80% and 95% intervals) next to what was measured later:")
        print(table.rename(columns={"lower": "lower_80", "upper": "upper_80"}).to_string(index=False))
        print(f"   {int(table['in 80%'].sum())}/{len(table)} inside the 80% interval, "
              f"{int(table['in 95%'].sum())}/{len(table)} inside the 95% interval; status: "
              f"{fc.metadata['diagnostics']['status']}")
        return fc, measured

    fc, measured = _step("4. Forecast the rest of the profile", timings)(forecast)

    def save() -> None:
        grid = twin.forecast(np.linspace(0.0, 25.0, 101), override_convergence=not (twin.diagnostics_.ok and pop.ok))
        (out / "forecast_subject12.json").write_text(fc.to_json(), encoding="utf-8")
        try:
            from bayestwin.plotting import plot_forecast

            plot_forecast(grid, used=first_three.observations[["time", "dv"]], held_out=measured,
                          title=f"Twin of theophylline subject {held_out_id}: built from 3 samples",
                          path=out / "forecast_subject12.png")
            print(f"   wrote {out / 'forecast_subject12.png'} and {out / 'forecast_subject12.json'}")
        except ImportError as err:
            print(f"   wrote {out / 'forecast_subject12.json'}; no plot ({err})")

    _step("5. Save the plot and the forecast document", timings)(save)
    print("\nWall time per step:")
    for title, seconds in timings:
        print(f"   {seconds:7.1f} s  {title.split(' (')[0]}")
    return 0
