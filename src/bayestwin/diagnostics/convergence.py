"""The convergence gate every fit passes through before its output may be used.

Defaults follow current practice (Vehtari et al. 2021, rank-normalised split
R-hat): R-hat < 1.01, bulk and tail ESS >= 400, no divergent transitions,
E-BFMI >= 0.2 in every chain. A fit that fails is marked failed, and the report
says what failed and what to try.

Examples
--------
>>> import numpy as np, arviz as az
>>> rng = np.random.default_rng(0)
>>> idata = az.from_dict(posterior={"mu": rng.normal(size=(4, 1000))},
...                      sample_stats={"diverging": np.zeros((4, 1000), bool),
...                                    "energy": rng.normal(size=(4, 1000))})
>>> check_convergence(idata).ok
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayestwin.diagnostics.groups import group_draws
from bayestwin.diagnostics.rank_stats import bfmi as _bfmi
from bayestwin.diagnostics.rank_stats import ess_bulk, ess_tail, rhat_rank

if TYPE_CHECKING:  # pragma: no cover - only its .posterior and .sample_stats are read (arviz loads slowly)
    import arviz as az

    from bayestwin.diagnostics.groups import InferenceGroups

__all__ = ["ConvergenceGate", "ConvergenceReport", "check_convergence"]


@dataclass(frozen=True)
class ConvergenceGate:
    """Thresholds of the convergence gate (all configurable)."""

    max_rhat: float = 1.01
    min_ess_bulk: float = 400.0
    min_ess_tail: float = 400.0
    max_divergences: int = 0
    min_bfmi: float = 0.2


@dataclass(frozen=True)
class ConvergenceReport:
    """Outcome of the gate: per-quantity table, divergences, E-BFMI, failures and advice."""

    ok: bool
    table: pd.DataFrame
    divergences: int
    bfmi: tuple[float, ...]
    failures: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()
    gate: ConvergenceGate = field(default_factory=ConvergenceGate)

    @property
    def max_rhat(self) -> float:
        """Largest R-hat over the checked quantities."""
        return float(self.table["r_hat"].max())

    @property
    def min_ess(self) -> float:
        """Smallest bulk or tail ESS over the checked quantities."""
        return float(self.table[["ess_bulk", "ess_tail"]].min().min())

    def format(self) -> str:
        """Human-readable verdict, with what failed and what to try."""
        head = (f"convergence {'OK' if self.ok else 'FAILED'}: R-hat <= {self.max_rhat:.3f}, "
                f"ESS >= {self.min_ess:.0f}, {self.divergences} divergences, "
                f"E-BFMI >= {min(self.bfmi) if self.bfmi else float('nan'):.2f}")
        lines = [head]
        lines += [f"  failed: {f}" for f in self.failures]
        lines += [f"  try: {a}" for a in self.advice]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe summary (for forecasts and manifests)."""
        return {"ok": self.ok, "max_rhat": self.max_rhat, "min_ess": self.min_ess, "divergences": self.divergences,
                "min_bfmi": min(self.bfmi) if self.bfmi else None, "failures": list(self.failures)}


def check_convergence(
    idata: az.InferenceData | InferenceGroups, var_names: Sequence[str] | None = None,
    gate: ConvergenceGate | None = None
) -> ConvergenceReport:
    """Apply the convergence gate to the posterior in `idata`.

    Parameters
    ----------
    idata : arviz.InferenceData or InferenceGroups
        With ``posterior`` and ``sample_stats`` (``diverging``, ``energy``); an ``InferenceGroups`` (draws read
        or built without arviz, ``bayestwin.diagnostics.groups``) is gated without importing arviz.
    var_names : sequence of str, optional
        Quantities to check (default: every posterior variable).
    gate : ConvergenceGate, optional
        Thresholds (default: R-hat 1.01, ESS 400, 0 divergences, E-BFMI 0.2).
    """
    gate = gate or ConvergenceGate()
    post = idata.posterior
    names = list(var_names) if var_names is not None else list(getattr(post, "data_vars", post))
    rows = []
    for name in names:
        values = group_draws(post, name)
        flat = values.reshape(*values.shape[:2], -1)
        for i in range(flat.shape[2]):
            label = name if flat.shape[2] == 1 else f"{name}[{i}]"
            x = flat[:, :, i]
            rows.append((label, rhat_rank(x), ess_bulk(x), ess_tail(x)))
    table = pd.DataFrame(rows, columns=["quantity", "r_hat", "ess_bulk", "ess_tail"]).set_index("quantity")
    n_chains = post.sizes["chain"] if hasattr(post, "sizes") else next(iter(post.values())).shape[0]
    stats = idata.sample_stats
    divergences = int(np.sum(group_draws(stats, "diverging"))) if "diverging" in stats else 0
    bfmi = tuple(float(b) for b in _bfmi(group_draws(stats, "energy"))) if "energy" in stats else ()
    failures: list[str] = []
    advice: list[str] = []
    if n_chains < 2:
        failures.append(f"only {n_chains} chain: R-hat needs at least 2 chains")
        advice.append("run 4 chains")
    bad_rhat = table[~(table["r_hat"] < gate.max_rhat)]
    if len(bad_rhat):
        worst = bad_rhat["r_hat"].idxmax() if bad_rhat["r_hat"].notna().any() else bad_rhat.index[0]
        failures.append(f"R-hat >= {gate.max_rhat} for {len(bad_rhat)} quantities (worst {worst}: "
                        f"{bad_rhat['r_hat'].max():.3f})")
        advice.append("run longer warm-up and more draws; check for multimodality or a non-identifiable parameter")
    low_ess = table[~((table["ess_bulk"] >= gate.min_ess_bulk) & (table["ess_tail"] >= gate.min_ess_tail))]
    if len(low_ess):
        lowest = low_ess[["ess_bulk", "ess_tail"]].min(axis=1)
        worst = lowest.idxmin()
        failures.append(f"ESS below {gate.min_ess_bulk:.0f} (bulk) / {gate.min_ess_tail:.0f} (tail) for "
                        f"{len(low_ess)} quantities (worst {worst}: {lowest[worst]:.0f})")
        advice.append("draw more samples, or reparametrise (non-centred random effects) to reduce autocorrelation")
    if divergences > gate.max_divergences:
        failures.append(f"{divergences} divergent transitions")
        advice.append("raise target_accept (e.g. 0.95), use the non-centred parametrisation, or tighten weak priors "
                      "(a funnel or a non-identifiable model)")
    low_bfmi = [b for b in bfmi if b < gate.min_bfmi]
    if low_bfmi:
        failures.append(f"E-BFMI {min(low_bfmi):.2f} < {gate.min_bfmi} in {len(low_bfmi)} chains")
        advice.append("the sampler explores the energy poorly: reparametrise or use better-scaled priors")
    return ConvergenceReport(ok=not failures, table=table, divergences=divergences, bfmi=bfmi,
                             failures=tuple(failures), advice=tuple(dict.fromkeys(advice)), gate=gate)
