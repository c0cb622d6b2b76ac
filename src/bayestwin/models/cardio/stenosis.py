"""A lumped coronary stenosis: pressure drop, hyperaemic flow, fractional flow reserve (``cardio.stenosis_ffr``).

**Pressure drop across the lesion** (Young & Tsai, J Biomech 6:547, 1973; Gould, Circ Res 43:242, 1978;
Kirkeeide, Gould & Parsel, JACC 7:103, 1986): ``dP = Fv Q + Fs Q^2`` with

* the viscous (Poiseuille) term over the lesion length ``L`` at the minimal lumen area ``As = pi MLD^2 / 4``:
  ``Fv = 8 pi mu L / As^2``;
* the flow-separation (expansion) loss at the exit into the normal vessel of area ``An = pi Dref^2 / 4``:
  ``Fs = Kt (rho / 2) (1 / As - 1 / An)^2``, ``Kt = 1.52`` (Young & Tsai's model experiments); 0 where
  ``As >= An``.

Blood: viscosity ``mu = 3.5 mPa s``, density ``rho = 1050 kg/m^3`` (``BLOOD_VISCOSITY``, ``BLOOD_DENSITY``).
Units here: flow mL/s, pressure mmHg, diameters and lengths mm; ``Fv`` in mmHg/(mL/s), ``Fs`` in mmHg/(mL/s)^2.

**Flow through it.** The distal bed is a resistance ``Rm`` (mmHg s/mL) from the distal pressure ``Pd`` to the
venous pressure ``Pv``: ``Pa - Pv = (Rm + Fv) Q + Fs Q^2``, solved for ``Q`` in the cancellation-free form
``Q = 2 (Pa - Pv) / (Rm + Fv + sqrt((Rm + Fv)^2 + 4 Fs (Pa - Pv)))``. So a wider lumen raises the flow, as a
stent does. **FFR** (Pijls et al., NEJM 334:1703, 1996) is ``(Pd - Pv) / (Pa - Pv)`` at maximal hyperaemia
(``Rm = r_hyp``), i.e. ``Rm Q / (Pa - Pv)``: the hyperaemic flow as a fraction of its value without the lesion.

**How patient data enter.** Time is seconds from the start of a hyperaemic stimulus (adenosine): the
microvascular resistance falls from ``r_rest`` to ``r_hyp``, ``Rm(t) = r_hyp + (r_rest - r_hyp) exp(-t / tau)``,
and the pressure-and-flow wire records, at each time, the flow ``Q(t)`` (Doppler velocity times the
reference lumen area; output ``flow``, mL/s) and the trans-lesion gradient ``Pa - Pd`` (output ``dp``, mmHg).
Flows from rest to hyperaemia trace the lesion's pressure-flow curve, which identifies ``MLD`` (the
*functional* minimal diameter) given the angiographic lesion length and reference diameter; aortic pressure
``pa`` is measured by the guiding catheter. Those four are optional parameters to fix per patient
(``Parameter("length", fixed=...)``); defaults: ``length`` 10 mm, ``dref`` 3 mm, ``pa`` 90 mmHg, ``pv`` 0.
A fifth optional parameter, ``r_diffuse`` (mmHg s/mL, default 0), is the resistance of diffuse disease along
the rest of the vessel between catheter and wire, in series with the lesion: it adds ``r_diffuse Q`` to the
measured gradient, and a stent does not remove it (why FFR after a good stent is often 0.85-0.95).

**A stent** is a what-if on the geometry: ``post_stent_ffr`` recomputes FFR with the stented part of the
lesion at the stent's achieved lumen (nominal diameter times an ``expansion`` factor, which may be uncertain),
flow rising with it, microvascular resistance and diffuse disease unchanged, from posterior draws of
``mld``, ``r_hyp`` (and ``r_diffuse``). Simplifications: one uniform lesion; a stent shorter than the lesion leaves
the rest at ``MLD`` with its full exit loss; no diffuse disease, side branches or collaterals.

Examples
--------
>>> fv, fs = stenosis_coefficients(1.5, 10.0, 3.0)           # 50 % diameter stenosis, 10 mm long
>>> round(float(fv), 3), round(float(fs), 3)
(2.113, 1.078)
>>> round(float(ffr(1.5, 10.0, 3.0, r_hyp=25.0, pa=90.0)), 3)
0.825
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, final

import jax.numpy as jnp
from jax import Array

from bayestwin.dynamics.events import Doses
from bayestwin.models.piecewise import segment_index
from bayestwin.models.registry import register
from bayestwin.spec.structural import AbstractStructuralModel

__all__ = ["BLOOD_DENSITY", "BLOOD_VISCOSITY", "EXPANSION_LOSS", "StenosisFFR", "coronary_flow", "ffr",
           "post_stent_ffr", "stenosis_coefficients"]

BLOOD_VISCOSITY = 3.5e-3
"""Dynamic viscosity of blood, Pa s (3.5 cP, a haematocrit near 45 % at high shear)."""
BLOOD_DENSITY = 1050.0
"""Density of blood, kg/m^3."""
EXPANSION_LOSS = 1.52
"""Young & Tsai's (1973) turbulent expansion-loss coefficient ``Kt`` (dimensionless)."""

