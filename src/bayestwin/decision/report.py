"""A readable Markdown report of a ``Recommendation``: what was compared, what was chosen, why, how sure.

Examples
--------
>>> from bayestwin.decision.recommendation import Recommendation
>>> rec = Recommendation(patient="P1", chosen="A", rule="by hand",
...                      plans=[{"name": "A", "estimates": [{"target": "t", "estimate": 0.9, "mcse": 0.01}]}])
>>> print(recommendation_markdown(rec).splitlines()[0])
# Treatment recommendation for patient P1
"""

from __future__ import annotations

from typing import Any

__all__ = ["recommendation_markdown"]


def _pct(x: Any) -> str:
    return "n/a" if x is None or x != x else f"{100 * float(x):.1f} %"


def recommendation_markdown(rec: Any) -> str:
    """Markdown text of `rec` (a ``Recommendation``)."""
    lines = [f"# Treatment recommendation for patient {rec.patient}", ""]
    lines.append(f"*Created {rec.created} (schema `{rec.schema}`).*")
    lines.append("")
    lines.append("## Decision")
    lines.append("")
    lines.append(f"**Chosen plan: {rec.chosen if rec.chosen is not None else 'none (no plan met the constraints)'}**")
    lines.append("")
    lines.append(f"Rule: {rec.rule}")
    if rec.ties:
        lines.append("")
        lines.append(f"Tied within Monte Carlo error (the draws cannot tell them apart): {', '.join(rec.ties)}.")
    for kind, v in rec.point_estimate_choices.items():
        verdict = "differs from" if v.get("differs") else "agrees with"
        lines.append("")
        lines.append(f"Choosing on the posterior {kind} (a point estimate) gives {v.get('chosen')!s}, which {verdict} "
                     "the full-posterior choice.")
    lines += ["", "## Plans compared", ""]
    targets = [t["name"] for t in rec.targets] or sorted({e["target"] for p in rec.plans
                                                          for e in p.get("estimates", [])})
    lines.append("| plan | " + " | ".join(targets) + " |")
    lines.append("|---|" + "---|" * len(targets))
    for p in rec.plans:
        by = {e["target"]: e for e in p.get("estimates", [])}
        cells = [f"{_pct(by[t]['estimate'])} ± {_pct(by[t]['mcse'])}" if t in by else "" for t in targets]
        mark = " (chosen)" if p["name"] == rec.chosen else ""
        lines.append(f"| {p['name']}{mark} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Estimates ± Monte Carlo standard error (from the posterior draws' autocorrelation).")
    if rec.targets:
        lines += ["", "Targets:", ""]
        lines += [f"- **{t['name']}**: {t['description']}" for t in rec.targets]
    lines += ["", "## Warnings", ""]
    lines += [f"- {w}" for w in rec.warnings] or ["- none"]
    lines += ["", "## Provenance", ""]
    lines.append(f"- model: {rec.model.get('spec_name')} ({rec.model.get('spec_digest')})")
    lines.append(f"- population version: {rec.population_version}")
    if rec.data:
        d = rec.data
        lines.append(f"- data: {d.get('n_observations')} observations, {d.get('first_time')}-{d.get('last_time')} "
                     f"{d.get('time_unit')} ({d.get('data_digest')})")
    if rec.diagnostics:
        lines.append(f"- diagnostics: {rec.diagnostics.get('status')}")
    lines.append("- software: " + ", ".join(f"{k} {v}" for k, v in rec.software.items()))
    return "\n".join(lines) + "\n"
