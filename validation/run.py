"""``make validate``: run every validation study, write ``docs/validation.md``, exit non-zero if one fails.

Studies:

1. Simulation-based calibration of every built-in model (``bayestwin.validation.run_sbc``, 200 replications,
   non-centred default spec of the model, 12 patients) and its power check: the same data fitted with every
   prior scale divided by 3 must FAIL.
2. Twin-level SBC (``--twin``, ``validation/twin_study.py``): one patient's posterior given a population, for every
   ODE model (whose population-level SBC is not run) and three closed-form ones, with its power check.
3. Forecast calibration on real data (``bayestwin.validation.calibration``), when available.
4. The pytest studies in ``validation/``: reference posteriors (posteriordb), the PyMC cross-check, every
   ``check_model`` check on every model, recovery of simulated and real cohorts.

Usage: ``python validation/run.py [--replications N] [--only sbc,twin,pytest] [--models a,b] [--twin]``. Each
study's result is kept in ``docs/validation/fragments/`` and the report is rebuilt from the latest fragment of
every study.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIGURES = DOCS / "validation"
#: one JSON fragment per study (per model for SBC): the report is assembled from the latest of each
FRAGMENTS = FIGURES / "fragments"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sbc_figures, twin_study


def _versions() -> str:
    names = ["bayestwin", "jax", "numpyro", "diffrax", "arviz", "numpy", "scipy", "pandas", "pymc"]
    out = []
    for n in names:
        try:
            out.append(f"{n} {md.version(n)}")
        except md.PackageNotFoundError:
            out.append(f"{n} (not installed)")
    return ", ".join(out)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    py = platform.python_version()
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {py}"


SBC_SETTINGS = {"warmup": 300, "draws": 500, "thin": 10, "seed": 0}
ODE_NOT_RUN = ("too slow on 2 cores (about 27 CPU-hours). Measured 2026-11-26: the log density + gradient of 6 "
               "patients (one dose, 8 samples, rtol 1e-8) costs 10.0 ms in reverse mode through diffrax, 2.9-5.5 ms "
               "with forward sensitivities (diffrax tsit5) and 1.8 ms with the lean Dormand-Prince loop now used by "
               "the model (bayestwin.dynamics.rk; same predictions to 1.2e-9). The floor is the solver's per-step "
               "cost (~7 us per sequential loop iteration, ~200 steps per patient over 24 h at rtol 1e-8, primal "
               "and forward-mode cost alike), so batching patients or replications barely amortises it. And NUTS "
               "on this design needs ~230 leapfrog steps per iteration: one replication after 300 warm-up "
               "iterations (dense mass matrix) took 236 steps per iteration with (ka, Km, Vm, V) and 227 with "
               "(ka, Km, CL = Vm/Km, V); the closed-form two-compartment oral model (also 4 parameters with BSV) "
               "needs 245 here. 260 replications x 2 chains x 800 iterations x ~230 steps x ~1 ms = ~27 h. "
               "Needs a >= 30-core machine for an overnight run, or a cheaper design. Measured 2026-11-27 "
               "(validation/sbc_cost.py): the step count is the sampler geometry, not the ODE (closed-form "
               "pk.two_cmt_oral: 226 steps dense, 71 diagonal); for this model neither a diagonal mass matrix "
               "(236 / 131 steps on 2 replications), 6 patients x 4 samples (241 / 162) nor doses 10/100/1000 mg "
               "(179) gets far below ~200 (idr1, by contrast: 252 dense -> 64, 31, 31 diagonal, ~18 CPU-hours, its "
               "row). On a 16-core device with 14 host devices (pmap now works for the "
               "dopri5 ODE path): ~2 h; run with `--ode`, see validation/device_sbc.md.")

#: SBC settings of the ODE models (run only with ``--ode``): the default ones, with the fits spread over the host
#: devices (``pmap``; safe for the dopri5 forward-sensitivity solver of every built-in ODE model: measured same
#: steps and draws on 1 and 2 devices). Measured 2026-11-27 (validation/sbc_cost.py, validation/device_sbc.md):
#: neither a diagonal mass matrix, 6 patients x 4 samples, doses spread 100x, nor 1000 warm-up iterations at tree
#: depth 6 (33 divergences in 100 draws) brings pk.one_cmt_oral_mm well below ~130-240 leapfrog steps per
#: iteration, so the run stays ~30 CPU-hours per model; pd.one_cmt_oral_idr1: 252 steps dense (~72 CPU-hours),
#: 64, 31 and 31 on three prior draws with the diagonal mass of dense_mass_for (~18 CPU-hours).
ODE_SBC_SETTINGS = SBC_SETTINGS | {"parallel_ok": True}

#: Per-model notes for ODE models whose SBC is not run, in place of ODE_NOT_RUN (which describes the
#: Michaelis-Menten PK model's measurements).
ODE_MODEL_NOTES = {
    f"pd.one_cmt_oral_idr{k}": (
        "indirect-response PK/PD model: a 3-state ODE (depot, central, response) through the same ODE engine as "
        "pk.one_cmt_oral_mm (dopri5, forward sensitivities in 6 parameters). Measured 2026-11-26 on the contended "
        "2-core machine, one patient (one dose, 8 samples): value + gradient 0.62 ms (min of 20; 2.2-4.6 ms with "
        "diffrax tsit5) against 0.30 ms for pk.one_cmt_oral_mm; the population log density + gradient of 6 patients "
        "4.5 ms against 3.1 ms for pk.one_cmt_oral_mm (min of 20, contended). Not attempted in this "
        "session: an SBC fit of these models (see pk.one_cmt_oral_mm's row for the cost of ODE SBC fits). Its "
        "ODE is tested against scipy in tests/models/test_pd.py. Measured 2026-11-27 for idr1 (SBC design, "
        "non-centred, 300 warm-up, validation/sbc_cost.py): with the dense mass matrix used until 18:00, 252 "
        "leapfrog steps per iteration (98 % at the maximum depth): ~72 CPU-hours for 200 + 60 replications; with "
        "the diagonal one of dense_mass_for (now the rule for non-centred specs) 64 steps on the same prior draw "
        "and 31 on two others (none at the maximum depth, no divergences), 2.7x fewer steps on the same draw: ~18 "
        "CPU-hours (~9 h on 2 cores, ~1.3 h on a 16-core device) -- an underestimate: on 2026-11-28 replications "
        "1000-1001 took 128 and 191 steps, ~340 CPU-s per chain (~49 CPU-hours non-centred). Cost estimate and the "
        "command for a device machine (`--ode`): validation/device_sbc.md.") for k in range(1, 5)} | {
    "metabolic.bergman_meal": (
        "glucose-insulin meal model: a 6-state ODE on the same engine (dopri5, forward sensitivities, rtol 1e-7); "
        "no SBC fit timed. ODE SBC costs ~20-30 CPU-hours per model on this design with the diagonal mass "
        "matrix (pk.one_cmt_oral_mm ~27, pd.one_cmt_oral_idr1 ~18: their rows); cost estimate and the command "
        "for a device machine (`--ode`): validation/device_sbc.md.")}


def _sbc_intro(replications: int, broken_replications: int) -> list[str]:
    return ["## Simulation-based calibration", "",
            "Each built-in model's default spec (``bayestwin.testing.default_spec``: log-normal typical values "
            "around the model's reference values, log-scale SD 0.5; BSV SD ~ HalfNormal(0.3); proportional "
            "error SD ~ HalfNormal(0.3); identity-scale models: normal typical values and additive error, see "
            "``default_spec``) with **non-centred** random effects for the PK models and centred ones for the "
            "identity-scale longitudinal models, 12 patients with one dose (PK) and 8 samples each. "
            f"{replications} replications; per replication 2 chains x (300 warm-up + 500 draws, "
            "mass matrix from ``bayestwin.testing.dense_mass_for``: diagonal for a non-centred spec, dense for a "
            "centred one -- every row below dated before 2026-11-27 18:00 UTC was run with a dense mass matrix for "
            "every model; target acceptance 0.8, tree depth <= 8) thinned by 10, so ranks among 100 draws. "
            "Non-centred because SBC draws the BSV SDs from their prior, often near 0: on the two-compartment "
            "model (8 replications) the centred spec had divergences in 8 of 8 replications (up to 503), the "
            "non-centred one in 3 of 8 (at most 5). The longitudinal models' patients are data-rich (8 "
            "samples of a level or line), so they are fitted centred. With the intercept at time 0 of the "
            "0.5-24 h design, longitudinal.linear failed either way (non-centred: tv_slope p 6e-11, "
            "divergences in 148 of 200 replications; centred: omega_intercept p 2e-5, 128 of 200): NUTS did "
            "not sample the correlated random intercepts and slopes reliably. It is run with time centred at "
            "the design's mean (``time_ref`` fixed at 7.2 h), the usual advice for such models. Ranked: every "
            "population "
            "parameter and the first patient's "
            "parameters. Test: chi-square on up to 20 equal-width rank bins per quantity; a model passes when "
            "every p-value is at least 0.01 / Q (Bonferroni over its Q quantities: family-wise false-failure "
            "rate <= 1 %). **Power check**: the same simulated data fitted with every prior scale divided by 3 "
            f"(``misspecified_prior``) must fail; {broken_replications} replications.", "",
            "| model | quantities | smallest p (quantity) | threshold | SBC | broken variant | replications with "
            "divergences | worst R-hat (median over replications) | wall time | run |",
            "|---|---|---|---|---|---|---|---|---|---|"]


def sbc_setup(name: str, *, ode: bool = False) -> tuple[Any, dict] | dict:
    """The spec and ``run_sbc`` settings of one built-in model's SBC, or its NOT RUN fragment (ODE without `ode`)."""
    import dataclasses

    from bayestwin.models import get_model
    from bayestwin.testing import default_spec

    model = get_model(name)
    settings = SBC_SETTINGS
    if model.kind == "ode":
        if not ode:
            note = ODE_MODEL_NOTES.get(name, ODE_NOT_RUN)
            return {"ok": False, "row": f"| `{name}` | | | | **NOT RUN** | | | | | {note} |", "details": []}
        settings = ODE_SBC_SETTINGS
    spec = default_spec(model)
    # PK models (log scale): non-centred (BSV SDs drawn near 0 make funnels); identity-scale longitudinal
    # models: centred (their patients are data-rich: non-centred diverged in 148 of 200 replications)
    spec = dataclasses.replace(spec, centered=any(p.scale == "identity" for p in spec.parameters))
    if model.kind == "ode" and spec.centered is False:
        # ODE models: centre the parameters the design pins (kappa < 1/5, bayestwin.testing.centring). Declared
        # 2026-11-28 before any ODE population SBC result, on cost: pd.one_cmt_oral_idr1, replications 1000-1001,
        # 22 / 34 sampling leapfrog steps per iteration with cl, v, r0 centred against 128 / 191 non-centred
        # (validation/device_sbc.md). The closed-form models' records are non-centred runs.
        from bayestwin.testing import with_design_centring

        spec = with_design_centring(spec)
    if "time_ref" in getattr(model, "optional_parameters", {}):
        # random intercepts and slopes: centre time at the design's mean (intercept at time 0 of a 0.5-24 h
        # design failed SBC centred and non-centred; centred at the mean, 60 replications passed, p >= 0.13)
        from bayestwin.spec import Parameter
        from bayestwin.testing import DEFAULT_TIMES

        unit = model.optional_parameters["time_ref"][0]
        spec = dataclasses.replace(spec, parameters=(*spec.parameters, Parameter(
            "time_ref", unit=unit, fixed=sum(DEFAULT_TIMES) / len(DEFAULT_TIMES), scale="identity")))
    return spec, settings


