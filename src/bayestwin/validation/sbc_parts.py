"""An SBC run in parts: blocks of replications saved, moved between machines, and combined into one SBC.

A population SBC of an ODE model costs tens of CPU-hours (``validation/device_sbc.md``): more than one
session or device loan. ``run_sbc(..., replication_ids=ids)`` keys every replication by its id (prior draw,
observation noise and NUTS chains), so replication 17 is the same simulated data set wherever and with
whichever other replications it runs. This module stores such blocks as JSON (`sbc_to_dict`,
`sbc_from_dict`) and joins them (`combine_sbc`) after checking that they are parts of the same SBC: same
model, fitting spec, design and sampler settings, keyed replications, no replication counted twice.

Examples
--------
>>> import numpy as np, pandas as pd
>>> def part(ids):
...     ranks = pd.DataFrame({"tv_cl": np.asarray(ids) % 100}, index=pd.Index(ids, name="replication"))
...     rep = pd.DataFrame({"max_rhat": 1.0, "divergences": 0, "mean_steps": 7.0}, index=ranks.index)
...     return SBCResult("m", "s", ranks, n_draws=99, replications=rep, alpha=0.01, wall_s=1.0,
...                      settings={"replications": len(ids), "replication_keys": "fold_in", "devices": 1})
>>> whole = combine_sbc([part(range(0, 100)), part(range(100, 200))])
>>> len(whole.ranks), whole.wall_s, whole.settings["parts"]
(200, 2.0, 2)
>>> sbc_from_dict(sbc_to_dict(whole)).ranks.equals(whole.ranks)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from bayestwin.exceptions import SpecError
from bayestwin.validation.sbc import SBCResult

__all__ = ["combine_sbc", "sbc_from_dict", "sbc_to_dict"]

#: Settings that may differ between parts of one SBC: they change how the fits were laid out on the
#: machine, not which posterior each replication targets.
_LAYOUT = ("replications", "devices", "batch", "platform")


def combine_sbc(parts: Sequence[SBCResult]) -> SBCResult:
    """Join blocks of one SBC (``run_sbc(..., replication_ids=...)``) into one result.

    Parameters
    ----------
    parts : sequence of SBCResult
        Each run with ``replication_ids``; together they may cover any set of distinct replication ids.

    Returns
    -------
    SBCResult
        Ranks and per-replication diagnostics of every part, sorted by replication id; ``wall_s`` is the sum
        of the parts' wall times; ``settings`` are the parts' shared settings, with ``replications`` the total,
        ``parts`` their number, and any layout setting that differs (devices, batch, platform) listed as
        ``"a/b"``.

    Raises
    ------
    SpecError
        If a part was not keyed by replication, if two parts differ in model, spec, draws, level or a sampler
        or design setting, or if a replication id occurs twice.

    Examples
    --------
    See the module docstring.
    """
    if not parts:
        raise SpecError("combine_sbc: no parts given")
    first = parts[0]
    for i, p in enumerate(parts):
        if p.settings.get("replication_keys") != "fold_in":
            raise SpecError(f"combine_sbc: part {i} was not run with replication_ids= (its replications are keyed "
                            "by a split over the whole run, so they are not parts of a larger SBC); rerun it with "
                            "run_sbc(..., replication_ids=...)")
        same = {"model": (p.model, first.model), "spec": (p.spec, first.spec), "n_draws": (p.n_draws, first.n_draws),
                "alpha": (p.alpha, first.alpha), "quantities": (list(p.ranks.columns), list(first.ranks.columns))}
        same |= {f"settings[{k!r}]": (p.settings.get(k), first.settings.get(k))
                 for k in set(p.settings) | set(first.settings) if k not in _LAYOUT}
        wrong = [f"{k}: {a!r} vs {b!r}" for k, (a, b) in same.items() if a != b]
        if wrong:
            raise SpecError(f"combine_sbc: part {i} is not part of the same SBC as part 0 -- " + "; ".join(wrong))
    ranks = pd.concat([p.ranks for p in parts])
    dup = ranks.index[ranks.index.duplicated()].unique()
    if len(dup):
        raise SpecError(f"combine_sbc: replication ids {sorted(dup.tolist())[:10]} occur in more than one part; "
                        "each replication may be counted once")
    order = ranks.index.argsort(kind="stable")
    replications = pd.concat([p.replications for p in parts]).iloc[order]
    settings = dict(first.settings)
    for k in _LAYOUT[1:]:
        values = list(dict.fromkeys(str(p.settings[k]) for p in parts if k in p.settings))
        if len(values) > 1:
            settings[k] = "/".join(values)
    settings |= {"replications": len(ranks), "parts": len(parts)}
    return SBCResult(model=first.model, spec=first.spec, ranks=ranks.iloc[order], n_draws=first.n_draws,
                     replications=replications, alpha=first.alpha, wall_s=sum(p.wall_s for p in parts),
                     settings=settings)


def sbc_to_dict(result: SBCResult) -> dict[str, Any]:
    """A JSON-serialisable record of `result` (ranks, per-replication diagnostics, settings); see `sbc_from_dict`.

    Examples
    --------
    See the module docstring.
    """
    def table(frame: pd.DataFrame) -> dict[str, Any]:
        return {"index": [int(i) for i in frame.index], "columns": {c: frame[c].tolist() for c in frame.columns}}

    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in result.settings.items()}
    return {"model": result.model, "spec": result.spec, "n_draws": result.n_draws, "alpha": result.alpha,
            "wall_s": result.wall_s, "settings": settings, "ranks": table(result.ranks),
            "replications": table(result.replications)}


def sbc_from_dict(record: Mapping[str, Any]) -> SBCResult:
    """The `SBCResult` stored by `sbc_to_dict` (lists in settings come back as tuples, as ``run_sbc`` gives them).

    Examples
    --------
    See the module docstring.
    """
    def frame(t: Mapping[str, Any]) -> pd.DataFrame:
        return pd.DataFrame(dict(t["columns"]), index=pd.Index(t["index"], name="replication"))

    settings = {k: (tuple(v) if isinstance(v, list) else v) for k, v in record["settings"].items()}
    return SBCResult(model=record["model"], spec=record["spec"], ranks=frame(record["ranks"]),
                     n_draws=int(record["n_draws"]), replications=frame(record["replications"]),
                     alpha=float(record["alpha"]), wall_s=float(record["wall_s"]), settings=settings)
