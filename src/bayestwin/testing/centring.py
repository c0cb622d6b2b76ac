"""How a simulated design's random effects should be parametrised, and the mass matrix that goes with it.

One rule for every model, decided from the design's information (Gelfand, Sahu & Carlin 1995; Papaspiliopoulos,
Roberts & Skold, Stat Sci 22:59, 2007). For a patient's latent parameter vector z (log scale for log-scale
parameters) with random-effect SDs omega, the data of the design at the typical patient give the Fisher
information ``F = J' W J`` (J the Jacobian of the observed predictions with respect to z, W the inverse
residual variances of the design). The posterior covariance of z given the typical values is
``S = (F + diag(1 / omega**2))**-1``, and ``kappa_j = S_jj / omega_j**2`` is the share of the random effect's
prior variance that the data leave. A Gibbs-like sampler of the centred parametrisation (z sampled directly)
mixes at rate ~ ``kappa``, the non-centred one (``z = TV + omega u``) at ~ ``1 - kappa``. The posterior of a
BSV SD from 16 patients reaches about half the design's omega, where ``kappa(omega / 2) = 1 / (1 + F omega**2
/ 4)``; ``informed_parameters`` centres a parameter when the centred form still wins there, ``kappa(omega / 2)
< 1/2``, i.e. ``kappa(omega) < 1/5`` (at ``kappa < 1/2`` the windkessel's ka, kappa 0.31, was centred and its
omega_ka mixed badly: ESS 279, 18 divergences).

Measured 2026-11-27 on ``cardio.windkessel_emax`` (16 patients, seed 0, 4 x (1000 + 1000)): kappa ka 0.31, cl
0.038, v 0.084, r0 0.039, compliance 0.23, emax 0.84, ec50 0.99. Non-centred (diagonal): tv_r0 R-hat 1.011,
bulk ESS 493, 0 divergences. cl, v, r0 centred (diagonal): every R-hat <= 1.00, tv_r0 ESS 1941, smallest ESS
804 (omega_ka), but 8 divergent transitions, all in the upper tail of omega_emax (0.38-0.60 against a median
of 0.12; a patient's emax random effect 0.8-1.35) -- also 8 at target acceptance 0.95, 12 with a dense
matrix. So centring cures the slow typical value and uncovers a region of the weakly informed Emax random
effects that NUTS does not integrate; ``check_model`` therefore still fits the spec as given (not
``with_design_centring``), and the model still fails its recovery gate. The effect reparametrised with the
slope emax / ec50 does not remove them (2 and 30 divergences on seeds 0 and 1, against 8 and 5; it correlates
the typical values, -0.86): kappa of the Emax random effect falls from 0.84 at omega 0.2 to ~0.2 at omega 0.5
and a large patient effect, in either parametrisation (``validation/test_check_model.py``).

Mass matrix (``dense_mass_for``): DENSE only for ``centered=True`` (``eta ~ N(0, omega)`` sampled: the data pin
``TV + eta_i``, a linear ridge between every ``eta_i`` and the typical value that only a dense matrix
follows); DIAGONAL otherwise: a non-centred hierarchy's ``u`` are nearly independent standard normals curved
around each BSV SD, where a dense estimate of 50-120 dimensions from a 500-draw window mostly adds noise, and
per-parameter latent centring (``centered=(names...)``) has no ridge to follow. A twin (one patient's few
correlated parameters given the population, ``level="twin"``): dense. Used by ``check_model``'s recovery
fit, ``run_sbc`` and ``run_twin_sbc``.

Examples
--------
>>> from bayestwin.models import get_model
>>> from bayestwin.testing import default_spec
>>> spec = default_spec(get_model("pk.one_cmt_iv"))
>>> informed_parameters(spec)
('cl', 'v')
>>> dense_mass_for(spec), dense_mass_for(with_design_centring(spec))
(False, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bayestwin.dynamics.events import Doses
from bayestwin.models.registry import get_model
from bayestwin.spec import TwinSpec
from bayestwin.testing.design import DEFAULT_TIMES

__all__ = ["dense_mass_for", "informed_parameters", "shrinkage", "with_design_centring"]


def shrinkage(
    spec: TwinSpec, *, truth: Mapping[str, float] | None = None, omega: float = 0.2, sigma: float = 0.1,
    dose: float = 100.0, times: Sequence[float] = DEFAULT_TIMES,
) -> dict[str, float]:
    """``kappa_j`` of every BSV parameter of `spec` on the ``simulate_cohort`` design (module docstring).

    `truth` (default: the model's reference values), `omega`, `sigma`, `dose` and `times` are the design of
    ``simulate_cohort``: BSV SD `omega` on the latent scale (times ``|truth|`` for identity-scale parameters),
    proportional residual SD `sigma` (additive error: `sigma` times the mean ``|prediction|``). Computed at
    the typical patient, in float64.

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.testing import default_spec
    >>> {p: round(k, 3) for p, k in shrinkage(default_spec(get_model("pk.one_cmt_iv"))).items()}
    {'cl': 0.034, 'v': 0.058}
    """
    model = get_model(spec.model)
    truth = dict(model.reference_values if truth is None else truth)
    values = {p.name: (p.fixed if p.fixed is not None and p.name not in truth else truth[p.name])
              for p in spec.parameters}
    bsv = spec.bsv_parameters
    scale = {p.name: p.scale for p in spec.parameters}
    prior_sd = np.array([omega * ((abs(values[b]) or 1.0) if scale[b] == "identity" else 1.0) for b in bsv])
    doses = (Doses.single(time=0.0, amt=dose, cmt=model.compartment_index(model.default_dose_compartment))
             if model.compartments else Doses.single(time=0.0, amt=0.0)._replace(mask=jnp.zeros(1, dtype=bool)))
    cols = jnp.asarray([model.outputs.index(o) for o in spec.observed_outputs])
    t = jnp.asarray(times, dtype=jnp.float64)
    z0 = jnp.asarray([np.log(values[b]) if scale[b] == "log" else values[b] for b in bsv], dtype=jnp.float64)

    def predictions(z: jax.Array) -> jax.Array:  # (time, observed output) at latent values z of the BSV parameters
        theta = {n: jnp.asarray(v, dtype=jnp.float64) for n, v in values.items()}
        theta |= {b: (jnp.exp(z[j]) if scale[b] == "log" else z[j]) for j, b in enumerate(bsv)}
        return model.predict(theta, doses, t)[:, cols]

    # float64: importing bayestwin.dynamics (the models do) turns on jax_enable_x64
    # reverse mode: the ODE solvers are custom_vjp functions (no forward mode); a handful of outputs per parameter
    pred, jac = jax.jit(lambda z: (predictions(z), jax.jacrev(predictions)(z)))(z0)  # one compilation, not
    pred, jac = np.asarray(pred), np.asarray(jac)  # hundreds of op-by-op dispatches; jac (time, output, parameter)
    sd = np.empty_like(pred)
    for k, err in enumerate(spec.error):
        sd[:, k] = sigma * (np.abs(pred[:, k]).mean() if err.kind == "additive" else np.abs(pred[:, k]))
    weight = np.where(sd > 1e-12 * max(np.abs(pred).max(), 1e-300), 1.0 / np.where(sd > 0, sd, 1.0) ** 2, 0.0)
    j2 = jac.reshape(-1, len(bsv))
    fisher = j2.T @ (weight.reshape(-1)[:, None] * j2)
    cov = np.linalg.inv(fisher + np.diag(1.0 / prior_sd**2))
    return {b: float(cov[j, j] / prior_sd[j] ** 2) for j, b in enumerate(bsv)}


def informed_parameters(spec: TwinSpec, **design: object) -> tuple[str, ...]:
    """The BSV parameters whose patient values the design pins (``kappa < 1/5``, module docstring): the ones to centre.

    `design`: as ``shrinkage``.

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.testing import default_spec
    >>> informed_parameters(default_spec(get_model("pk.one_cmt_iv")))
    ('cl', 'v')
    """
    return tuple(b for b, k in shrinkage(spec, **design).items() if k < 0.2)  # type: ignore[arg-type]


def with_design_centring(spec: TwinSpec, **design: object) -> TwinSpec:
    """`spec` with ``centered=informed_parameters(spec)`` (unchanged with correlated BSV: LKJ needs a bool).

    A reparametrisation: the posterior of every population parameter is the same, only the sampler's
    coordinates change.

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.testing import default_spec
    >>> with_design_centring(default_spec(get_model("pk.one_cmt_iv"))).centered
    ('cl', 'v')
    """
    if spec.correlation is not None or not spec.bsv_parameters:
        return spec
    import dataclasses

    return dataclasses.replace(spec, centered=informed_parameters(spec, **design) or False)


def dense_mass_for(spec: TwinSpec, *, level: str = "population") -> bool:
    """Whether NUTS should adapt a dense mass matrix for `spec` at `level` (module docstring).

    ``level="population"`` (``check_model``'s recovery, ``run_sbc``): dense only for ``centered=True``.
    ``level="twin"`` (``run_twin_sbc``: one patient's few parameters given the population): dense, the
    individual parameters are linearly correlated (clearance with volume) and a handful of dimensions is
    estimated well from the warm-up window.

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.testing import default_spec
    >>> [dense_mass_for(default_spec(get_model(m))) for m in ("pk.one_cmt_iv", "longitudinal.level")]
    [False, True]
    >>> dense_mass_for(default_spec(get_model("pk.one_cmt_iv")), level="twin")
    True
    """
    if level not in ("population", "twin"):
        raise ValueError(f"dense_mass_for: level must be 'population' or 'twin', not {level!r}")
    return level == "twin" or spec.centered is True