def _not_run_row(name: str) -> str:
    """The SBC table row of a model with no fragment: an ODE model's says why (its cost), others are blank."""
    import twin_study

    setup = sbc_setup(name)
    if not isinstance(setup, dict):
        return f"| `{name}` | | | | **NOT RUN** | | | | | |"
    twin = " The twin-level SBC of this model: section 'Twin-level SBC'." if name in twin_study.TWIN_MODELS else ""
    return setup["row"].rstrip().removesuffix("|").rstrip() + twin + _blocks_note(name) + " |"


def _blocks_note(name: str) -> str:
    """How much of an ODE model's SBC is stored in blocks (``validation/sbc_blocks.py``), if any."""
    import sbc_blocks

    good, broken = (len(sbc_blocks.stored_ids(name, v)) for v in sbc_blocks.VARIANTS)
    if not good and not broken:
        return ""
    return (f" In progress in blocks (validation/sbc_blocks.py, design-centred spec): {good} of 200 replications "
            f"and {broken} of 60 of the broken variant stored.")


def sbc_model(name: str, replications: int, broken_replications: int, *, ode: bool = False) -> dict:
    """SBC and the broken-variant power check of one built-in model, as a report fragment.

    ODE models are run only with ``ode=True`` (``--ode``: hours on 2 cores, see ``validation/device_sbc.md``),
    with ``ODE_SBC_SETTINGS``; otherwise their row says NOT RUN and why.
    """
    from bayestwin.validation import misspecified_prior, run_sbc

    setup = sbc_setup(name, ode=ode)
    if isinstance(setup, dict):
        return setup
    spec, settings = setup
    good = run_sbc(spec, n_replications=replications, **settings)
    print(good.format(), flush=True)
    bad = run_sbc(spec, fit_spec=misspecified_prior(spec, 1 / 3), n_replications=broken_replications,
                  **settings)
    print(bad.format(), flush=True)
    return sbc_fragment(name, good, bad, settings)