_MMHG = 133.322387415  # Pa per mmHg
_ML = 1e-6  # m^3 per mL
_MM = 1e-3  # m per mm


def stenosis_coefficients(mld: Any, length: Any, dref: Any, *, stent_diameter: Any = None,
                          stent_length: Any = 0.0) -> tuple[Any, Any]:
    """Viscous and expansion coefficients ``(Fv, Fs)`` of ``dP = Fv Q + Fs Q^2``, mmHg/(mL/s) and mmHg/(mL/s)^2.

    Works on floats, numpy/xarray and JAX arrays alike (arithmetic only, broadcasting).

    Parameters
    ----------
    mld : array
        Minimal lumen diameter of the lesion (mm).
    length : array
        Lesion length (mm).
    dref : array
        Reference (normal) lumen diameter (mm).
    stent_diameter : array, optional
        After stenting: the lumen diameter of the stented part (mm); None: no stent.
    stent_length : array
        Stent length (mm). The stent covers ``min(stent_length, length)`` of the lesion; the rest keeps ``mld``.

    Examples
    --------
    >>> fv, fs = stenosis_coefficients(1.5, 10.0, 3.0, stent_diameter=3.0, stent_length=12.0)
    >>> round(float(fv), 3), float(fs)   # a 3 mm lumen over 10 mm: Poiseuille only, no exit loss
    (0.132, 0.0)
    """
    area = math.pi / 4.0 * (mld * _MM) ** 2
    normal = math.pi / 4.0 * (dref * _MM) ** 2
    to_mmhg = _ML / _MMHG  # (Pa s / m^3) -> mmHg / (mL/s)
    if stent_diameter is None:
        fv = 8.0 * math.pi * BLOOD_VISCOSITY * (length * _MM) / area**2 * to_mmhg
        # no expansion loss where the lumen is at least the reference (an ectatic or over-dilated segment)
        fs = EXPANSION_LOSS * BLOOD_DENSITY / 2.0 * _relu(1.0 / area - 1.0 / normal) ** 2 * _ML * to_mmhg
        return fv, fs
    covered = length - _relu(length - stent_length)  # min(stent_length, length)
    residual = length - covered
    stented = math.pi / 4.0 * (stent_diameter * _MM) ** 2
    fv = 8.0 * math.pi * BLOOD_VISCOSITY * (covered * _MM / stented**2 + residual * _MM / area**2) * to_mmhg
    exit_stent = _relu(1.0 / stented - 1.0 / normal)
    # where the lesion is not all covered, its narrowest part still ends in an expansion
    gap = exit_stent + (residual > 0) * (1.0 / area - 1.0 / normal - exit_stent)
    fs = EXPANSION_LOSS * BLOOD_DENSITY / 2.0 * gap**2 * _ML * to_mmhg
    return fv, fs


