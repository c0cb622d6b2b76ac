"""Cold vs warm start (issue 9): from ``import bayestwin`` to the first forecast, in two fresh processes.

Both processes use the same JAX persistent compilation cache directory (a new temporary one, empty before the
first), enabled as the command line enables it (``bayestwin.cli.jaxcache.enable_compilation_cache``). Each
process: imports bayestwin, reads a population posterior (theophylline spec fitted to theo_sd by this script
beforehand, saved as NetCDF), fits the twin of theo_sd subject 1 (``Twin.fit``, 4 chains x 1000 warm-up +
1000 draws) and forecasts 0-72 h. The first process compiles and fills the cache; the second reads it.
Output: a section of ``docs/benchmarks.md`` (unless ``--no-write``).

``--baseline COMMIT`` times that commit's bayestwin too (a temporary git worktree, its own empty cache), in the
same run, first. The current version is HEAD, also from a temporary worktree (other work in this checkout
cannot change the sources between the cold and the warm process: the saved twin program is keyed by a digest
of bayestwin's sources); ``--working-tree`` times the checkout as it is instead (where git is not at hand).
Each child also reports which heavy optional modules it had imported (arviz, matplotlib, numba, diffrax,
pymc, xarray, dask). The section title carries the date, so a new run adds a section instead of replacing one.

Usage: ``python benchmarks/cold_warm_start.py [--no-write] [--baseline COMMIT] [--working-tree]`` (3-5 min).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine_line, write_section

ROOT = Path(__file__).resolve().parents[1]

CHILD = r'''
import time
start, cpu0 = time.perf_counter(), time.process_time()
import json, sys, warnings
sys.path.insert(0, {root!r})
import numpy as np
import bayestwin
from bayestwin.cli.jaxcache import enable_compilation_cache
cache = enable_compilation_cache()
imported, c_imported = time.perf_counter() - start, time.process_time() - cpu0
from model_specs.theophylline import spec as theophylline_spec
from bayestwin.data import load_dataset
from bayestwin.inference import PopulationFit, SamplerConfig
from bayestwin.twin import Twin
spec = theophylline_spec()
if hasattr(PopulationFit, "from_netcdf"):  # read without arviz
    pop = PopulationFit.from_netcdf({posterior!r}, spec)
else:  # an older bayestwin (--baseline): arviz, as it was read then
    import arviz as az
    from bayestwin.diagnostics.convergence import check_convergence
    from bayestwin.inference.fit import checked_quantities
    idata = az.from_netcdf({posterior!r})
    pop = PopulationFit(spec=spec, idata=idata, diagnostics=check_convergence(idata, checked_quantities(spec, idata)),
                        arrays=None, data_digest="sha256:benchmark", fit_id="fit-benchmark", wall_time_s=0.0,
                        sampler=SamplerConfig())
loaded, c_loaded = time.perf_counter() - start, time.process_time() - cpu0
twin = Twin(spec, population=pop, sampler=SamplerConfig(chains=4, warmup=1000, draws=1000,
                                                     chain_method="vectorized")).fit(
    load_dataset("theo_sd").patient(1))
fitted, c_fitted = time.perf_counter() - start, time.process_time() - cpu0
forecast = twin.forecast(np.arange(0.0, 73.0))
done, c_done = time.perf_counter() - start, time.process_time() - cpu0
try:
    from bayestwin.inference.twin_program import twin_trace_count
    traced = twin_trace_count()
except ImportError:  # the baseline commit has no twin program
    traced = None
heavy = [m for m in ("arviz", "matplotlib", "numba", "diffrax", "pymc", "xarray", "dask") if m in sys.modules]
print(json.dumps({{"import_s": imported, "population_s": loaded, "fit_s": fitted, "forecast_s": done,
                  "import_cpu": c_imported, "population_cpu": c_loaded, "fit_cpu": c_fitted, "forecast_cpu": c_done,
                  "traced": traced, "cache": str(cache), "gate": twin.diagnostics_.ok, "loaded": heavy}}))
'''


def run_pair(label: str, posterior: Path, cache: Path, src: Path | None) -> list[dict]:
    """A cold and then a warm process sharing the (new, empty) cache `cache`; bayestwin from `src` if given."""
    env = dict(os.environ, BAYESTWIN_JAX_CACHE=str(cache), PYTHONWARNINGS="ignore")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    runs = []
    for start in ("cold", "warm"):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), posterior=str(posterior))],
                             env=env, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["process_s"] = time.perf_counter() - started
        result["label"], result["start"], result["load"] = label, start, os.getloadavg()[0]
        result["files"] = sum(1 for _ in cache.rglob("*") if _.is_file())
        runs.append(result)
        print(label, start, result, flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-write", action="store_true", help="do not write the section of docs/benchmarks.md")
    parser.add_argument("--baseline", metavar="COMMIT", help="also time bayestwin at COMMIT (a temporary git "
                        "worktree) in the same run, before the current tree")
    parser.add_argument("--baseline-src", metavar="DIR", help="as --baseline, with an older bayestwin's src folder")
    parser.add_argument("--working-tree", action="store_true", help="time this checkout's src as it is, not HEAD")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import warnings

    from model_specs.theophylline import spec as theophylline_spec

    from bayestwin.data import load_dataset
    from bayestwin.inference import SamplerConfig, fit_population

    warnings.simplefilter("ignore")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True,
                           text=True).stdout.strip()
    current = f"{head}{' + uncommitted src changes' if dirty else ''}" if head else "current tree"
    with tempfile.TemporaryDirectory() as tmp:
        pop = fit_population(theophylline_spec(), load_dataset("theo_sd"),
                             sampler=SamplerConfig(chains=4, warmup=1000, draws=1000))
        posterior = Path(tmp) / "population.nc"
        pop.idata.to_netcdf(str(posterior))
        runs = []
        if args.baseline_src:  # an older bayestwin's src folder (where git is not at hand, e.g. a device copy)
            runs += run_pair(f"baseline {args.baseline_src}", posterior, Path(tmp) / "cache-baseline",
                             Path(args.baseline_src).resolve())
        elif args.baseline:
            tree = Path(tmp) / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline],
                           check=True, capture_output=True)
            try:
                runs += run_pair(f"baseline {args.baseline}", posterior, Path(tmp) / "cache-baseline", tree / "src")
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        if args.working_tree or not head:
            runs += run_pair(current, posterior, Path(tmp) / "cache-current", None)
        else:
            tree = Path(tmp) / "head"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), "HEAD"], check=True,
                           capture_output=True)
            try:
                runs += run_pair(head, posterior, Path(tmp) / "cache-current", tree / "src")
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    lines = [
        f"## Cold vs warm start, import to first forecast (issue 9, {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        machine_line(("jax", "numpyro", "arviz"), "shared with other jobs: load average in the table"), "",
        "`python benchmarks/cold_warm_start.py" + (f" --baseline {args.baseline}" if args.baseline else "") + "`: "
        "for each version, two fresh processes one after the other with the same JAX persistent compilation "
        "cache (empty before the first): import bayestwin, read the theophylline population posterior (NetCDF: "
        "`PopulationFit.from_netcdf` where it exists, else `az.from_netcdf`), "
        "Twin.fit of theo_sd subject 1 (4 chains x 1000 warm-up + 1000 draws), forecast 0-72 h. Cumulative times "
        "from the start of the script in the child, wall (process CPU time of all threads in brackets; on a "
        "loaded machine CPU time is the better guide to an idle machine's wall time); 'process' includes the "
        "interpreter's start-up; 'traced' counts twin programs traced in the process; the last column lists the "
        "heavy optional modules the process had imported by the end.", "",
        "| version | start | import | + population | + twin fit | + forecast (total) | process | traced | "
        "cache files | load | heavy modules loaded |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        traced = r["traced"] if r["traced"] is not None else "-"
        lines.append(
            f"| {r['label']} | {r['start']} | {r['import_s']:.1f} ({r['import_cpu']:.1f}) s | {r['population_s']:.1f} "
            f"({r['population_cpu']:.1f}) s | {r['fit_s']:.1f} ({r['fit_cpu']:.1f}) s | **{r['forecast_s']:.1f} "
            f"({r['forecast_cpu']:.1f}) s** | {r['process_s']:.1f} s | {traced} | {r['files']} | {r['load']:.1f} | "
            f"{', '.join(r.get('loaded') or ['-'])} |")
    warm = runs[-1]
    met = "met" if warm["forecast_s"] <= 5.0 else ("NOT met in wall time" + (
        f" (CPU time {warm['forecast_cpu']:.1f} s)" if warm["forecast_cpu"] <= 5.0 else ""))
    lines += ["", f"Target <= 5 s warm (import to first forecast): {met} on this shared machine.", ""]
    print("\n".join(lines))
    if not args.no_write:

        write_section(ROOT / "docs" / "benchmarks.md", lines)


if __name__ == "__main__":
    main()