def sbc_fragment(name: str, good: Any, bad: Any, settings: dict, where: str = "") -> dict:
    """The report fragment (``ok``, ``row``, ``details``; figure saved) of an SBC run `good` and its broken `bad`.

    `where` (e.g. the device machine) is appended to the row's run column.
    """
    from sbc_figures import sbc_pair_figure

    t = good.tests()
    broken_failed = not bad.ok
    rep = good.replications
    row = (f"| `{name}` | {len(t)} | {t['p_value'].min():.3g} ({t['p_value'].idxmin()}) | {good.alpha / len(t):.2g} "
           f"| {'passed' if good.ok else '**FAILED**'} | "
           f"{'failed, as it must' if broken_failed else '**PASSED: harness not sensitive**'} "
           f"(smallest p {bad.tests()['p_value'].min():.2g}) | {int((rep['divergences'] > 0).sum())} of {len(rep)} "
           f"| {rep['max_rhat'].median():.3f} | {good.wall_s + bad.wall_s:.0f} s | {_now()}, {len(rep)} + "
           f"{len(bad.replications)} replications{_settings_note(settings)}{'; ' + where if where else ''} |")
    sbc_pair_figure(good, bad, (f"{name}: SBC", f"{name}: prior scales / 3 (must fail)"),
                    FIGURES / f"sbc_{name}.png")
    details = [f"### `{name}`", "", f"![SBC ECDF difference, {name}](validation/sbc_{name}.png)", "",
               f"Leapfrog steps per iteration: median {rep['mean_steps'].median():.0f}, max "
               f"{rep['mean_steps'].max():.0f}; divergent transitions per replication: median "
               f"{rep['divergences'].median():.0f}, max {rep['divergences'].max():.0f}.", "",
               "| quantity | chi-square | p-value | passed |", "|---|---|---|---|"]
    details += [f"| {q} | {r.chi2:.1f} | {r.p_value:.3g} | {'yes' if r.passed else '**no**'} |"
                for q, r in t.iterrows()]
    return {"ok": bool(good.ok and broken_failed), "row": row, "details": [*details, ""]}


