"""Twin-level SBC study of ``validation/run.py --twin``: every ODE model and a few closed-form ones.

For each model: ``bayestwin.validation.twin_sbc.run_twin_sbc`` on the model's default spec
(``bayestwin.testing.default_spec``) given a synthetic population (``synthetic_population``: 100 draws around
the prior medians, relative spread 5 %), on the design of ``TWIN_DESIGNS``, then the power check: the same
replications' design fitted with every BSV SD divided by 3 (``scale_bsv(pop, 1/3)``) must FAIL. Each model's
result is one JSON fragment (``docs/validation/fragments/twin_<model>.json``) and the report section "Twin-level
SBC" is assembled from the latest fragment of every model in ``TWIN_MODELS``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

#: Design per model: doses ``(time, amount, compartment or None)`` and sample times (every output), with why.
TWIN_DESIGNS: dict[str, dict[str, Any]] = {
    "pk.one_cmt_oral_mm": {
        "doses": ((0.0, 400.0, None),), "times": (1.0, 2.0, 4.0, 8.0, 12.0, 24.0, 36.0, 48.0, 60.0),
        "why": "400 mg oral (reference Km 2 mg/L, Vm 10 mg/h, V 20 L): the peak ~18 mg/L is ~9 Km, so "
               "elimination runs near Vm (zero order) for the first day and Km shows in the bend to first-order "
               "decline below ~Km after 36-60 h; after 100 mg (the population-level SBC design, peak ~4 mg/L "
               "~ 2 Km) Km and Vm are weakly identified (validation/device_sbc.md)"},
    **{f"pd.one_cmt_oral_idr{k}": {
        "doses": ((0.0, 100.0, None),), "times": (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0, 36.0, 48.0),
        "why": "100 mg oral: peak concentration ~4 mg/L, 2 x IC50/EC50 (2 mg/L), and concentration and "
               "response both sampled to 48 h so that the response returns to its baseline r0 (kout 0.3/h)"}
       for k in range(1, 5)},
    "metabolic.bergman_meal": {
        "doses": ((0.0, 75.0, None),), "times": (15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 150.0, 180.0, 240.0),
        "why": "a 75 g carbohydrate meal (an oral glucose tolerance test) with glucose and insulin sampled "
               "15-240 min: glucose rises ~130 mg/dL above the basal 110 and is back by 240 min"},
    "pk.one_cmt_oral": {
        "doses": ((0.0, 100.0, None),), "times": (1.0, 4.0, 12.0),
        "why": "therapeutic drug monitoring: 3 samples after one 100 mg dose (the twin's prior matters)"},
    "pk.two_cmt_iv": {
        "doses": ((0.0, 100.0, None),), "times": (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0),
        "why": "the population-level SBC design (8 samples after one 100 mg dose), for comparison"},
    "pk.one_cmt_iv": {
        "doses": ((0.0, 100.0, None),), "times": (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 24.0),
        "why": "the population-level SBC design (8 samples after one 100 mg dose), for comparison"},
}

TWIN_MODELS = list(TWIN_DESIGNS)

#: Why a model's twin-level SBC has no fragment yet (measured 2026-11-27 on the shared 2-core machine, load 4-10,
#: ``run_twin_sbc`` with ``TWIN_SETTINGS``, 8 and 16 replications: one lockstep group of 8 costs the difference).
TWIN_NOT_RUN = {
    **{f"pd.one_cmt_oral_idr{k}": "not run yet: pd.one_cmt_oral_idr1 measured ~72 CPU-s per group of 8 "
       "replications (6.4-6.5 leapfrog steps per iteration, no divergences) + ~40 s compilation, so 200 + 60 "
       "replications ~45 CPU-min per IDR model (the session ran out of time)" for k in range(1, 5)},
    "metabolic.bergman_meal": "not run yet: measured ~51 CPU-s per group of 8 replications (6.0-6.3 leapfrog "
                              "steps, no divergences) + ~30 s compilation: 200 + 60 replications ~30 CPU-min",
}
#: NUTS settings of every twin-level SBC run (per replication).
TWIN_SETTINGS = {"chains": 1, "warmup": 200, "draws": 200, "thin": 2, "n_components": 100, "broken_factor": 1 / 3}


def twin_model(name: str, replications: int, broken_replications: int, figures: Path) -> dict:
    """Twin-level SBC of one model and its power check, as a report fragment (``ok``, ``row``, ``details``)."""
    from sbc_figures import sbc_pair_figure

    from bayestwin.models import get_model
    from bayestwin.testing import default_spec
    from bayestwin.validation.twin_sbc import run_twin_sbc, scale_bsv, synthetic_population

    design = TWIN_DESIGNS[name]
    spec = default_spec(get_model(name))
    s = TWIN_SETTINGS
    pop = synthetic_population(spec, s["n_components"])
    kw = {"doses": design["doses"], "times": design["times"], "chains": s["chains"], "warmup": s["warmup"],
          "draws": s["draws"], "thin": s["thin"]}
    good = run_twin_sbc(spec, pop, n_replications=replications, **kw)
    print(good.format(), flush=True)
    bad = run_twin_sbc(spec, pop, fit_population=scale_bsv(pop, s["broken_factor"]),
                       n_replications=broken_replications, seed=1, **kw)
    print(bad.format(), flush=True)
    t, tb = good.tests(), bad.tests()
    rep = good.replications
    kind = get_model(name).kind
    row = (f"| `{name}` | {kind} | {len(t)} | {t['p_value'].min():.3g} ({t['p_value'].idxmin()}) | "
           f"{good.alpha / len(t):.2g} | {'passed' if good.ok else '**FAILED**'} | "
           f"{'failed, as it must' if not bad.ok else '**PASSED: not sensitive**'} (smallest p "
           f"{tb['p_value'].min():.2g}, {tb['p_value'].idxmin()}) | {int((rep['divergences'] > 0).sum())} of "
           f"{len(rep)} | {rep['max_rhat'].median():.3f} | {rep['mean_steps'].median():.0f} | "
           f"{good.wall_s:.0f} + {bad.wall_s:.0f} s | {replications} + {broken_replications}")
    sbc_pair_figure(good, bad, (f"{name}: twin SBC", f"{name}: BSV SDs / 3 (must fail)"),
                    figures / f"twin_sbc_{name}.png")
    dose_text = ", ".join(f"{a:g} {spec.unit('amt')} at t={tt:g} {spec.unit('time')}" for tt, a, _ in design["doses"])
    details = [f"### `{name}` (twin level)", "", f"Design: {dose_text}; samples at {list(design['times'])} "
               f"({design['why']}).", "", f"![twin SBC ECDF difference, {name}](validation/twin_sbc_{name}.png)", "",
               f"Leapfrog steps per iteration: median {rep['mean_steps'].median():.1f}, max "
               f"{rep['mean_steps'].max():.1f}; divergent transitions per replication: median "
               f"{rep['divergences'].median():.0f}, max {rep['divergences'].max():.0f}; worst split R-hat: median "
               f"{rep['max_rhat'].median():.3f}, max {rep['max_rhat'].max():.3f}.", "",
               "| quantity | chi-square | p-value | passed | broken: p-value |", "|---|---|---|---|---|"]
    details += [f"| {q} | {r.chi2:.1f} | {r.p_value:.3g} | {'yes' if r.passed else '**no**'} | "
                f"{tb.loc[q, 'p_value']:.2g} |" for q, r in t.iterrows()]
    return {"ok": bool(good.ok and not bad.ok), "row": row, "details": [*details, ""],
            "good_wall_s": good.wall_s, "bad_wall_s": bad.wall_s}


def twin_intro() -> list[str]:
    """The section's heading, method and table header."""
    s = TWIN_SETTINGS
    return ["## Twin-level SBC", "",
            "**This is the twin-level SBC, not the population-level one.** For the ODE models the "
            "population-level SBC above is NOT RUN (about 18-27 CPU-hours per model with the diagonal mass rule: "
            "`validation/device_sbc.md`). What is checked here is the posterior a clinician uses: one "
            "patient's parameters given a population (``Twin.fit``, ``fit_fleet``). "
            "``bayestwin.validation.run_twin_sbc``: the population is synthetic -- "
            f"{s['n_components']} draws of the population parameters (typical values, BSV SDs, residual SDs) "
            "around the medians of the default spec's priors, each multiplied by exp(0.05 N(0, 1)) (about the "
            "uncertainty of a cohort fit of 20-50 patients; ``synthetic_population``), not a real fit. Per "
            "replication: a population component k uniform, "
            "the patient's latent parameters from N(mu_k, Sigma_k), observations with residual SD sigma_k "
            "on the model's design (below), then the twin fit: the mixture prior of all components times "
            "the likelihood, all replications in ONE compiled program (the ``fit_fleet`` program, the "
            f"replications as its patients, 8 in lockstep), {s['chains']} chain(s) x ({s['warmup']} warm-up + "
            f"{s['draws']} draws, dense mass matrix, target acceptance 0.8, tree depth <= 8) thinned by "
            f"{s['thin']}: ranks among 100 draws. Ranked: every parameter with BSV (latent value) and every "
            "residual SD (a function of the component: ties broken at random). Test: chi-square on up to 20 "
            "rank bins, a model passes when every p-value is at least 0.01 / Q (Bonferroni over its Q "
            "quantities). **Power check**: the same design fitted with every BSV SD of the population divided "
            "by 3 (``scale_bsv(pop, 1/3)``: the twin prior 3x too narrow) must fail. Not checked here: the "
            "population fit itself (its priors, the hierarchical sampler), covariates, censoring.", "",
            "| model | kind | quantities | smallest p (quantity) | threshold | twin SBC | broken variant | "
            "replications with divergences | worst R-hat (median) | leapfrog steps (median) | wall time | "
            "replications, run |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]


def compare_levels(twin: dict[str, dict | None], sbc: dict[str, dict | None]) -> list[str]:
    """Where a model has both: the twin-level verdict next to the population-level one (section above)."""
    lines = []
    for name, f in twin.items():
        pop = sbc.get(name)
        if f is None or pop is None or "NOT RUN" in pop["row"]:
            continue
        cells = [c.strip() for c in pop["row"].split("|")]
        tcells = [c.strip() for c in f["row"].split("|")]
        lines.append(f"* `{name}`: twin level {tcells[6]} (smallest p {tcells[4]}), population level {cells[5]} "
                     f"(smallest p {cells[3]}; {cells[10]})")
    return ["Both levels, for the models that have both:", "", *lines] if lines else []


def run_twin_study(models: list[str], replications: int, broken_replications: int, figures: Path,
                   save: Any) -> None:
    """Run `models` one after another (one heavy process), saving each fragment as soon as it is done."""
    for name in models:
        t0 = time.perf_counter()
        fragment = twin_model(name, replications, broken_replications, figures)
        save(f"twin_{name}", fragment | {"wall_s": time.perf_counter() - t0, "replications": replications})
