"""Drug-effect (pharmacodynamic) kernels: Emax functions, the effect site, indirect-response right-hand sides.

Three building blocks that ``bayestwin.models.pd`` links to a PK model:

* ``drug_effect(c, cap, c50, gamma)``: the (sigmoid) Emax / Hill function ``cap c^g / (c50^g + c^g)``
  (Hill 1910; Holford & Sheiner 1981), evaluated as ``cap sigmoid(g (log c - log c50))`` so that large Hill
  coefficients neither overflow nor lose the gradient, and exactly 0 (with finite gradients) at ``c <= 0``.
* ``effect_site_modes``: the effect-compartment (biophase) model of Sheiner et al. (1979),
  ``dCe/dt = ke0 (C - Ce)``. For a linear PK model whose concentration after a unit dose into compartment
  ``j`` is ``sum_i coeffs[j, i] exp(-lambdas[i] t)``, the effect-site concentration is again a sum of
  exponentials, with one more mode, ``ke0``:
  ``Ce = sum_i coeffs[j, i] ke0 / (ke0 - lambdas[i]) (exp(-lambdas[i] t) - exp(-ke0 t))``.
  Fed to ``bayestwin.dynamics.closed_form.superpose`` (with its depot, infusion and steady-state handling) this
  is the closed form of ``Ce`` for every dosing history.
* ``linked_rhs``: a PK right-hand side (``bayestwin.dynamics.ode_models``) with one more state driven by the
  plasma concentration: the effect site, or the response of one of the four indirect-response (turnover)
  models of Dayneka, Garg & Jusko (1993), ``dR/dt = kin - kout R`` with the drug inhibiting or stimulating
  ``kin`` or ``kout``. The response state is the *deviation from baseline* ``r = R - R0`` (``kin = R0 kout``),
  so it starts at 0 like the amounts, and a reset (EVID 3/4) returns the patient to baseline.

======  =================================  ==================================================
model   response                           ``dr/dt``, ``r = R - R0``, ``I = imax C/(ic50 + C)``
======  =================================  ==================================================
idr1    inhibition of production (kin)     ``-kin I - kout r``
idr2    inhibition of loss (kout)          ``-kout r + kout I (r + R0)``
idr3    stimulation of production (kin)    ``kin S - kout r``, ``S = emax C/(ec50 + C)``
idr4    stimulation of loss (kout)         ``-kout r - kout S (r + R0)``
======  =================================  ==================================================

Units: whatever the caller uses consistently (time h, concentration mg/L by default); ``kout`` and ``ke0``
are per time, ``R0`` in the response's unit.

Examples
--------
>>> import jax.numpy as jnp
>>> float(drug_effect(2.0, 10.0, 2.0, 1.0))  # half of the maximum at the EC50
5.0
>>> from bayestwin.dynamics.ode_models import one_cmt_iv_rhs
>>> rhs = linked_rhs(one_cmt_iv_rhs, n_pk=2, central=0, volume=1, state="idr1")
>>> theta = jnp.array([2.0, 20.0, 10.0, 0.5, 5.0, 1.0])  # CL, V, then R0, kout, IC50, Imax
>>> [round(x, 6) for x in rhs(0.0, jnp.array([100.0, 0.0]), theta, jnp.zeros(2)).tolist()]  # C = 5 = IC50
[-10.0, -2.5]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from bayestwin.exceptions import SpecError

__all__ = ["IDR_STATES", "drug_effect", "effect_site_modes", "linked_rhs"]

Rhs = Callable[[Any, Array, Any, Array], Array]

#: Extra states ``linked_rhs`` can append: the effect site and the four indirect-response models.
IDR_STATES: tuple[str, ...] = ("idr1", "idr2", "idr3", "idr4")
_STATES = ("effect_site", *IDR_STATES)

#: Relative gap below which ``ke0`` is moved off a PK rate it coincides with (see ``effect_site_modes``).
_COINCIDENT = 1e-6


def drug_effect(c: ArrayLike, cap: ArrayLike, c50: ArrayLike, gamma: ArrayLike = 1.0) -> Array:
    """Sigmoid Emax (Hill) function ``cap c^gamma / (c50^gamma + c^gamma)``; 0 for ``c <= 0``.

    Parameters
    ----------
    c : array
        Concentration (any unit, the same as `c50`).
    cap : scalar
        Maximal effect (``Emax`` or ``Imax``), in the effect's unit.
    c50 : scalar
        Concentration at half the maximal effect (``EC50``/``IC50``), ``> 0``.
    gamma : scalar
        Hill coefficient, ``> 0``; 1 is the hyperbolic (ordinary) Emax model.

    Returns
    -------
    array
        The effect, with finite gradients everywhere (also at ``c == 0``).

    Examples
    --------
    >>> round(float(drug_effect(3.0, 1.0, 1.0, 2.0)), 6)  # 9 / (1 + 9)
    0.9
    """
    c = jnp.asarray(c)
    positive = c > 0
    log_c = jnp.log(jnp.where(positive, c, 1.0))  # double where: the unused branch never sees log(0)
    return jnp.where(positive, cap * jax.nn.sigmoid(gamma * (log_c - jnp.log(c50))), 0.0)


def effect_site_modes(coeffs: ArrayLike, lambdas: ArrayLike, ke0: ArrayLike) -> tuple[Array, Array]:
    """Coefficients and rates of the effect-site concentration of a linear PK model (Sheiner et al. 1979).

    Parameters
    ----------
    coeffs : array, shape (n_cmt, n_exp)
        Plasma concentration after a unit dose into each compartment, as weights of ``exp(-lambdas t)``
        (the table ``bayestwin.dynamics.closed_form.superpose`` takes).
    lambdas : array, shape (n_exp,)
        Rates of the plasma modes (1/time), ``> 0``.
    ke0 : scalar
        Equilibration rate constant of the effect site (1/time), ``> 0``.

    Returns
    -------
    coeffs, lambdas : arrays of shapes (n_cmt, n_exp + 1) and (n_exp + 1,)
        The effect-site table; the last mode is ``ke0``. Where ``ke0`` is within a relative ``1e-6`` of a
        plasma rate (the formula's removable singularity) ``ke0`` is moved to ``1e-6`` off it: the result is
        then exact to ~1e-6 relative (measured in ``tests/models/test_pd.py``), elsewhere to rounding.

    Examples
    --------
    >>> c, lam = effect_site_modes(jnp.array([[0.05]]), jnp.array([0.1]), 0.5)  # 100 mg / 20 L, k = 0.1 / h
    >>> [round(x, 6) for x in c[0].tolist()], lam.tolist()
    ([0.0625, -0.0625], [0.1, 0.5])
    """
    coeffs, lambdas = jnp.asarray(coeffs), jnp.asarray(lambdas)
    gap = ke0 - lambdas
    close = jnp.abs(gap) < _COINCIDENT * lambdas
    shift = jnp.sum(jnp.where(close, jnp.where(gap >= 0, 1.0, -1.0) * _COINCIDENT * lambdas - gap, 0.0))
    ke0 = ke0 + jax.lax.stop_gradient(shift)
    weights = ke0 / (ke0 - lambdas)
    scaled = coeffs * weights[None, :]
    return (jnp.concatenate([scaled, -jnp.sum(scaled, axis=1, keepdims=True)], axis=1),
            jnp.concatenate([lambdas, jnp.reshape(ke0, (1,))]))


def _idr_rate(state: str, r: Array, conc: Array, pd: Array) -> Array:
    """``dr/dt`` of indirect-response model `state`; ``pd = (R0, kout, C50, cap)``."""
    r0, kout, c50, cap = pd[0], pd[1], pd[2], pd[3]
    drug = cap * conc / (c50 + conc)  # hyperbolic (Hill coefficient 1): cheaper per solver step than drug_effect
    kin = r0 * kout
    if state == "idr1":
        return -kin * drug - kout * r
    if state == "idr2":
        return -kout * r + kout * drug * (r + r0)
    if state == "idr3":
        return kin * drug - kout * r
    return -kout * r - kout * drug * (r + r0)


def linked_rhs(pk_rhs: Rhs, *, n_pk: int, central: int, volume: int, state: str) -> Rhs:
    """A PK right-hand side with one more state driven by the plasma concentration.

    Parameters
    ----------
    pk_rhs : callable
        ``rhs(t, a, theta, rate)`` of the PK model on its amounts (``bayestwin.dynamics.ode_models``).
    n_pk : int
        Number of PK parameters: ``theta[:n_pk]`` goes to `pk_rhs`; the PD parameters follow.
    central : int
        Index of the compartment whose amount divided by ``theta[volume]`` is the plasma concentration.
    volume : int
        Index of that compartment's volume in ``theta``.
    state : {"effect_site", "idr1", "idr2", "idr3", "idr4"}
        The appended state: the effect-site concentration (PD parameter ``ke0``), or the deviation of an
        indirect response from its baseline (PD parameters ``R0, kout, IC50/EC50, Imax/Emax``).

    Returns
    -------
    callable
        ``rhs(t, a, theta, rate)`` on ``n_cmt + 1`` states (PK amounts, then the new state; nothing is dosed into
        it, its ``rate`` entry is ignored).

    Raises
    ------
    SpecError
        For an unknown `state`.

    Examples
    --------
    >>> from bayestwin.dynamics.ode_models import one_cmt_iv_rhs
    >>> rhs = linked_rhs(one_cmt_iv_rhs, n_pk=2, central=0, volume=1, state="effect_site")
    >>> rhs(0.0, jnp.array([100.0, 1.0]), jnp.array([2.0, 20.0, 0.5]), jnp.zeros(2)).tolist()  # 0.5 (5 - 1)
    [-10.0, 2.0]
    """
    if state not in _STATES:
        raise SpecError(f"unknown linked state {state!r}; choose one of {list(_STATES)}")

    def rhs(t: Any, a: Array, theta: Any, rate: Array) -> Array:
        pk = pk_rhs(t, a[:-1], theta[:n_pk], rate[:-1])
        conc = a[central] / theta[volume]
        extra = theta[n_pk] * (conc - a[-1]) if state == "effect_site" else _idr_rate(state, a[-1], conc, theta[n_pk:])
        return jnp.concatenate([pk, jnp.reshape(extra, (1,))])

    return rhs
