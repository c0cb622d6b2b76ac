"""NUTS settings and the one place MCMC runs.

Examples
--------
>>> SamplerConfig().chains, SamplerConfig.fast().draws
(4, 250)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
from numpyro.infer import MCMC, NUTS

from bayestwin.config import fast_mode

__all__ = ["SamplerConfig", "run_nuts"]


@dataclass(frozen=True)
class SamplerConfig:
    """NUTS settings. Same seed, same data, same settings: same draws.

    ``chain_method="vectorized"`` runs all chains in one compiled program (best
    on a CPU with few cores); ``"sequential"`` shows a progress bar per chain.
    """

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    seed: int = 0
    target_accept: float = 0.9
    max_tree_depth: int = 10
    dense_mass: bool = False
    chain_method: Literal["vectorized", "sequential", "parallel"] = "vectorized"
    progress_bar: bool = False

    @classmethod
    def fast(cls, **changes: Any) -> SamplerConfig:
        """Small settings for notebooks in CI and smoke tests (same code path)."""
        return cls(**({"chains": 2, "warmup": 250, "draws": 250} | changes))

    @classmethod
    def default(cls, **changes: Any) -> SamplerConfig:
        """The standard settings, or the fast ones when ``BAYESTWIN_FAST=1``."""
        return cls.fast(**changes) if fast_mode() else cls(**changes)


def run_nuts(model: Callable[..., None], args: tuple[Any, ...], config: SamplerConfig) -> MCMC:
    """Run NUTS on `model(*args)`; return the finished ``numpyro.infer.MCMC``."""
    kernel = NUTS(model, target_accept_prob=config.target_accept, max_tree_depth=config.max_tree_depth,
                  dense_mass=config.dense_mass)
    mcmc = MCMC(kernel, num_warmup=config.warmup, num_samples=config.draws, num_chains=config.chains,
                chain_method=config.chain_method, progress_bar=config.progress_bar)
    mcmc.run(jax.random.PRNGKey(config.seed), *args, extra_fields=("diverging", "energy", "num_steps"))
    return mcmc