#: Diagnoses of a model's SBC result written after looking into it (file under validation/), shown under its
#: section of the report; the fragment (the run as it came out) is not changed by them.
SBC_DIAGNOSES = {
    "pd.one_cmt_oral_sigmoid_emax": "validation/sigmoid_sbc_diagnosis.md",
}


def _diagnosis(name: str) -> list[str]:
    """The report lines pointing to `name`'s SBC diagnosis (its first paragraph and the file), if there is one."""
    path = SBC_DIAGNOSES.get(name)
    if path is None or not (ROOT / path).exists():
        return []
    summary = (ROOT / path).read_text().split("\n\n")[1].replace("\n", " ").strip()
    return [f"Diagnosis (`{path}`): {summary}", ""]


def _settings_note(settings: dict) -> str:
    """How a run's sampler settings differ from the SBC defaults the report's introduction describes."""
    diff = {k: v for k, v in settings.items() if SBC_SETTINGS.get(k) != v}
    return "; " + ", ".join(f"{k} {v}" for k, v in diff.items()) if diff else ""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _save(key: str, fragment: dict) -> None:
    FRAGMENTS.mkdir(parents=True, exist_ok=True)
    (FRAGMENTS / f"{key}.json").write_text(json.dumps(fragment, indent=1) + "\n")


def _load(key: str) -> dict | None:
    path = FRAGMENTS / f"{key}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _table(frame, floatfmt: str = ".3g") -> list[str]:
    """A DataFrame as a Markdown table (index included)."""
    frame = frame.reset_index()
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        body.append("| " + " | ".join(cells) + " |")
    return [head, rule, *body]


