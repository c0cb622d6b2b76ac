"""New measurements around predicted trajectories with shared noise: the residual error of plan comparisons.

Common random numbers: every plan adds the same standard-normal array ``(draw, time, output)`` scaled by each
draw's residual SD, so two plans' measurements differ only where their predictions differ.

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.spec import example_spec
>>> y = noisy(example_spec(), jnp.ones((2, 3, 1)), jnp.ones((2, 3, 1)), {"sigma_add": jnp.array([0.1, 0.2])})
>>> [round(float(v), 3) for v in y[:, 0, 0]]
[1.1, 1.2]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayestwin.inference.likelihood import residual_sd
from bayestwin.inference.outputs import sigma_groups
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["noisy", "noisy_column"]


def noisy(spec: TwinSpec, ipred: jax.Array, noise: jax.Array, sigmas: dict[str, jax.Array]) -> jax.Array:
    """A new measurement around `ipred` (..., draw, time, output) with the shared standard-normal `noise`.

    `noise` is ``(draw, time, output)`` and `sigmas` maps each residual SD site to its ``(draw,)`` values.
    """
    groups = sigma_groups(spec, {k: v[:, None] for k, v in sigmas.items()})  # (draw, 1)
    return jnp.stack([noisy_column(spec, j, ipred[..., j], noise[..., j], groups[j]) for j in range(len(spec.error))],
                     axis=-1)


def noisy_column(spec: TwinSpec, j: int, y: jax.Array, e: jax.Array, sds: dict[str, jax.Array]) -> jax.Array:
    """Output `j` of ``noisy``: `y` (..., draw, time), noise `e` (draw, time), SDs by name (``sigma_add``...)."""
    err = spec.error[j]
    scale = residual_sd(y, err.kind, sds, None)
    return jnp.exp(jnp.log(jnp.maximum(y, 1e-300)) + scale * e) if err.kind == "lognormal" else y + scale * e
