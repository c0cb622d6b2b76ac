"""The peer benchmark's models (benchmarks/peerlib) are the model bayestwin fits: same log density.

Evaluated at two unconstrained points on 12 simulated patients; the direct NumPyro model, the PyMC model
and bayestwin's population model of the ``oral_1cpt`` spec must differ by the same constant at both points
(all three keep every normalising constant, so the constant is 0 here). No timing.
"""

from __future__ import annotations

import math
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from model_specs.oral_1cpt import spec  # noqa: E402
from numpyro.infer.util import potential_energy  # noqa: E402
from peerlib.models import (  # noqa: E402
    POPULATION,
    TRUTH,
    initial_values,
    nonmem_frame,
    numpyro_model,
    prior_medians,
    simulate,
)

from bayestwin.data import read_nonmem  # noqa: E402
from bayestwin.inference.arrays import cohort_arrays  # noqa: E402
from bayestwin.inference.population import build_population_model  # noqa: E402
from bayestwin.models import get_model  # noqa: E402

N = 12


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return simulate(N)


def _points() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    med = prior_medians()
    a = {k: np.log(med[k]) for k in POPULATION} | {"eta": np.zeros((N, 3))}
    b = {k: np.log(TRUTH[k]) + 0.1 * rng.normal() for k in POPULATION} | {"eta": 0.2 * rng.normal(size=(N, 3))}
    return [a, b]


def _bayestwin_potentials(data) -> list[float]:
    s = spec()
    model = get_model(s.model)
    table = read_nonmem(nonmem_frame(data), units={"time": "h", "amt": "mg", "dv": "mg/L"})
    arrays = cohort_arrays(table, s, model)
    fn = build_population_model(s, model, arrays.features)
    args = (arrays.doses, arrays.obs, dict(arrays.covariates))
    energy = jax.jit(lambda params: potential_energy(fn, args, {}, params))  # one compile for both points
    return [float(energy({k: jnp.asarray(v) for k, v in p.items()})) for p in _points()]


@pytest.fixture(scope="module")
def numpyro_potentials(data) -> list[float]:
    args = tuple(jnp.asarray(data[k]) for k in ("pid", "t", "y", "dose"))
    energy = jax.jit(lambda params: potential_energy(partial(numpyro_model, n=N), args, {}, params))
    return [float(energy({k: jnp.asarray(v) for k, v in p.items()})) for p in _points()]


def test_direct_numpyro_density_is_bayestwins(data, numpyro_potentials) -> None:
    values = numpyro_potentials
    diffs = [b - v for b, v in zip(_bayestwin_potentials(data), values, strict=True)]
    assert abs(values[0] - values[1]) > 10.0  # the two points are far apart: the check has teeth
    assert diffs[0] == pytest.approx(diffs[1], abs=1e-8 * max(abs(v) for v in values))
    assert diffs[0] == pytest.approx(0.0, abs=1e-8 * max(abs(v) for v in values))


def test_pymc_density_is_the_direct_numpyro_one(data, numpyro_potentials) -> None:
    pytest.importorskip("pymc")
    from peerlib.models import pymc_model

    model = pymc_model(data)
    logp = model.compile_logp(jacobian=True, mode="FAST_COMPILE")
    for point, expected in zip(_points(), numpyro_potentials, strict=True):
        value = {f"{k}_log__": v for k, v in point.items() if k != "eta"} | {"eta": point["eta"]}
        assert -float(logp(value)) == pytest.approx(expected, rel=1e-10)


def test_starts_follow_the_rule_and_stay_in_the_main_mode() -> None:
    starts = initial_values(N, 4, seed=1)
    med = prior_medians()
    for start in starts:
        for k in POPULATION:
            assert abs(math.log(start[k] / med[k])) <= 0.5
        assert start["tv_ka"] > start["tv_cl"] / start["tv_v"]  # ka > ke: not the flip-flop mode
        assert not np.any(start["eta"])
    assert len({s["tv_ka"] for s in starts}) == 4  # chains start apart