#: Forecast-calibration studies of ``make validate``: key -> (title, model_specs module, data set, conditioning
#: sizes k, the k the targets are judged at, patient folds (None: one per patient), subgroup columns). Designs
#: chosen before their coverage was seen (2026-11-27, brief CAL2): theophylline leaves one patient out ("the
#: population from the other patients", 11 training patients; ~47 s wall per fold fit measured at load ~5) and
#: reports k = 1, 2, 3, 5 with the targets judged at k = 3 as in every earlier report; phenobarbital 5 folds
#: (47 of 59 training patients), k = 1 (most patients have 2-3 levels; 9 have one and are skipped), chosen on an
#: estimate of ~4 min per fit taken from the 3-fold run's 872 s, which included the twins: measured afterwards,
#: ~77 s per fit (5 fits 6.4 min, load ~7-10), so 10 folds would cost ~13 min and leave-one-out (59 fits) ~75 min;
#: the design was not changed after its result was seen. Oral_1CPT its 3 folds (80 of 120 training patients,
#: ~8 min per fold fit in the 3-fold run), k = 3.
CALIBRATION_STUDIES: dict[str, tuple[str, str, str, tuple[int, ...], int, int | None, tuple[str, ...]]] = {
    "theo_sd": ("theo_sd", "theophylline", "theo_sd", (1, 2, 3, 5), 3, None, ("WT",)),
    "theo_sd_combined": ("theo_sd, combined error", "theophylline_combined", "theo_sd", (1, 2, 3, 5), 3, None,
                         ("WT",)),
    "pheno_sd": ("pheno_sd", "phenobarbital", "pheno_sd", (1,), 1, 5, ("WT", "APGR")),
    "oral_1cpt": ("oral_1cpt (SD == 1)", "oral_1cpt", "oral_1cpt", (3,), 3, 3, ("DOSE",)),
}


def _calibration_intro() -> list[str]:
    from bayestwin.validation.calibration import TARGETS

    return ["## Forecast calibration on real data (leave future out)", "",
            "Each patient's twin is conditioned on a population fitted to *other* patients and on the patient's "
            "first k observations; every later observation is forecast under the patient's actual doses. "
            "Designs (fixed before their results were seen): **theo_sd leaves one patient out** (12 population "
            "fits, 11 training patients each) and reports the conditioning sizes **k = 1, 2, 3, 5**, with the "
            "targets judged at **k = 3** as in every earlier report (declared before running: continuity); "
            "**pheno_sd: 5 patient folds** (47 of 59 training patients; chosen on a cost estimate of ~4 min per "
            "fit, measured afterwards ~77 s: 10 folds would have been affordable, but the design was not changed "
            "after its result was seen), k = 1; **oral_1cpt: 3 folds** (80 of 120 training patients), k = 3. "
            "Every fold's population fit is gated (R-hat, ESS, divergences, E-BFMI); a failed fit is still "
            "used, named in the notes and counted, and a study with a failed fold does not pass. The k curve "
            "is shown twice: on each k's own held-out set (every observation after the k-th) and on a common "
            "set (each patient's observations after the first 5), where every k forecasts the same "
            "observations. Targets (issue 5): 80 % intervals cover "
            f"75-85 %, 95 % intervals cover 91-98 % ({TARGETS}); twin MDPE within +-20 %, MDAPE <= 30 %, twin "
            "MDAPE below the population-only forecast's. PIT histogram: 10 bins, flat when calibrated. A target "
            "is judged on the point estimate. Coverage uncertainty: `ci_low`/`ci_high` are a patient-cluster "
            "bootstrap 95 % interval (2000 resamples of whole patients; a patient's held-out observations are "
            "correlated), and `band_consistent` says whether that interval overlaps the target band (if it does, "
            "the data cannot tell a miss from a pass). With 12 patients the percentile interval is short: in "
            "simulation (12 x 8 observations, tests/validation/test_bootstrap.py) it held the true coverage 0.90 "
            "of the time, not 0.95. The twin's mixture component is chosen from the conditioning observations "
            "only. The same seeded study is not bitwise reproducible across processes (theophylline combined "
            "error, 3 folds, same code and seeds: 0.729/0.865, 0.760/0.906, 0.760/0.885 at 80/95 %), a further "
            "reason to read the bootstrap intervals. Earlier 3-fold theophylline diagnosis (clearance not learnt "
            "from samples up to 0.5 h; one fold's population lacked the slowest eliminators; the 1-h sample "
            "after the window), and the leave-one-patient-out follow-up (its section 6): "
            "validation/theo_calibration_diagnosis.md. Each study below gives the date and wall time of its "
            "latest run; the section's time above is their sum.", ""]


