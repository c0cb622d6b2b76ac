"""A declared fit policy for the monitoring twin: only fits that pass their convergence gate are used.

Every signal is fitted with the policy's ``first`` sampler settings; a fit that fails its convergence gate
is refitted ONCE with the ``retry`` settings (longer chains); a signal that still fails is reported loudly
(a ``ConvergenceWarning`` naming it and what failed) and the cohort's result is marked not valid
(``CohortFits.valid`` is False): an evaluation built on it cannot count for or against a target. The
same policy applies to every cohort, so no cohort gets longer chains because its result looked bad.

Default (``FitPolicy()``): 4 chains x 500 warm-up + 750 draws, refit at 4 x 1000 + 1500, seed 0, initial
values from the prior (the settings of ``validation/monitor_eval.py``).

Examples
--------
>>> from types import SimpleNamespace
>>> def fake_fit(frame, signal, *, sampler, gate=None):  # fails unless given >= 1000 draws
...     ok = sampler.draws >= 1000
...     diag = SimpleNamespace(max_rhat=1.0 if ok else 1.02, min_ess=900.0, divergences=0)
...     return SimpleNamespace(ok=ok, diagnostics=diag, wall_time_s=1.0)
>>> fits = fit_cohort(None, ["heart_rate"], FitPolicy(), fit_fn=fake_fit)
>>> fits.valid, fits.table()["attempt"].tolist(), fits.table()["gate"].tolist()
(True, [1, 2], ['FAILED', 'OK'])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bayestwin.diagnostics import ConvergenceGate
from bayestwin.exceptions import ConvergenceWarning
from bayestwin.inference.sampler import SamplerConfig
from bayestwin.monitor.model import fit_signal

__all__ = ["CohortFits", "FitAttempt", "FitPolicy", "fit_cohort"]


def _first() -> SamplerConfig:
    return SamplerConfig(chains=4, warmup=500, draws=750, seed=0, init="prior")


def _retry() -> SamplerConfig:
    return SamplerConfig(chains=4, warmup=1000, draws=1500, seed=0, init="prior")


@dataclass(frozen=True, kw_only=True)
class FitPolicy:
    """Sampler settings of the first fit and of the single refit of a signal whose fit failed its gate.

    ``retry=None`` means no refit (a failed first fit makes the cohort not valid at once).

    Examples
    --------
    >>> p = FitPolicy()
    >>> (p.first.chains, p.first.warmup, p.first.draws), (p.retry.warmup, p.retry.draws)
    ((4, 500, 750), (1000, 1500))
    >>> p.describe()
    '4 x 500 + 750; a fit failing its gate is refitted once at 4 x 1000 + 1500'
    """

    first: SamplerConfig = field(default_factory=_first)
    retry: SamplerConfig | None = field(default_factory=_retry)
    gate: ConvergenceGate | None = None

    def describe(self) -> str:
        """One line: the first fit's and the refit's chains x warm-up + draws."""
        f, r = self.first, self.retry
        text = f"{f.chains} x {f.warmup} + {f.draws}"
        if r is None:
            return text + "; no refit"
        return text + f"; a fit failing its gate is refitted once at {r.chains} x {r.warmup} + {r.draws}"


@dataclass(frozen=True)
class FitAttempt:
    """One fit of one signal: which attempt, its sampler settings, gate outcome, worst diagnostics, wall time."""

    signal: str
    attempt: int
    sampler: SamplerConfig
    ok: bool
    max_rhat: float
    min_ess: float
    divergences: int
    wall_time_s: float


@dataclass(frozen=True)
class CohortFits:
    """The fits a cohort's evaluation may use (the last attempt per signal) and every attempt made.

    ``valid`` is True only when every signal's last attempt passed its gate; ``failed`` names the others.
    """

    fits: dict[str, Any]
    attempts: tuple[FitAttempt, ...]
    policy: FitPolicy

    @property
    def failed(self) -> tuple[str, ...]:
        """Signals whose last attempt failed its gate (after the refit)."""
        return tuple(s for s, f in self.fits.items() if not f.ok)

    @property
    def valid(self) -> bool:
        """True when every signal's fit used by the evaluation passed its gate."""
        return not self.failed

    @property
    def refitted(self) -> tuple[str, ...]:
        """Signals that needed the refit."""
        return tuple(sorted({a.signal for a in self.attempts if a.attempt > 1}))

    def table(self) -> pd.DataFrame:
        """One row per attempt: signal, attempt, chains x warm-up + draws, gate, R-hat, ESS, divergences, wall."""
        return pd.DataFrame([{"signal": a.signal, "attempt": a.attempt,
                              "sampler": f"{a.sampler.chains} x {a.sampler.warmup} + {a.sampler.draws}",
                              "gate": "OK" if a.ok else "FAILED", "max_rhat": a.max_rhat, "min_ess": a.min_ess,
                              "divergences": a.divergences, "wall_s": a.wall_time_s} for a in self.attempts])


