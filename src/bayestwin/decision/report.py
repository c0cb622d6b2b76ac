"""Readable reports of a ``Recommendation`` (Markdown; self-contained HTML): what was chosen, why, how sure.

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

__all__ = ["recommendation_html", "recommendation_markdown"]


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


_CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:60em;margin:2em auto;padding:0 1em;
color:#1a1a1a;line-height:1.45}h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}th,td{border:1px solid #bbb;padding:.25em .55em;
text-align:left;vertical-align:top}th{background:#f0f0f0}tr.chosen td{background:#e8f5e9;font-weight:600}
.decision{border:2px solid #2e7d32;padding:.6em 1em;border-radius:4px}.warn li{color:#8a4b00}
.meta{color:#555;font-size:.9em}details{margin:.3em 0}code{background:#f4f4f4;padding:0 .2em}"""


def _e(value: Any) -> str:
    """Escaped text of `value` (every string that reaches the page goes through here)."""
    import html

    return html.escape("" if value is None else str(value), quote=True)


def _num_cell(x: Any) -> str:
    try:
        return _e(f"{float(x):.4g}")
    except (TypeError, ValueError):
        return "n/a"


def _intervals_html(plan: dict[str, Any]) -> str:
    rows = plan.get("intervals") or []
    if not rows:
        return ""
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in ("time", "output", "interval", "lower", "median", "upper",
                                                       "unit")) + "</tr>"
    body = "".join(f"<tr><td>{_num_cell(r.get('time'))}</td><td>{_e(r.get('output'))}</td><td>{_pct(r.get('prob'))}"
                   f"</td><td>{_num_cell(r.get('lower'))}</td><td>{_num_cell(r.get('median'))}</td><td>"
                   f"{_num_cell(r.get('upper'))}</td><td>{_e(r.get('unit'))}</td></tr>" for r in rows)
    return (f"<details><summary>Predictive intervals of {_e(plan['name'])} ({len(rows)} rows)</summary>"
            f"<table>{head}{body}</table></details>")


def recommendation_html(rec: Any) -> str:
    """A self-contained HTML page of `rec` (inline style, no scripts, no external assets; all text escaped).

    The same content as ``recommendation_markdown``, plus each plan's predictive intervals (collapsed).

    Examples
    --------
    >>> from bayestwin.decision.recommendation import Recommendation
    >>> rec = Recommendation(patient="P1", chosen=None, rule="by hand", plans=[{"name": "<b>A</b>"}])
    >>> page = recommendation_html(rec)
    >>> "&lt;b&gt;A&lt;/b&gt;" in page and "<b>A</b>" not in page
    True
    """
    targets = [t["name"] for t in rec.targets] or sorted({e["target"] for p in rec.plans
                                                          for e in p.get("estimates", [])})
    chosen = rec.chosen if rec.chosen is not None else "none (no plan met the constraints)"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Treatment recommendation for patient {_e(rec.patient)}</title>", f"<style>{_CSS}</style>",
             "</head><body>", f"<h1>Treatment recommendation for patient {_e(rec.patient)}</h1>",
             f'<p class="meta">Created {_e(rec.created)} (schema <code>{_e(rec.schema)}</code>).</p>',
             '<h2>Decision</h2><div class="decision">', f"<p><strong>Chosen plan: {_e(chosen)}</strong></p>",
             f"<p>Rule: {_e(rec.rule)}</p>"]
    if rec.ties:
        parts.append(f"<p>Tied within Monte Carlo error (the draws cannot tell them apart): "
                     f"{_e(', '.join(rec.ties))}.</p>")
    for kind, v in rec.point_estimate_choices.items():
        verdict = "differs from" if v.get("differs") else "agrees with"
        parts.append(f"<p>Choosing on the posterior {_e(kind)} (a point estimate) gives {_e(v.get('chosen'))}, which "
                     f"{verdict} the full-posterior choice.</p>")
    parts.append("</div><h2>Plans compared</h2><table><tr><th>plan</th>"
                 + "".join(f"<th>{_e(t)}</th>" for t in targets) + "</tr>")
    for p in rec.plans:
        by = {e["target"]: e for e in p.get("estimates", [])}
        cells = "".join(f"<td>{_pct(by[t]['estimate'])} ± {_pct(by[t]['mcse'])}</td>" if t in by else "<td></td>"
                        for t in targets)
        mark = " (chosen)" if p["name"] == rec.chosen else ""
        css = ' class="chosen"' if mark else ""
        parts.append(f"<tr{css}><td>{_e(p['name'])}{mark}</td>{cells}</tr>")
    parts.append("</table><p>Estimates ± Monte Carlo standard error (from the posterior draws' autocorrelation).</p>")
    parts += [_intervals_html(p) for p in rec.plans]
    if rec.targets:
        parts.append("<p>Targets:</p><ul>" + "".join(f"<li><strong>{_e(t['name'])}</strong>: {_e(t['description'])}"
                                                     "</li>" for t in rec.targets) + "</ul>")
    parts.append('<h2>Warnings</h2><ul class="warn">' + ("".join(f"<li>{_e(w)}</li>" for w in rec.warnings)
                                                         or "<li>none</li>") + "</ul>")
    prov = [f"model: {rec.model.get('spec_name')} ({rec.model.get('spec_digest')})",
            f"population version: {rec.population_version}"]
    if rec.data:
        d = rec.data
        prov.append(f"data: {d.get('n_observations')} observations, {d.get('first_time')}-{d.get('last_time')} "
                    f"{d.get('time_unit')} ({d.get('data_digest')})")
    if rec.diagnostics:
        prov.append(f"diagnostics: {rec.diagnostics.get('status')}")
    prov.append("software: " + ", ".join(f"{k} {v}" for k, v in rec.software.items()))
    parts.append("<h2>Provenance</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in prov) + "</ul></body></html>")
    return "\n".join(parts) + "\n"