def calibration_study(key: str) -> dict:
    """Run one forecast-calibration study of ``CALIBRATION_STUDIES`` and return its report fragment."""
    import importlib
    import warnings

    sys.path.insert(0, str(ROOT))
    from bayestwin.cli.jaxcache import scoped_compilation_cache
    from bayestwin.data import load_dataset
    from bayestwin.inference import SamplerConfig
    from bayestwin.validation.calibration import TARGETS, calibration_by_group
    from bayestwin.validation.conditioning import conditioning_curve
    from bayestwin.validation.folds import fit_fold_populations

    started = time.perf_counter()
    title, module, data, ks, k_target, n_folds, groups = CALIBRATION_STUDIES[key]
    spec = importlib.import_module(f"model_specs.{module}").spec()
    table = load_dataset(data)
    sampler = SamplerConfig(chains=4, warmup=1000, draws=1000, target_accept=0.95)
    if data == "oral_1cpt":
        table = table.exclude((table.frame["SD"] != 1).to_numpy(), reason="multiple-dose part of the study")
        sampler = SamplerConfig(chains=4, warmup=500, draws=300, dense_mass=True)
    folds = n_folds or len(table.patients)
    with warnings.catch_warnings(), scoped_compilation_cache():
        warnings.simplefilter("ignore")  # gate verdicts are in the notes, reported below
        pops = fit_fold_populations(spec, table, n_folds=folds, population_sampler=sampler)
        curve = conditioning_curve(spec, table, ks, populations=pops, dataset=title)
    res = curve.results[k_target]
    print(res.format(), f"(population fits {pops.wall_s:.0f} s)", flush=True)
    checks = res.checks()
    passed = res.ok and pops.n_failed == 0  # skipped patients are not failures
    cov = res.coverage()
    uncertainty = "; ".join(
        f"{lv:g}: {r.coverage:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] over {r.patients} patients -- point "
        f"estimate {'in' if r.ok else '**misses**'} {r.target_low:g}-{r.target_high:g}, target band "
        + ("consistent with the interval" if r.band_consistent else "**outside** the interval")
        for lv, r in cov.iterrows() if lv in TARGETS)
    design = "leave one patient out" if folds == len(table.patients) else f"{folds} patient folds"
    lines = [f"### {title}: {spec.name}, {design}, targets judged at k = {k_target}", "",
             f"_Run {_now()}, {(time.perf_counter() - started) / 60:.1f} min ({folds} population fits "
             f"{pops.wall_s / 60:.1f} min; load average {os.getloadavg()[0]:.1f} at the end)._", "",
             f"**{'All targets met' if passed else 'TARGETS MISSED'}** at k = {k_target} -- " + "; ".join(
                 f"{c}: {'yes' if v else '**no**'}" for c, v in checks.items())
             + f"; fold population fits that failed their gate: {pops.n_failed} of {folds}", "",
             f"{res.format()}", "", f"Coverage with its bootstrap 95 % interval: {uncertainty}.", ""]
    lines += [f"* note: {n}" for n in res.notes]
    lines += ["", *_table(cov), "", *_table(res.mipd()), "",
              f"PIT histogram (10 bins): {res.pit_histogram().tolist()}", ""]
    if len(ks) > 1:
        helps = curve.more_data_helps()
        lines += ["Calibration against the conditioning size k, each k on its own held-out set (observations "
                  "after the k-th):", "", *_table(curve.table()), "",
                  f"Same, on the common set (each patient's observations after the first {curve.common_after}, "
                  f"forecast at every k): k = {max(ks)} better than k = {min(ks)} by mean CRPS: "
                  f"{'yes' if helps['CRPS'] else '**no**'}, by twin MDAPE: "
                  f"{'yes' if helps['twin_MDAPE_%'] else '**no**'}.", "", *_table(curve.table(common=True)), ""]
    lines += ["Each fold's population (posterior medians; the twins of the fold's patients are conditioned "
              "on it):", "", *_table(res.populations), ""]
    for g in groups:
        t = calibration_by_group(res, g)
        lines += [f"Subgroups by {g} (80 % coverage, bootstrap 95 % interval over patients; flag: gap to "
                  "the rest > 5 points):", "", *_table(t), ""]
    curve_data = ({"curve": {"own": curve.table().reset_index().to_dict("records"),
                             "common": curve.table(common=True).reset_index().to_dict("records")}}
                  if len(ks) > 1 else {})
    return {"ok": bool(passed), "lines": lines, "date": _now(), "wall_s": time.perf_counter() - started} | curve_data


