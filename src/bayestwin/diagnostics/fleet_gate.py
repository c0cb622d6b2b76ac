"""The convergence gate of a fleet of twins, patient by patient, vectorised over the ``patient`` dim.

``fit_fleet`` (``bayestwin.inference.fleet``) fits N patients' posteriors in one program; each must pass the
project's gate on its own, with the rules of ``check_convergence`` (R-hat, bulk and tail ESS over the latent
parameters with BSV, divergences, E-BFMI). ``fleet_diagnostics`` computes those statistics for every
patient of one ``InferenceData`` with a ``patient`` dim and says why each failed patient failed;
``format_failures`` lists them for a warning or an error message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayestwin.diagnostics.convergence import ConvergenceGate
from bayestwin.diagnostics.rank_stats import bfmi as chain_bfmi
from bayestwin.diagnostics.rank_stats import ess_bulk, ess_tail, rhat_rank

if TYPE_CHECKING:
    import arviz as az

__all__ = ["fleet_diagnostics", "format_failures"]


def fleet_diagnostics(idata: az.InferenceData, var_names: list[str], gate: ConvergenceGate) -> pd.DataFrame:
    """Each patient's convergence gate, vectorised over the ``patient`` dim (same rules as ``check_convergence``).

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> rng = np.random.default_rng(0)
    >>> idata = az.from_dict(posterior={"x": rng.normal(size=(4, 500, 2))},
    ...                      sample_stats={"diverging": np.zeros((4, 500, 2), bool),
    ...                                    "energy": rng.normal(size=(4, 500, 2))},
    ...                      dims={"x": ["patient"], "diverging": ["patient"], "energy": ["patient"]},
    ...                      coords={"patient": ["A", "B"]})
    >>> fleet_diagnostics(idata, ["x"], ConvergenceGate())["ok"].tolist()
    [True, True]
    """
    post = idata.posterior[var_names]
    # (patient, var, chain, draw); the gate's own numpy statistics (check_convergence's), patient by patient
    draws = np.stack([post[v].transpose("patient", "chain", "draw").to_numpy() for v in var_names], axis=1)
    rhat = np.array([[rhat_rank(x) for x in d] for d in draws]).T  # (var, patient)
    bulk = np.array([[ess_bulk(x) for x in d] for d in draws]).T
    tail = np.array([[ess_tail(x) for x in d] for d in draws]).T
    stats = idata.sample_stats
    div = stats["diverging"].sum(("chain", "draw")).to_numpy().astype(int)
    energy = stats["energy"].transpose("patient", "chain", "draw").to_numpy()
    bfmi = np.array([chain_bfmi(e) for e in energy])  # (patient, chain)
    n_chains = post.sizes["chain"]
    worst_rhat = np.where(np.isnan(rhat), np.inf, rhat)  # an undefined R-hat counts as the worst
    table = pd.DataFrame({"max_rhat": worst_rhat.max(axis=0),
                          "min_ess_bulk": bulk.min(axis=0), "min_ess_tail": tail.min(axis=0),
                          "divergences": div, "min_bfmi": bfmi.min(axis=1)},
                         index=pd.Index(idata.posterior["patient"].to_numpy(), name="patient"))
    failures = []
    for i in range(len(table)):
        why = []
        if n_chains < 2:
            why.append(f"only {n_chains} chain")
        bad = ~(rhat[:, i] < gate.max_rhat)
        if bad.any():
            j = int(np.argmax(worst_rhat[:, i]))
            why.append(f"R-hat >= {gate.max_rhat} (worst {var_names[j]}: {rhat[j, i]:.3f})")
        low = ~((bulk[:, i] >= gate.min_ess_bulk) & (tail[:, i] >= gate.min_ess_tail))
        if low.any():
            why.append(f"ESS {min(bulk[:, i].min(), tail[:, i].min()):.0f} < {gate.min_ess_bulk:.0f}")
        if div[i] > gate.max_divergences:
            why.append(f"{div[i]} divergences")
        if (bfmi[i] < gate.min_bfmi).any():
            why.append(f"E-BFMI {bfmi[i].min():.2f} < {gate.min_bfmi}")
        failures.append("; ".join(why))
    table["ok"] = [not f for f in failures]
    table["failures"] = failures
    return table


def format_failures(table: pd.DataFrame, limit: int = 20) -> str:
    """One line per failed patient (at most `limit`, then a count).

    Examples
    --------
    >>> t = pd.DataFrame({"ok": [True, False], "failures": ["", "2 divergences"]}, index=["A", "B"])
    >>> print(format_failures(t))
      patient 'B': 2 divergences
    """
    bad = table[~table["ok"]]
    lines = [f"  patient {pid!r}: {row.failures}" for pid, row in bad.head(limit).iterrows()]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more (FleetFit.failed lists them all)")
    return "\n".join(lines)
