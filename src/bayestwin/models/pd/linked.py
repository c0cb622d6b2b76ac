"""PK/PD models: a drug effect linked to a registered PK model, built and registered by ``linked_pd``.

Every model made here predicts two outputs, ``("conc", "effect")``: the PK model's plasma concentration
and the drug effect. A spec observes either or both: one ``ErrorModel(output=...)`` per observed output,
rows told apart by DVID (``bayestwin.inference.outputs``). The parameters are the PK model's (with its
optional ``f`` and ``tlag``) followed by the PD ones:

=======================  =====================================================  ==========================
effect                   effect at concentration ``C``                           PD parameters
=======================  =====================================================  ==========================
``emax``                 ``E0 + Emax C / (EC50 + C)``                            e0, emax, ec50
``sigmoid_emax``         ``E0 + Emax C^g / (EC50^g + C^g)`` (Hill)               e0, emax, ec50, gamma
``idr1`` ... ``idr4``    response ``R`` of an indirect-response model            r0, kout, ic50 [imax] or
                         (``bayestwin.dynamics.pd_rhs``), ``R(0) = R0``          r0, kout, emax, ec50
=======================  =====================================================  ==========================

``link="effect_compartment"`` (Emax effects only) drives the effect by the effect-site concentration
``Ce`` (``dCe/dt = ke0 (C - Ce)``, one more parameter ``ke0``) instead of ``C``.

How each is computed: a direct effect applies the Emax function to the PK model's own prediction (closed
form when the PK model is). The effect site of a one-compartment PK model is in closed form (a sum of
exponentials with one more mode, ``bayestwin.dynamics.pd_rhs.effect_site_modes``, superposed over the
doses). Indirect responses, and the effect site of other PK models, integrate the PK model's ODE form with
one more state (``bayestwin.dynamics.pd_rhs.linked_rhs``) through ``solve_amounts`` (dopri5, rtol 1e-8,
forward sensitivities): these are ODE models (``kind == "ode"``), costly to fit (see ``docs/pd-and-cardio-
models.md``). A failed solve gives NaN, as in the ODE PK models.

Literature: Holford & Sheiner, Clin Pharmacokinet 6:429 (1981) (Emax models); Hill, J Physiol 40:iv
(1910) (sigmoid); Sheiner, Stanski, Vozeh, Miller & Ham, Clin Pharmacol Ther 25:358 (1979) (effect
compartment); Dayneka, Garg & Jusko, J Pharmacokinet Biopharm 21:457 (1993) (indirect response).

Examples
--------
>>> import jax.numpy as jnp
>>> from bayestwin.dynamics.events import Doses
>>> cls = linked_pd("pk.one_cmt_iv", "emax", name="test.doc_iv_emax")
>>> cls.parameters
{'cl': 'L/h', 'v': 'L', 'e0': 'dimensionless', 'emax': 'dimensionless', 'ec50': 'mg/L'}
>>> theta = {"cl": 2.0, "v": 20.0, "e0": 10.0, "emax": 20.0, "ec50": 5.0}
>>> cls().predict(theta, Doses.single(time=0.0, amt=100.0), jnp.array([0.0])).tolist()  # C = EC50 = 5
[[5.0, 20.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import jax.numpy as jnp
from jax import Array

from bayestwin.dynamics import ode_models as ode
from bayestwin.dynamics.closed_form import superpose
from bayestwin.dynamics.events import Doses
from bayestwin.dynamics.pd_rhs import IDR_STATES, drug_effect, effect_site_modes, linked_rhs
from bayestwin.exceptions import SpecError
from bayestwin.models.piecewise import piecewise_predict, segment_index
from bayestwin.models.registry import get_model, register
from bayestwin.spec.structural import AbstractStructuralModel

__all__ = ["EFFECTS", "LINKS", "PK_ODE_FORMS", "PkOdeForm", "linked_pd"]

EFFECTS: tuple[str, ...] = ("emax", "sigmoid_emax", *IDR_STATES)
"""Drug effects ``linked_pd`` builds."""
LINKS: tuple[str, ...] = ("direct", "effect_compartment")
"""How the concentration reaches the effect: at once (``direct``) or through an effect site (``ke0``)."""


class PkOdeForm(NamedTuple):
    """The ODE form of a PK model: right-hand side, its parameter order, state size, observed compartment."""

    rhs: Callable[..., Array]
    names: tuple[str, ...]
    n_cmt: int
    central: int
    volume: str
    depot: int | None


#: ODE forms of the built-in PK models (what indirect responses and non-closed-form effect sites integrate).
PK_ODE_FORMS: dict[str, PkOdeForm] = {
    "pk.one_cmt_iv": PkOdeForm(ode.one_cmt_iv_rhs, ("cl", "v"), 1, 0, "v", None),
    "pk.one_cmt_oral": PkOdeForm(ode.one_cmt_oral_rhs, ("ka", "cl", "v"), 2, 1, "v", 0),
    "pk.two_cmt_iv": PkOdeForm(ode.two_cmt_iv_rhs, ("cl", "v1", "q", "v2"), 2, 0, "v1", None),
    "pk.two_cmt_oral": PkOdeForm(ode.two_cmt_oral_rhs, ("ka", "cl", "v1", "q", "v2"), 3, 1, "v1", 0),
    "pk.one_cmt_oral_mm": PkOdeForm(ode.one_cmt_oral_mm_rhs, ("ka", "km", "vm", "v"), 2, 1, "v", 0),
}

#: PK models whose effect-site concentration is computed in closed form.
_CLOSED_FORM_EFFECT_SITE = ("pk.one_cmt_iv", "pk.one_cmt_oral")

#: Typical PD values (with the PK models' typical values a 100 mg dose peaks at ~4 mg/L).
_REFERENCE = {"e0": 10.0, "emax": 20.0, "ec50": 2.0, "gamma": 2.0, "ke0": 0.5, "r0": 10.0, "kout": 0.3,
              "ic50": 2.0}
_IDR_EMAX_REFERENCE = 2.0  # idr3/idr4: maximal fractional stimulation (dimensionless)
_CREATED: dict[str, tuple[str, str, str]] = {}


def _pd_parameters(effect: str, link: str, units: Mapping[str, str]) -> dict[str, str]:
    conc, rate, out = units["conc"], f"1/{units['time']}", units["effect"]
    if effect in ("idr1", "idr2"):
        return {"r0": out, "kout": rate, "ic50": conc}
    if effect in ("idr3", "idr4"):
        return {"r0": out, "kout": rate, "emax": "dimensionless", "ec50": conc}
    params = {"e0": out, "emax": out, "ec50": conc}
    if effect == "sigmoid_emax":
        params["gamma"] = "dimensionless"
    if link == "effect_compartment":
        params["ke0"] = rate
    return params


class _LinkedPD(AbstractStructuralModel):
    """Shared machinery of the models ``linked_pd`` creates (see the module docstring)."""

    outputs: ClassVar[tuple[str, ...]] = ("conc", "effect")
    nonnegative_outputs: ClassVar[frozenset[str]] = frozenset({"conc"})
    pk_name: ClassVar[str]
    effect: ClassVar[str]
    link: ClassVar[str]
    #: Solver steps allowed per interval between events (as ``pk.one_cmt_oral_mm``).
    max_steps: ClassVar[int] = 512
    sensitivity: ClassVar[str] = "forward"
    #: The lean Dormand-Prince solver of ``bayestwin.dynamics.rk`` (forward sensitivities; tsit5 where f/tlag
    #: force reverse mode), as ``pk.one_cmt_oral_mm``.
    solver: ClassVar[str] = "dopri5"

    @property
    def pk(self) -> AbstractStructuralModel:
        """The linked PK model."""
        return get_model(self.pk_name)

    def _emax(self, c: Array, th: Mapping[str, Array]) -> Array:
        return th["e0"] + drug_effect(c, th["emax"], th["ec50"], th.get("gamma", 1.0))

    def predict(
        self, theta: Mapping[str, Array], doses: Doses, times: Array, *, features: frozenset[str] | None = None
    ) -> Array:
        """Plasma concentration and effect at `times`, shape ``(len(times), 2)``."""
        if self.kind == "ode":
            one = {k: jnp.reshape(jnp.asarray(v), (1,)) for k, v in theta.items()}
            return self.predict_segments(one, jnp.array([-jnp.inf]), doses, times, features=features)
        pk_theta = {k: v for k, v in theta.items() if k in self.pk.parameters or k in ("f", "tlag")}
        conc = self.pk.predict(pk_theta, doses, times, features=features)[:, 0]
        driver = conc if self.link == "direct" else self._effect_site(theta, doses, times, features)
        return jnp.stack([conc, self._emax(driver, theta)], axis=1)

    def _effect_site(self, theta: Mapping[str, Array], doses: Doses, times: Array,
                     features: frozenset[str] | None) -> Array:
        """Closed-form effect-site concentration of a one-compartment PK model."""
        v = theta["v"]
        lam = jnp.reshape(theta["cl"] / v, (1,))
        if self.pk_name == "pk.one_cmt_iv":
            coeffs, rates = effect_site_modes(jnp.reshape(1.0 / v, (1, 1)), lam, theta["ke0"])
            return superpose(times, doses, coeffs, rates, features=features)
        coeffs, rates = effect_site_modes(jnp.broadcast_to(jnp.reshape(1.0 / v, (1, 1)), (2, 1)), lam, theta["ke0"])
        f = jnp.stack([jnp.asarray(theta.get("f", 1.0), float), jnp.asarray(1.0)])
        tlag = jnp.stack([jnp.asarray(theta.get("tlag", 0.0), float), jnp.asarray(0.0)])
        return superpose(times, doses, coeffs, rates, ka=theta["ka"], depot=0, f=f, tlag=tlag, features=features)

    def predict_segments(
        self, theta: Mapping[str, Array], starts: Array, doses: Doses, times: Array, *,
        features: frozenset[str] | None = None,
    ) -> Array:
        """Concentration and effect with piecewise-constant parameters (see ``bayestwin.models.piecewise``)."""
        if self.link == "direct" and self.effect in ("emax", "sigmoid_emax"):
            pk_theta = {k: v for k, v in theta.items() if k in self.pk.parameters or k in ("f", "tlag")}
            conc = self.pk.predict_segments(pk_theta, starts, doses, times, features=features)[:, 0]
            k = segment_index(starts, times)
            return jnp.stack([conc, self._emax(conc, {n: jnp.asarray(v)[k] for n, v in theta.items()})], axis=1)
        form = PK_ODE_FORMS[self.pk_name]
        state = "effect_site" if self.link == "effect_compartment" else self.effect
        pd_names = (("ke0",) if state == "effect_site" else
                    ("r0", "kout", "ic50", "imax") if state in ("idr1", "idr2") else ("r0", "kout", "ec50", "emax"))
        names = (*form.names, *pd_names)
        theta = {"imax": jnp.ones_like(jnp.asarray(starts, float)), **theta}
        rhs = linked_rhs(form.rhs, n_pk=len(form.names), central=form.central,
                         volume=form.names.index(form.volume), state=state)

        def observe(a: Array, th: Mapping[str, Array]) -> Array:
            conc = a[:, form.central] / th[form.volume]
            effect = self._emax(a[:, -1], th) if state == "effect_site" else th["r0"] + a[:, -1]
            return jnp.stack([conc, effect], axis=1)

        return piecewise_predict(rhs, names, form.n_cmt + 1, observe, theta, starts, doses, times,
                                 features=features, depot=form.depot, max_steps=self.max_steps,
                                 sensitivity=self.sensitivity, solver=self.solver)


def linked_pd(pk: str, effect: str = "emax", *, link: str = "direct", name: str | None = None) -> type:
    """Create and register the model of drug effect `effect` linked to the registered PK model `pk`.

    Parameters
    ----------
    pk : str
        A registered PK model, e.g. ``"pk.one_cmt_oral"``. Indirect responses, and effect sites of PK
        models other than the one-compartment ones, need its ODE form (``PK_ODE_FORMS``: the built-in PK
        models).
    effect : {"emax", "sigmoid_emax", "idr1", "idr2", "idr3", "idr4"}
        The drug effect (see the module docstring).
    link : {"direct", "effect_compartment"}
        Whether the effect follows the plasma concentration or an effect-site concentration (Emax effects).
    name : str, optional
        Registry name; default ``"pd.<pk model>_<effect>"`` (``..._ke0_<effect>`` with an effect site).

    Returns
    -------
    type
        The registered model class (``get_model(name)`` makes an instance). Asking again for the same model
        under the same name returns the same class.

    Raises
    ------
    SpecError
        For an unknown effect or link, an indirect response with an effect site, a PK model without the ODE
        form a route needs, or a name already registered for another model.

    Examples
    --------
    >>> cls = linked_pd("pk.two_cmt_oral", "idr3", name="test.doc_two_cmt_idr3")
    >>> cls.kind, cls.compartments, list(cls.parameters)[-4:]
    ('ode', ('depot', 'central', 'peripheral'), ['r0', 'kout', 'emax', 'ec50'])
    """
    if effect not in EFFECTS:
        raise SpecError(f"unknown drug effect {effect!r}; choose one of {list(EFFECTS)}")
    if link not in LINKS:
        raise SpecError(f"unknown link {link!r}; choose one of {list(LINKS)}")
    if effect in IDR_STATES and link != "direct":
        raise SpecError(f"an indirect-response model ({effect!r}) is driven by the plasma concentration; "
                        "use link='direct' (its turnover already delays the response)")
    pk_model = get_model(pk)
    if "conc" not in pk_model.outputs:
        raise SpecError(f"model {pk!r} predicts {list(pk_model.outputs)}, not a concentration 'conc': "
                        "link a PK model")
    closed = pk_model.kind == "closed_form" and (
        (link == "direct" and effect in ("emax", "sigmoid_emax")) or pk in _CLOSED_FORM_EFFECT_SITE)
    if effect in IDR_STATES:
        closed = False
    if not closed and pk not in PK_ODE_FORMS:
        raise SpecError(f"{effect!r} with link {link!r} integrates the PK model's ODE form, and {pk!r} has none; "
                        f"use one of {sorted(PK_ODE_FORMS)} or add its form to PK_ODE_FORMS")
    short = pk.split(".", 1)[-1]
    name = name or f"pd.{short}_{'ke0_' if link == 'effect_compartment' else ''}{effect}"
    if name in _CREATED:
        if _CREATED[name] != (pk, effect, link):
            raise SpecError(f"a PD model named {name!r} already links {_CREATED[name]}; choose another name")
        return type(get_model(name))
    units = {**pk_model.units, "effect": "dimensionless"}
    params = {**pk_model.parameters, **_pd_parameters(effect, link, units)}
    optional = dict(getattr(pk_model, "optional_parameters", {}))
    if effect in ("idr1", "idr2"):
        optional["imax"] = ("dimensionless", 1.0)
    reference = {**pk_model.reference_values, **{k: _REFERENCE[k] for k in params if k in _REFERENCE}}
    if effect in ("idr3", "idr4"):
        reference["emax"] = _IDR_EMAX_REFERENCE
    description = (f"{pk_model.description or pk}; {effect} drug effect"
                   f"{' through an effect compartment (ke0)' if link == 'effect_compartment' else ''}")
    attrs: dict[str, Any] = {
        "__doc__": f"{pk} linked to a {effect} drug effect ({link} link); see ``bayestwin.models.pd.linked``.",
        "__module__": __name__, "pk_name": pk, "effect": effect, "link": link,
        "compartments": pk_model.compartments,
        "default_dose_compartment": pk_model.default_dose_compartment, "parameters": params,
        "optional_parameters": optional, "units": units, "reference_values": reference,
        "kind": "closed_form" if closed else "ode",
        "linear": bool(closed and link == "direct" and pk_model.linear), "description": description,
    }
    cls = register(name)(type(f"PD_{name.replace('.', '_')}", (_LinkedPD,), attrs))
    _CREATED[name] = (pk, effect, link)
    return cls
