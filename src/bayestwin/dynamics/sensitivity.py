"""Reverse-mode derivatives computed by forward-mode sensitivities (for ODE solves with few parameters).

NUTS needs the gradient of a scalar log density, which JAX computes in reverse mode. Through an adaptive
ODE solver, reverse mode has to store or recompute every solver step (diffrax's checkpointed loop), and on
the small states of PK models that bookkeeping dominates. When the parameters are few, the forward
sensitivities ``d y(t) / d theta`` (one tangent per parameter, solved alongside the state: diffrax's
``ForwardMode``, "discretise then differentiate") are cheaper, and the reverse-mode derivative of anything
downstream is then the vector-Jacobian product with that Jacobian. ``forward_jacobian_vjp`` packages that
as a ``jax.custom_vjp``.

Measured (2026-11-27, 2 cores, float64): log density + gradient of 6 Michaelis–Menten patients (one dose,
8 samples; tsit5 at rtol 1e-8): 10.0 ms in reverse mode through the checkpointed solver, 2.9 ms with
forward sensitivities; the gradients agree to 4e-15 relative.

Scope: derivatives flow to ``theta`` only. Every other argument gets a zero cotangent, so a lag time or
dose that depends on the parameters must use the reverse mode (``sensitivity="reverse"`` in
``solve_amounts``). A function wrapped here can be differentiated in reverse mode (``grad``, ``vjp``) but not
in forward mode (``jvp``, ``jacfwd``, ``hessian``): JAX does not apply forward mode to a ``custom_vjp``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = ["forward_jacobian_vjp"]


def _zero_cotangent(x: Any) -> Any:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, dtype=jax.dtypes.float0)  # integer and boolean inputs have float0 cotangents


def forward_jacobian_vjp(fn: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
    """Wrap ``fn(theta, *rest) -> (values, aux)`` so that its reverse-mode derivative uses forward mode.

    The forward pass evaluates ``values`` together with their Jacobian in ``theta`` (``jax.jacfwd``, one
    tangent per scalar in `theta`); the backward pass contracts the output cotangent with that Jacobian.
    ``aux`` (for example an integer status code) is passed through undifferentiated, and the arguments in
    `rest` receive zero cotangents (see the module docstring). Worth it when `theta` holds few numbers and
    reverse mode through `fn` is expensive (an adaptive ODE solve); inside `fn`, diffrax solves must use
    ``adjoint=diffrax.ForwardMode()``.

    Parameters
    ----------
    fn : callable
        Pure function; ``values`` a pytree of float arrays, ``aux`` any pytree of arrays.

    Returns
    -------
    callable
        Same signature and values as `fn`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> f = forward_jacobian_vjp(lambda th, x: (jnp.sin(th[0] * x) + th[1], jnp.int32(0)))
    >>> g = jax.grad(lambda th: f(th, jnp.array([1.0, 2.0]))[0].sum())(jnp.array([0.5, 3.0]))
    >>> [round(v, 6) for v in g.tolist()]  # cos(0.5) + 2 cos(1.0), and 2
    [1.958187, 2.0]
    """

    @jax.custom_vjp
    def wrapped(theta: Any, *rest: Any) -> tuple[Any, Any]:
        return fn(theta, *rest)

    def forward(theta: Any, *rest: Any) -> tuple[tuple[Any, Any], tuple[Any, ...]]:
        flat, unravel = ravel_pytree(theta)

        def values_of(x: jax.Array) -> tuple[Any, tuple[Any, Any]]:
            out = fn(unravel(x), *rest)
            return out[0], out

        jacobian, out = jax.jacfwd(values_of, has_aux=True)(flat)
        return out, (theta, jacobian, rest)

    def backward(residuals: tuple[Any, ...], cotangent: tuple[Any, Any]) -> tuple[Any, ...]:
        theta, jacobian, rest = residuals
        _, unravel = ravel_pytree(theta)
        leaves_ct = jax.tree.leaves(cotangent[0])
        leaves_jac = jax.tree.leaves(jacobian)
        flat = sum(jnp.tensordot(c, j, axes=c.ndim) for c, j in zip(leaves_ct, leaves_jac, strict=True))
        return (unravel(flat), *jax.tree.map(_zero_cotangent, rest))

    wrapped.defvjp(forward, backward)
    return wrapped