def _attempt(fit_fn: Callable[..., Any], frame: Any, signal: str, sampler: SamplerConfig,
             gate: ConvergenceGate | None, n: int) -> tuple[Any, FitAttempt]:
    with warnings.catch_warnings():  # the policy reports failures itself, once, after the refit
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = fit_fn(frame, signal, sampler=sampler, gate=gate)
    d = fit.diagnostics
    return fit, FitAttempt(signal, n, sampler, bool(fit.ok), float(d.max_rhat), float(d.min_ess),
                           int(d.divergences), float(fit.wall_time_s))


def fit_cohort(frame: pd.DataFrame, signals: Sequence[str], policy: FitPolicy | None = None, *,
               fit_fn: Callable[..., Any] = fit_signal,
               on_attempt: Callable[[FitAttempt], None] | None = None) -> CohortFits:
    """Fit every signal of `frame` under `policy`: one refit of a failing fit, then a loud report if it still fails.

    Parameters
    ----------
    frame : pandas.DataFrame
        Canonical stream rows to fit on (``fit_signal``'s input).
    signals : sequence of str
        Signals to fit, in order.
    policy : FitPolicy, optional
        Sampler settings of the first fit and of the refit (default ``FitPolicy()``).
    fit_fn : callable
        ``fit_fn(frame, signal, *, sampler, gate)`` returning an object with ``ok``, ``diagnostics``
        (``max_rhat``, ``min_ess``, ``divergences``) and ``wall_time_s`` (default ``fit_signal``).
    on_attempt : callable, optional
        Called with each ``FitAttempt`` as soon as it is done (progress output of long runs).

    Returns
    -------
    CohortFits
        The last fit of every signal, every attempt, and ``valid`` (every fit used passed its gate). A signal
        that still fails after the refit emits a ``ConvergenceWarning`` that names it and its diagnostics and
        says that the cohort's evaluation is not valid.

    Examples
    --------
    >>> import warnings
    >>> from types import SimpleNamespace
    >>> def never(frame, signal, *, sampler, gate=None):
    ...     diag = SimpleNamespace(max_rhat=1.05, min_ess=80.0, divergences=3)
    ...     return SimpleNamespace(ok=False, diagnostics=diag, wall_time_s=0.0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     fits = fit_cohort(None, ["spo2"], FitPolicy(), fit_fn=never)
    >>> fits.valid, fits.failed, len(fits.attempts), "NOT VALID" in str(caught[0].message)
    (False, ('spo2',), 2, True)
    """
    policy = policy or FitPolicy()
    fits: dict[str, Any] = {}
    attempts: list[FitAttempt] = []
    for sig in signals:
        fit, rec = _attempt(fit_fn, frame, sig, policy.first, policy.gate, 1)
        attempts.append(rec)
        if on_attempt is not None:
            on_attempt(rec)
        if not rec.ok and policy.retry is not None:
            fit, rec = _attempt(fit_fn, frame, sig, policy.retry, policy.gate, 2)
            attempts.append(rec)
            if on_attempt is not None:
                on_attempt(rec)
        if not rec.ok:
            warnings.warn(
                f"fit of signal {sig!r} FAILED its convergence gate after {rec.attempt} attempt(s) under the fit "
                f"policy ({policy.describe()}): max R-hat {rec.max_rhat:.3f}, min ESS {rec.min_ess:.0f}, "
                f"{rec.divergences} divergences. The evaluation of this cohort is NOT VALID; look at the fit "
                "(fit.diagnostics.format()) and change the model or the policy for EVERY cohort, not this one.",
                ConvergenceWarning, stacklevel=2)
        fits[sig] = fit
    return CohortFits(fits, tuple(attempts), policy)