def _relu(x: Any) -> Any:
    return (x > 0) * x


def coronary_flow(pa: Any, pv: Any, r_micro: Any, fv: Any, fs: Any) -> Any:
    """Flow (mL/s) through a stenosis ``(fv, fs)`` in series with a microvascular resistance `r_micro`.

    Solves ``pa - pv = (r_micro + fv) Q + fs Q^2`` (pressures mmHg, `r_micro` mmHg s/mL) for ``Q >= 0``.

    Examples
    --------
    >>> round(float(coronary_flow(90.0, 0.0, 30.0, 0.0, 0.0)), 6)   # no lesion: Q = Pa / R
    3.0
    """
    drive = pa - pv
    b = r_micro + fv
    return 2.0 * drive / (b + (b * b + 4.0 * fs * drive) ** 0.5)


def ffr(mld: Any, length: Any, dref: Any, *, r_hyp: Any, pa: Any, pv: Any = 0.0, r_diffuse: Any = 0.0,
        stent_diameter: Any = None, stent_length: Any = 0.0) -> Any:
    """Fractional flow reserve ``(Pd - Pv) / (Pa - Pv)`` at hyperaemia (microvascular resistance `r_hyp`).

    Arguments as in ``stenosis_coefficients`` and ``coronary_flow``; `r_diffuse` (mmHg s/mL) is diffuse disease
    in series with the lesion (see the module docstring); arrays broadcast.

    Examples
    --------
    >>> round(float(ffr(1.5, 10.0, 3.0, r_hyp=25.0, pa=90.0, stent_diameter=3.0, stent_length=12.0)), 3)
    0.995
    """
    fv, fs = stenosis_coefficients(mld, length, dref, stent_diameter=stent_diameter, stent_length=stent_length)
    return r_hyp * coronary_flow(pa, pv, r_hyp, fv + r_diffuse, fs) / (pa - pv)


def post_stent_ffr(draws: Mapping[str, Any], diameter: float | None, length: float = 0.0, *, expansion: Any = 1.0,
                   lesion_length: float | None = None, dref: float | None = None, pa: float | None = None,
                   pv: float | None = None) -> Any:
    """FFR for each posterior draw, before (``diameter=None``) or after a stent of `diameter` x `length` mm.

    Parameters
    ----------
    draws : mapping
        Posterior draws of one patient, any shape (e.g. a population fit's ``posterior`` selected for the
        patient: the result keeps its dims): ``mld`` (mm) and ``r_hyp`` (mmHg s/mL), and ``r_diffuse``,
        ``length``, ``dref``, ``pa``, ``pv`` where the fit reports them (a fit lists fixed parameters too).
    diameter : float or None
        Stent (expanded lumen) diameter, mm; None: the FFR now, without a stent.
    length : float
        Stent length, mm.
    expansion : float or array
        Achieved lumen as a fraction of the nominal `diameter` (1: fully expanded); an array of the draws'
        shape carries uncertainty about the expansion into the result.
    lesion_length, dref, pa, pv : float, optional
        The lesion's length and reference diameter (mm), aortic and venous pressure (mmHg), where `draws`
        lacks them; otherwise the model's defaults (10 mm, 3 mm, 90 mmHg, 0 mmHg).

    Returns
    -------
    array
        FFR per draw; ``(result > 0.80).mean()`` estimates P(FFR > 0.80).

    Examples
    --------
    >>> import numpy as np
    >>> draws = {"mld": np.array([1.2, 1.5]), "r_hyp": np.array([25.0, 25.0])}
    >>> np.round(post_stent_ffr(draws, None), 3).tolist(), np.round(post_stent_ffr(draws, 3.0, 12.0), 3).tolist()
    ([0.658, 0.825], [0.995, 0.995])
    """
    given = {"length": lesion_length, "dref": dref, "pa": pa, "pv": pv, "r_diffuse": None}
    geometry = {k: draws[k] if k in draws else (v if v is not None else StenosisFFR.optional_parameters[k][1])
                for k, v in given.items()}
    return ffr(draws["mld"], geometry["length"], geometry["dref"], r_hyp=draws["r_hyp"], pa=geometry["pa"],
               pv=geometry["pv"], r_diffuse=geometry["r_diffuse"],
               stent_diameter=None if diameter is None else diameter * expansion, stent_length=length)


