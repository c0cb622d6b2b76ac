"""Ready-made right-hand sides for ``bayestwin.dynamics.ode.solve_amounts``.

Each has the signature ``rhs(t, a, theta, rate) -> da/dt`` on *amounts* ``a``,
adds the infusion input ``rate`` (amount per time, per compartment) to
``da/dt``, and reads ``theta`` by position (an array or any sequence). Units are
whatever the caller uses consistently, e.g. mg, L, h; concentrations are amounts
divided by the volume that the caller also holds in ``theta``.

=======================  ===============  ================================
rhs                      compartments     theta
=======================  ===============  ================================
``one_cmt_iv_rhs``       central          CL, V
``one_cmt_oral_rhs``     depot, central   ka, CL, V
``two_cmt_iv_rhs``       central, periph  CL, V1, Q, V2
``two_cmt_oral_rhs``     depot, central,  ka, CL, V1, Q, V2
                         periph
``one_cmt_oral_mm_rhs``  depot, central   ka, Km, Vm, V
=======================  ===============  ================================

Examples
--------
>>> import jax.numpy as jnp
>>> one_cmt_oral_rhs(0.0, jnp.array([100.0, 0.0]), jnp.array([1.0, 5.0, 50.0]), jnp.zeros(2)).tolist()
[-100.0, 100.0]
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import Array

__all__ = ["LINEAR_MATRICES", "one_cmt_iv_rhs", "one_cmt_oral_mm_rhs", "one_cmt_oral_rhs", "two_cmt_iv_rhs",
           "two_cmt_oral_rhs"]


def one_cmt_iv_rhs(t: Array | float, a: Array, theta: Any, rate: Array) -> Array:
    """One compartment, linear elimination: ``d central/dt = -(CL/V)·central``; ``theta = (CL, V)``."""
    return jnp.stack([-theta[0] / theta[1] * a[0]]) + rate


def one_cmt_oral_rhs(t: Array | float, a: Array, theta: Any, rate: Array) -> Array:
    """One compartment, first-order absorption from a depot, linear elimination.

    ``d depot/dt = -ka·depot``, ``d central/dt = ka·depot - (CL/V)·central``.

    Parameters
    ----------
    t : float
        Time (unused: the model is autonomous).
    a : array, shape (2,)
        Amounts in the depot (cmt 0) and central (cmt 1) compartments.
    theta : array-like, shape (3,)
        ``ka`` (1/time), ``CL`` (volume/time), ``V`` (volume).
    rate : array, shape (2,)
        Infusion input (amount/time) per compartment.
    """
    ka, cl, v = theta[0], theta[1], theta[2]
    depot, central = a[0], a[1]
    return jnp.stack([-ka * depot, ka * depot - cl / v * central]) + rate


def two_cmt_iv_rhs(t: Array | float, a: Array, theta: Any, rate: Array) -> Array:
    """Two compartments, dosing into the central one, linear elimination from it.

    ``d central/dt = -(CL/V1)·central - (Q/V1)·central + (Q/V2)·periph`` and
    ``d periph/dt = (Q/V1)·central - (Q/V2)·periph``.

    Parameters
    ----------
    t : float
        Time (unused: the model is autonomous).
    a : array, shape (2,)
        Amounts in the central (cmt 0) and peripheral (cmt 1) compartments.
    theta : array-like, shape (4,)
        ``CL`` (volume/time), ``V1`` (volume), ``Q`` (inter-compartmental clearance, volume/time), ``V2`` (volume).
    rate : array, shape (2,)
        Infusion input (amount/time) per compartment.
    """
    cl, v1, q, v2 = theta[0], theta[1], theta[2], theta[3]
    central, periph = a[0], a[1]
    flow = q / v1 * central - q / v2 * periph
    return jnp.stack([-cl / v1 * central - flow, flow]) + rate


def two_cmt_oral_rhs(t: Array | float, a: Array, theta: Any, rate: Array) -> Array:
    """Two compartments with first-order absorption from a depot (cmt 0) into the central one (cmt 1).

    ``theta = (ka, CL, V1, Q, V2)``; the central and peripheral compartments follow ``two_cmt_iv_rhs``.
    """
    ka = theta[0]
    inner = two_cmt_iv_rhs(t, a[1:], theta[1:], rate[1:])
    return jnp.concatenate([jnp.stack([-ka * a[0] + rate[0]]), inner.at[0].add(ka * a[0])])


def one_cmt_oral_mm_rhs(t: Array | float, a: Array, theta: Any, rate: Array) -> Array:
    """One compartment, first-order absorption, Michaelis–Menten (saturable) elimination.

    ``d depot/dt = -ka·depot``, ``d central/dt = ka·depot - Vm·C/(Km + C)`` with ``C = central/V``.

    This is the posteriordb model ``one_comp_mm_elim_abs`` in amounts. Stan integrates the concentration,
    ``dC/dt = D·ka·exp(-ka·t)/V - (Vm/V)·C/(Km + C)``; the first term is ``ka·depot/V`` for a bolus ``D`` into the
    depot at ``t = 0``, so multiplying by ``V`` gives the equations above, with the same parameters in the same
    order (``theta = {k_a, K_m, V_m}`` there, ``V`` data) and the same units: time in days, amounts in mg, ``V`` in
    L, ``C`` and ``Km`` in mg/L, ``ka`` in 1/day and ``Vm`` in mg/day. (The Stan file's comment calls ``V_m``
    "1/day", but ``(V_m/V)·C/(K_m + C)`` is in mg/L/day only when ``V_m`` is in mg/day.)

    Parameters
    ----------
    t : float
        Time (unused: the model is autonomous).
    a : array, shape (2,)
        Amounts in the depot (cmt 0) and central (cmt 1) compartments, mg.
    theta : array-like, shape (4,)
        ``ka`` (1/day), ``Km`` (mg/L), ``Vm`` (mg/day), ``V`` (L).
    rate : array, shape (2,)
        Infusion input (mg/day) per compartment.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> d = one_cmt_oral_mm_rhs(0.0, jnp.array([0.0, 2.0]), jnp.array([1.0, 1.0, 3.0, 2.0]), jnp.zeros(2))
    >>> d.tolist()  # C = 1 mg/L = Km: elimination at half of Vm
    [0.0, -1.5]
    """
    ka, km, vm, v = theta[0], theta[1], theta[2], theta[3]
    depot, central = a[0], a[1]
    conc = central / v
    return jnp.stack([-ka * depot, ka * depot - vm * conc / (km + conc)]) + rate


def one_cmt_iv_matrix(theta: Any) -> Array:
    """``K`` of ``one_cmt_iv_rhs`` (``da/dt = K a + rate``)."""
    return jnp.reshape(-theta[0] / theta[1], (1, 1))


def one_cmt_oral_matrix(theta: Any) -> Array:
    """``K`` of ``one_cmt_oral_rhs``."""
    ka, k = theta[0], theta[1] / theta[2]
    return jnp.array([[-ka, 0.0], [ka, -k]])


def two_cmt_iv_matrix(theta: Any) -> Array:
    """``K`` of ``two_cmt_iv_rhs``."""
    cl, v1, q, v2 = theta[0], theta[1], theta[2], theta[3]
    return jnp.array([[-(cl + q) / v1, q / v2], [q / v1, -q / v2]])


def two_cmt_oral_matrix(theta: Any) -> Array:
    """``K`` of ``two_cmt_oral_rhs``."""
    ka = theta[0]
    inner = two_cmt_iv_matrix(theta[1:])
    return jnp.zeros((3, 3)).at[0, 0].set(-ka).at[1, 0].set(ka).at[1:, 1:].set(inner)


#: The linear right-hand sides and their matrices ``K`` (``rhs(t, a, theta, rate) == K(theta) @ a + rate``).
LINEAR_MATRICES = {one_cmt_iv_rhs: one_cmt_iv_matrix, one_cmt_oral_rhs: one_cmt_oral_matrix,
                   two_cmt_iv_rhs: two_cmt_iv_matrix, two_cmt_oral_rhs: two_cmt_oral_matrix}
