"""Right-hand side of the Bergman minimal model of glucose and insulin with meal and insulin inputs.

For ``bayestwin.dynamics.ode.solve_amounts`` (signature ``rhs(t, a, theta, rate) -> da/dt``); the registered
structural model is ``bayestwin.models.metabolic`` (``metabolic.bergman_meal``). Time in minutes.

Six states, every one **zero at the basal steady state** (fasting, no insulin on board):

======  ==================  ======  ==============================================================
index   state               unit    equation
======  ==================  ======  ==============================================================
0       stomach             g       ``-kabs q1``                          (meal carbohydrate doses)
1       gut                 g       ``kabs q1 - kabs q2``
2       insulin depot       IU      ``-ka_ins s``                         (subcutaneous insulin doses)
3       g = G - Gb          mg/dL   ``-(SG + X) g - X Gb + Ra``
4       X                   1/min   ``-p2 X + p2 SI i``
5       i = I - Ib          mIU/L   ``-n i + gamma max(g, 0) + 1000 ka_ins s / vi``
======  ==================  ======  ==============================================================

with the rate of appearance of meal glucose in plasma ``Ra = 1000 f kabs q2 / vg`` (mg/dL/min; 1000 mg per g).

* Glucose and remote insulin action are Bergman's minimal model (Bergman, Ider, Bowden & Cobelli, Am J Physiol
  236:E667, 1979): ``dG/dt = -(SG + X) G + SG Gb + Ra``, ``dX/dt = -p2 X + p3 (I - Ib)``, written with the
  insulin sensitivity ``SI = p3 / p2`` (1/min per mIU/L). In deviations ``g = G - Gb`` the first is the line above.
* The gut is the two-compartment chain with one rate of Hovorka et al. (Physiol Meas 25:905, 2004), so
  ``Ra(t) = 1000 f D kabs^2 t exp(-kabs t) / vg`` after a meal of ``D`` g: it peaks at ``1 / kabs`` (about 40 min)
  instead of at the moment of eating; ``f`` is the fraction of the carbohydrate that appears in plasma (0.9 in
  Dalla Man, Rizza & Cobelli, IEEE Trans Biomed Eng 54:1740, 2007).
* Plasma insulin is cleared at rate ``n`` (1/min) towards its basal level ``Ib`` (basal secretion ``n Ib``, or
  basal insulin for a person on insulin) and rises with glucose above basal, ``gamma max(G - Gb, 0)``: the
  second-phase secretion term of Toffolo, Bergman, Finegood, Bowden & Cobelli (Diabetes 29:979, 1980) without
  its time factor ``t`` (which describes an intravenous glucose tolerance test, not a meal). Set ``gamma = 0``
  for a person with type 1 diabetes. Subcutaneous insulin (IU) is absorbed from one depot at ``ka_ins`` into
  the insulin distribution volume ``vi`` (L), 1000 mIU per IU.

Why deviations: the basal state is then the zero state (``solve_amounts``' default ``y0``, also what a reset
returns to), and every dependence on ``Gb`` and ``Ib`` is in ``theta``. With ``sensitivity="forward"`` gradients
flow to ``theta`` only, so a basal state passed as ``y0 = (.., Gb, 0, Ib)`` would silently lose its derivative.

``theta`` (by position): ``gb, sg, si, p2, kabs, f, vg, ib, n, gamma, ka_ins, vi`` (``ib`` does not enter the
equations of the deviations; it is in ``theta`` so that the insulin output is ``ib + i``).

Examples
--------
>>> import jax.numpy as jnp
>>> theta = jnp.array([100.0, 0.02, 5e-4, 0.02, 0.025, 0.9, 130.0, 10.0, 0.14, 0.1, 0.018, 8.4])
>>> bergman_meal_rhs(0.0, jnp.zeros(6), theta, jnp.zeros(6)).tolist()       # basal: nothing moves
[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
>>> d = bergman_meal_rhs(0.0, jnp.array([0.0, 50.0, 0.0, 0.0, 0.0, 0.0]), theta, jnp.zeros(6))
>>> round(float(d[3]), 4)   # Ra of 50 g in the gut: 1000 * 0.9 * 0.025 * 50 / 130 mg/dL/min
8.6538
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import Array

__all__ = ["BERGMAN_MEAL_THETA", "bergman_meal_rhs"]

#: Names of ``theta``'s entries, in order.
BERGMAN_MEAL_THETA: tuple[str, ...] = ("gb", "sg", "si", "p2", "kabs", "f", "vg", "ib", "n", "gamma", "ka_ins",
                                       "vi")


def bergman_meal_rhs(t: Array | float, a: Array, theta: Any, rate: Array) -> Array:
    """Bergman minimal model with a two-compartment gut and a subcutaneous insulin depot (see the module docstring).

    Parameters
    ----------
    t : float
        Time, min (unused: the model is autonomous).
    a : array, shape (6,)
        Stomach (g), gut (g), insulin depot (IU), ``G - Gb`` (mg/dL), ``X`` (1/min), ``I - Ib`` (mIU/L).
    theta : array-like, shape (12,)
        ``gb, sg, si, p2, kabs, f, vg, ib, n, gamma, ka_ins, vi`` (``BERGMAN_MEAL_THETA``).
    rate : array, shape (6,)
        Zero-order input per state (amount per minute), added to the derivative.

    Returns
    -------
    array, shape (6,)
        ``da/dt``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> theta = jnp.array([100.0, 0.02, 5e-4, 0.02, 0.025, 0.9, 130.0, 10.0, 0.14, 0.0, 0.018, 8.4])
    >>> d = bergman_meal_rhs(0.0, jnp.array([0.0, 0.0, 10.0, 0.0, 0.0, 0.0]), theta, jnp.zeros(6))
    >>> round(float(d[5]), 3)   # 10 IU in the depot: 1000 * 0.018 * 10 / 8.4 mIU/L/min into plasma
    21.429
    """
    gb, sg, si, p2, kabs, f, vg = theta[0], theta[1], theta[2], theta[3], theta[4], theta[5], theta[6]
    n, gamma, ka_ins, vi = theta[8], theta[9], theta[10], theta[11]
    stomach, gut, depot, g, x, i = a[0], a[1], a[2], a[3], a[4], a[5]
    ra = 1000.0 * f * kabs * gut / vg
    d = jnp.stack([
        -kabs * stomach,
        kabs * (stomach - gut),
        -ka_ins * depot,
        -(sg + x) * g - x * gb + ra,
        p2 * (si * i - x),
        -n * i + gamma * jnp.maximum(g, 0.0) + 1000.0 * ka_ins * depot / vi,
    ])
    return d + rate
