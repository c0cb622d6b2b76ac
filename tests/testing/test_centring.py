"""Per-parameter latent centring (``TwinSpec.centered=(names...)``) and the design rule that picks it.

The partly centred population model is a reparametrisation of the non-centred one: with the centred
parameters' latent values ``z = mu + omega u``, its potential energy at ``z`` equals the non-centred one at
``u`` plus ``n_patients * sum(log omega_j)`` over the centred parameters (the Jacobian), and both give the
same individual parameters.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import potential_energy

from bayestwin.exceptions import SpecError
from bayestwin.inference.arrays import cohort_arrays
from bayestwin.inference.population import build_population_model
from bayestwin.models import get_model
from bayestwin.spec import Prior, TwinSpec
from bayestwin.testing import default_spec, simulate_cohort
from bayestwin.testing.centring import dense_mass_for, informed_parameters, shrinkage


@pytest.fixture(scope="module")
def oral():
    model = get_model("pk.one_cmt_oral")
    spec = default_spec(model)
    table, _ = simulate_cohort(spec, n_patients=5, seed=2)
    arrays = cohort_arrays(table, spec, model)
    return model, spec, arrays


def test_partly_centred_energy_is_the_non_centred_one_plus_the_jacobian(oral) -> None:
    model, spec, arrays = oral
    args = (arrays.doses, arrays.obs, {})
    part = dataclasses.replace(spec, centered=("cl", "v"))
    rng = np.random.default_rng(0)
    u = rng.normal(size=(5, 3))  # columns ka, cl, v
    common = {"tv_ka": 1.1, "tv_cl": 2.3, "tv_v": 18.0, "omega_ka": 0.3, "omega_cl": 0.25, "omega_v": 0.15,
              "sigma_prop": 0.12}
    omega = np.array([common["omega_cl"], common["omega_v"]])
    mu = np.log([common["tv_cl"], common["tv_v"]])
    # numpyro's potential_energy takes unconstrained values: log of the positive sites
    log = {k: jnp.log(v) for k, v in common.items()}
    def energy(s: TwinSpec, params: dict) -> float:  # jitted: one compilation instead of op-by-op tracing
        fn = build_population_model(s, model, arrays.features)
        return float(jax.jit(lambda p, a: potential_energy(fn, a, {}, p))(params, args))

    e_nc = energy(spec, log | {"eta_z": jnp.asarray(u)})
    e_pc = energy(part, log | {"eta_z": jnp.asarray(u[:, :1]), "latent_c": jnp.asarray(mu + omega * u[:, 1:])})
    assert float(e_pc - e_nc) == pytest.approx(5 * np.log(omega).sum(), abs=1e-9)


def test_partly_centred_spec_round_trips_and_is_checked() -> None:
    spec = default_spec(get_model("pk.one_cmt_oral"))
    part = dataclasses.replace(spec, centered=["v", "cl"])  # any order in, spec order kept
    assert part.centered == ("cl", "v")
    assert TwinSpec.from_dict(json.loads(part.to_json())) == part
    assert dataclasses.replace(spec, centered=()).centered is False
    with pytest.raises(SpecError, match="not parameters with BSV"):
        dataclasses.replace(spec, centered=("q",))
    with pytest.raises(SpecError, match="correlated BSV"):
        dataclasses.replace(spec, centered=("cl",), correlation=Prior("LKJ", eta=2.0))


def test_design_rule_and_mass_matrix() -> None:
    spec = default_spec(get_model("pk.one_cmt_oral"))
    kappa = shrinkage(spec)
    # ka is informed only by the absorption phase (2-3 samples): its data leave more of the prior than cl's
    assert kappa["cl"] < kappa["v"] < kappa["ka"] < 0.5
    assert informed_parameters(spec) == tuple(p for p, k in kappa.items() if k < 0.2)
    assert [dense_mass_for(dataclasses.replace(spec, centered=c)) for c in (False, True, ("cl",))] == [
        False, True, False]
    assert dense_mass_for(spec, level="twin")
    with pytest.raises(ValueError, match="level"):
        dense_mass_for(spec, level="cohort")


def test_shrinkage_of_ode_models() -> None:
    # the ODE solvers have a custom VJP and no forward mode (jacfwd raised a TypeError until 2026-11-28): the
    # Jacobian is taken in reverse mode. ka and V of the Michaelis-Menten model: as in the linear oral model,
    # V (pinned by every sample) shrinks more than ka (absorption phase only)
    kappa = shrinkage(default_spec(get_model("pk.one_cmt_oral_mm")))
    assert set(kappa) == {"ka", "km", "vm", "v"}
    assert all(0.0 < k < 1.0 for k in kappa.values())
    assert kappa["v"] < kappa["ka"] < 0.5
    idr = default_spec(get_model("pd.one_cmt_oral_idr1"))
    assert informed_parameters(idr) == ("cl", "v", "r0")