def calibration_wall_s() -> float:
    """The section's cost: the wall times of every calibration study's latest run, added up."""
    fragments = [_load(f"calibration_{key}") for key in CALIBRATION_STUDIES]
    return sum(f.get("wall_s") or 0.0 for f in fragments if f)


def calibration_section(studies: str = "") -> tuple[bool, list[str]]:
    """Run the forecast-calibration studies named in `studies` (comma-separated keys of ``CALIBRATION_STUDIES``;
    empty: all; "none": only re-assemble), store each one's fragment, and assemble the section from the latest
    fragment of every study."""
    keys = [] if studies == "none" else [s for s in studies.split(",") if s] or list(CALIBRATION_STUDIES)
    unknown = [k for k in keys if k not in CALIBRATION_STUDIES]
    if unknown:
        raise SystemExit(f"--calibration-studies: unknown {unknown}; known: {list(CALIBRATION_STUDIES)}")
    for key in keys:
        _save(f"calibration_{key}", calibration_study(key))
    from calibration_figures import conditioning_figure

    ok = True
    lines = _calibration_intro()
    fragments = {key: _load(f"calibration_{key}") for key in CALIBRATION_STUDIES}
    curves = {CALIBRATION_STUDIES[key][0]: f["curve"] for key, f in fragments.items() if f and "curve" in f}
    if curves:
        conditioning_figure(curves, FIGURES / "calibration_k.png")
        lines += ["![coverage and MDAPE against the conditioning size k](validation/calibration_k.png)", ""]
    for key, f in fragments.items():
        ok &= bool(f and f["ok"])
        lines += f["lines"] if f else [f"### {CALIBRATION_STUDIES[key][0]}", "", "**NOT RUN**", ""]
    return ok, lines


