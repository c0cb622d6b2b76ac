"""Cold vs warm start (issue 9): from ``import bayestwin`` to the first forecast, in two fresh processes.

Both processes use the same JAX persistent compilation cache directory (a new temporary one, empty before the
first), enabled as the command line enables it (``bayestwin.cli.jaxcache.enable_compilation_cache``). Each
process: imports bayestwin, reads a population posterior (theophylline spec fitted to theo_sd by this script
beforehand, saved as NetCDF), fits the twin of theo_sd subject 1 (``Twin.fit``, 4 chains x 1000 warm-up +
1000 draws) and forecasts 0-72 h. The first process compiles and fills the cache; the second reads it.
Output: a section of ``docs/benchmarks.md`` (unless ``--no-write``).

Usage: ``python benchmarks/cold_warm_start.py [--no-write]`` (about 3 minutes).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import time
start = time.perf_counter()
import json, sys, warnings
sys.path.insert(0, {root!r})
import numpy as np, arviz as az
import bayestwin
from bayestwin.cli.jaxcache import enable_compilation_cache
cache = enable_compilation_cache()
imported = time.perf_counter() - start
from model_specs.theophylline import spec as theophylline_spec
from bayestwin.data import load_dataset
from bayestwin.diagnostics.convergence import check_convergence
from bayestwin.inference import PopulationFit, SamplerConfig
from bayestwin.inference.fit import checked_quantities
from bayestwin.twin import Twin
spec = theophylline_spec()
idata = az.from_netcdf({posterior!r})
pop = PopulationFit(spec=spec, idata=idata, diagnostics=check_convergence(idata, checked_quantities(spec, idata)),
                    arrays=None, data_digest="sha256:benchmark", fit_id="fit-benchmark", wall_time_s=0.0,
                    sampler=SamplerConfig())
loaded = time.perf_counter() - start
twin = Twin(spec, population=pop, sampler=SamplerConfig(chains=4, warmup=1000, draws=1000)).fit(
    load_dataset("theo_sd").patient(1))
fitted = time.perf_counter() - start
forecast = twin.forecast(np.arange(0.0, 73.0))
done = time.perf_counter() - start
print(json.dumps({{"import_s": imported, "population_s": loaded, "fit_s": fitted, "forecast_s": done,
                  "cache": str(cache), "gate": twin.diagnostics_.ok}}))
'''


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true", help="do not write the section of docs/benchmarks.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import warnings

    from model_specs.theophylline import spec as theophylline_spec

    from bayestwin.data import load_dataset
    from bayestwin.inference import SamplerConfig, fit_population

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        pop = fit_population(theophylline_spec(), load_dataset("theo_sd"),
                             sampler=SamplerConfig(chains=4, warmup=1000, draws=1000))
        posterior = Path(tmp) / "population.nc"
        pop.idata.to_netcdf(str(posterior))
        cache = Path(tmp) / "jax-cache"
        env = dict(os.environ, BAYESTWIN_JAX_CACHE=str(cache), PYTHONWARNINGS="ignore")
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        runs = []
        for label in ("cold", "warm"):
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), posterior=str(posterior))],
                                 env=env, capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["process_s"] = time.perf_counter() - started
            result["label"] = label
            runs.append(result)
            print(label, result, flush=True)
        files = sum(1 for _ in cache.rglob("*") if _.is_file())
    cold, warm = runs
    lines = [
        "## Cold vs warm start: import to first forecast (issue 9)", "",
        f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} cores (shared "
        f"with other jobs: load average {os.getloadavg()[0]:.1f} at the end); Python {platform.python_version()}; "
        + ", ".join(f"{p} {md.version(p)}" for p in ("jax", "numpyro", "arviz")), "",
        "Two fresh processes, one after the other, with the same JAX persistent compilation cache (empty before "
        f"the first; {files} files after): import bayestwin, read the theophylline population posterior (NetCDF), "
        "Twin.fit of theo_sd subject 1 (4 chains x 1000 warm-up + 1000 draws), forecast 0-72 h. Times from the "
        "start of the script in the child (the interpreter's own start-up is in 'process').", "",
        "| start | import | + population | + twin fit | + forecast (total) | process |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['label']} | {r['import_s']:.1f} s | {r['population_s']:.1f} s | {r['fit_s']:.1f} s | "
                     f"**{r['forecast_s']:.1f} s** | {r['process_s']:.1f} s |")
    ratio = warm["forecast_s"] / cold["forecast_s"]
    met = "met" if warm["forecast_s"] <= 5.0 else "NOT met"
    lines += ["", "The persistent cache saves XLA compilation only: Python tracing and lowering of the twin's "
              "programs, and the sampling itself, still run in the warm process.", "",
              f"Warm / cold: {ratio:.2f}; target <= 5 s warm: {met} on this (shared) machine.", ""]
    print("\n".join(lines))
    if not args.no_write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from update_vs_refit import write_section

        write_section(ROOT / "docs" / "benchmarks.md", lines)


if __name__ == "__main__":
    main()