@register("cardio.stenosis_ffr")
@final
class StenosisFFR(AbstractStructuralModel):
    """Pressure-flow relation of a coronary stenosis during the onset of hyperaemia; FFR by ``post_stent_ffr``.

    Outputs ``flow`` (mL/s) and ``dp`` (``Pa - Pd``, mmHg) at seconds after the hyperaemic stimulus; see the
    module docstring for the equations and literature (Young & Tsai 1973, Gould 1978, Pijls 1996).
    Parameters: ``mld`` (mm), ``r_hyp`` and ``r_rest`` (microvascular resistance at hyperaemia and at rest,
    mmHg s/mL), ``tau`` (s, onset of hyperaemia); optional: ``length`` (mm), ``dref`` (mm), ``pa``, ``pv``
    (mmHg), usually fixed per patient, and ``r_diffuse`` (mmHg s/mL, default 0; estimate it with a prior).
    Reference values: a 53 % diameter stenosis of a 3 mm artery,
    FFR 0.80. No doses: data are observation records only.

    Examples
    --------
    >>> none = Doses.single(time=0.0, amt=0.0)._replace(mask=jnp.array([False]))
    >>> th = {"mld": 1.5, "r_hyp": 25.0, "r_rest": 80.0, "tau": 8.0}
    >>> [round(x, 2) for x in StenosisFFR().predict(th, none, jnp.array([1e3]))[0].tolist()]   # flow, dP
    [2.97, 15.78]
    """

    compartments: ClassVar[tuple[str, ...]] = ()
    default_dose_compartment: ClassVar[str] = ""
    outputs: ClassVar[tuple[str, ...]] = ("flow", "dp")
    parameters: ClassVar[Mapping[str, str]] = {"mld": "mm", "r_hyp": "mmHg*s/mL", "r_rest": "mmHg*s/mL", "tau": "s"}
    optional_parameters: ClassVar[Mapping[str, tuple[str, float]]] = {
        "length": ("mm", 10.0), "dref": ("mm", 3.0), "pa": ("mmHg", 90.0), "pv": ("mmHg", 0.0),
        "r_diffuse": ("mmHg*s/mL", 0.0)}
    reference_values: ClassVar[Mapping[str, float]] = {"mld": 1.4, "r_hyp": 28.0, "r_rest": 80.0, "tau": 8.0}
    units: ClassVar[Mapping[str, str]] = {"time": "s", "amt": "mg", "flow": "mL/s", "dp": "mmHg"}
    # no amounts, no ODE: chains may run in parallel (see parallel_chains_ok)
    linear: ClassVar[bool] = True
    description: ClassVar[str] = ("coronary stenosis pressure drop (viscous + expansion) and flow at the onset of "
                                  "hyperaemia")

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Flow and pressure gradient at `times` (s), shape ``(len(times), 2)``."""
        fv, fs = stenosis_coefficients(theta["mld"], theta.get("length", 10.0), theta.get("dref", 3.0))
        fv = fv + theta.get("r_diffuse", 0.0)
        onset = jnp.exp(-jnp.maximum(times, 0.0) / theta["tau"])
        r_micro = theta["r_hyp"] + (theta["r_rest"] - theta["r_hyp"]) * onset
        q = coronary_flow(theta.get("pa", 90.0), theta.get("pv", 0.0), r_micro, fv, fs)
        return jnp.stack([q, fv * q + fs * q * q], axis=1)

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """Parameters of the segment holding each time (e.g. an aortic pressure recorded on each row)."""
        k = segment_index(starts, times)
        return self.predict({n: jnp.asarray(v)[k] for n, v in theta.items()}, doses, times, features=features)