def main() -> int:
    """Run the studies asked for, store their fragments, write the report from the latest fragments.

    Exit status 0 only if the assembled report passes: every built-in model's SBC (and power check), the
    forecast calibration and the pytest studies, each from its latest run (the report gives each run's date).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--broken-replications", type=int, default=60)
    parser.add_argument("--only", default="sbc,calibration,pytest")
    parser.add_argument("--models", default="")
    parser.add_argument("--ode", action="store_true",
                        help="also run the ODE models' SBC (ODE_SBC_SETTINGS; hours on 2 cores: see "
                             "validation/device_sbc.md)")
    parser.add_argument("--twin", action="store_true",
                        help="also run the twin-level SBC study (validation/twin_study.py; ~1-2 h on 2 cores)")
    parser.add_argument("--calibration-studies", default="",
                        help="comma-separated forecast-calibration studies to re-run (keys of CALIBRATION_STUDIES; "
                             "default all; 'none' re-assembles the section); the others keep their latest fragment")
    parser.add_argument("--output", default=str(DOCS / "validation.md"))
    a = parser.parse_args()
    import twin_study
    started = time.perf_counter()
    from bayestwin.models import model_names

    builtin = [m for m in model_names() if not m.startswith("test.")]
    models = [m for m in (a.models.split(",") if a.models else builtin) if not m.startswith("test.")]
    only = set(a.only.split(",")) | ({"twin"} if a.twin else set())
    if "sbc" in only:
        for name in models:
            t0 = time.perf_counter()
            fragment = sbc_model(name, a.replications, a.broken_replications, ode=a.ode)
            _save(f"sbc_{name}", fragment | {"date": _now(), "wall_s": time.perf_counter() - t0,
                                              "replications": a.replications})
    if "twin" in only:
        twin_models = [m for m in models if m in twin_study.TWIN_MODELS] if a.models else twin_study.TWIN_MODELS
        twin_study.run_twin_study(twin_models, a.replications, a.broken_replications, FIGURES,
                                  lambda key, f: _save(key, f | {"date": _now()}))
    if "calibration" in only:
        ok, lines = calibration_section(a.calibration_studies)
        _save("calibration", {"ok": ok, "lines": lines, "date": _now(), "wall_s": calibration_wall_s()})
    if "pytest" in only:
        import pytest_studies

        pytest_studies.run([])
    wall = time.perf_counter() - started

    sbc = {m: _load(f"sbc_{m}") for m in builtin}
    sbc_ok = all(f is not None and f["ok"] for f in sbc.values())
    studies = [("simulation-based calibration", sbc_ok,
                [*_sbc_intro(a.replications, a.broken_replications),
                 *[f["row"] if f else _not_run_row(m) for m, f in sbc.items()], "",
                 *[line for m, f in sbc.items() if f for line in [*f["details"], *_diagnosis(m)]]])]
    twin = {m: _load(f"twin_{m}") for m in twin_study.TWIN_MODELS}
    studies.append(("twin-level SBC", all(f is not None and f["ok"] for f in twin.values()),
                    [*twin_study.twin_intro(),
                     *[f"{f['row']}, {f['date']} |" if f
                       else f"| `{m}` | | | | | **NOT RUN** | | | | | | {twin_study.TWIN_NOT_RUN.get(m, '')} |"
                       for m, f in twin.items()], "", *twin_study.compare_levels(twin, sbc), "",
                     *[line for f in twin.values() if f for line in f["details"]]]))
    f = _load("calibration")
    studies.append(("forecast calibration", bool(f and f["ok"]),
                    [f"_Run {f['date']}" + (f", {f['wall_s'] / 60:.1f} min._" if f.get("wall_s") else "._"), "",
                     *f["lines"]] if f
                    else ["## forecast calibration", "", "**NOT RUN**", ""]))
    monitor = {k: _load(f"monitor_sbc_{k}") for k in ("default", "pooled")}  # validation/monitor_sbc.py
    section = FRAGMENTS / "monitor_sbc.md"
    studies.append(("monitoring-model SBC", all(f is not None and f["ok"] for f in monitor.values()),
                    [*section.read_text().splitlines(), ""] if section.exists()
                    else ["## Monitoring model SBC (issue 8)", "", "**NOT RUN** (`python validation/monitor_sbc.py`)",
                          ""]))
    import pytest_studies

    pytest_ok, pytest_lines, pytest_s = pytest_studies.report()  # every collected case, NOT RUN where none ran
    studies.append(("pytest studies", pytest_ok, pytest_lines))
    total = pytest_s + sum(f.get("wall_s") or 0.0 for f in [*sbc.values(), *twin.values(), _load("calibration"),
                                                           *monitor.values()] if f)
    ok = all(s[1] for s in studies)
    failed = [s[0] for s in studies if not s[1]]
    head = ["# Validation report", "",
            "Generated by `make validate` (`validation/run.py`); do not edit by hand. Each study keeps its latest "
            "run (`docs/validation/fragments/`); `python validation/run.py --only sbc --models pk.two_cmt_iv` "
            "re-runs one and rebuilds this page.", "",
            f"* **Verdict: {'every study passed' if ok else 'FAILED: ' + ', '.join(failed)}**",
            f"* Written: {_now()}; this invocation {wall / 60:.1f} min; the studies' own wall times add up to "
            f"{total / 60:.1f} min",
            f"* Machine: {_machine()}",
            f"* Versions: {_versions()}", "",
            "The same tools work on your own model and data:", "",
            "```python",
            "from bayestwin.testing import check_model          # spec, prior predictive, gradients, compile once,",
            "check_model(my_model).raise_if_failed()            # recovery, short SBC",
            "from bayestwin.validation import run_sbc, misspecified_prior, leave_future_out, calibration_by_group",
            "res = run_sbc(my_spec, n_replications=200); print(res.format()); res.plot_ecdf()",
            "cal = leave_future_out(my_spec, my_table, n_conditioning=2); print(cal.coverage(), cal.mipd())",
            "calibration_by_group(cal, 'SEX')                    # coverage gaps by subgroup, bootstrap CIs",
            "```", ""]
    body = [line for s in studies for line in s[2]]
    Path(a.output).write_text("\n".join([*head, *body]) + "\n")
    print(f"validation report written to {a.output}: {'PASSED' if ok else 'FAILED: ' + ', '.join(failed)} "
          f"(this invocation {wall / 60:.1f} min)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
