"""The cheaper density kernels (issue 9) give what the old ones gave: values and gradients to ~1e-10.

The reference is the verbatim pre-fast-path ``superpose`` (``benchmarks/peerlib/old_kernels.py``), swapped in
while the old half of one program is traced. Every closed-form PK model on the bolus kernel's designs (single
and multiple doses into depot and central, padding, lag and bioavailability, resets) and the general kernel
(infusion + steady state) once, at random parameters and at the edges (``ka == ke`` exactly, flip-flop at long
times): predictions and the gradient of a randomly weighted sum of them (reverse mode, as the sampler takes
it). Then the population log density and its gradient on simulated patients with BLQ rows.

Tolerance: the new bolus kernel computes ``exp_dd`` as ``-e_lo expm1(-|x|) / |b - a|``, the old one as
``t e_lo phi(x)``; both are accurate to a few ulp in value, and the new gradient to ``~2 eps / |x|``
relative (``x = (ka - ke) tau``), which is < 1e-12 for the random draws here (|x| > 1e-3); 1e-10 leaves margin
for the sums of up to a few hundred terms. Deterministic float64: no Monte Carlo error.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peerlib.old_kernels import old_kernels  # noqa: E402

from bayestwin.dynamics import closed_form as cf  # noqa: E402
from bayestwin.dynamics.events import Doses  # noqa: E402

jax.config.update("jax_enable_x64", True)

RTOL = 1e-10
MODELS = {  # name -> (function, reference parameters, compartments)
    "one_cmt_iv": (cf.one_cmt_iv, {"cl": 2.0, "v": 20.0}, 1),
    "one_cmt_oral": (cf.one_cmt_oral, {"ka": 1.0, "cl": 2.0, "v": 20.0}, 2),
    "two_cmt_iv": (cf.two_cmt_iv, {"cl": 2.0, "v1": 20.0, "q": 3.0, "v2": 40.0}, 2),
    "two_cmt_oral": (cf.two_cmt_oral, {"ka": 1.5, "cl": 2.0, "v1": 20.0, "q": 3.0, "v2": 40.0}, 3),
}
TIMES = jnp.array([0.0, 0.25, 1.0, 2.0, 3.0, 5.999999, 6.0, 6.5, 12.0, 24.0, 48.0, 200.0])


def _doses(rows: list[tuple], n: int) -> Doses:
    """Padded doses from ``(time, amt, cmt, rate, ii, ss, reset)`` rows."""
    k = len(rows)
    col = list(zip(*rows, strict=True))

    def pad(values, fill, dtype):
        return jnp.asarray(list(values) + [fill] * (n - k), dtype=dtype)
    return Doses(time=pad(col[0], jnp.inf, float), amt=pad(col[1], 0.0, float), cmt=pad(col[2], 0, jnp.int32),
                 rate=pad(col[3], 0.0, float), ii=pad(col[4], 0.0, float), ss=pad(col[5], 0, jnp.int32),
                 reset=pad(col[6], False, bool), mask=jnp.arange(n) < k)


def _design(name: str, n_cmt: int) -> Doses:
    central = min(1, n_cmt - 1)  # the central compartment of the oral models; 0 for one_cmt_iv
    return {
        "single": _doses([(0.0, 100.0, 0, 0.0, 0.0, 0, False)], 1),
        "multiple_padded": _doses([(0.0, 100.0, 0, 0.0, 0.0, 0, False), (6.0, 50.0, central, 0.0, 0.0, 0, False),
                                   (12.0, 80.0, 0, 0.0, 0.0, 0, False)], 6),
        "reset": _doses([(0.0, 100.0, 0, 0.0, 0.0, 0, False), (6.0, 0.0, 0, 0.0, 0.0, 0, True),
                         (6.0, 70.0, 0, 0.0, 0.0, 0, False)], 4),
        # the general kernel: an infusion, a steady-state train and a later bolus
        "infusion_steady_state": _doses([(0.0, 100.0, 0, 0.0, 12.0, 1, True), (2.0, 100.0, central, 50.0, 0.0, 0,
                                          False), (12.0, 80.0, 0, 0.0, 0.0, 0, False)], 4),
    }[name]


def _draws(reference: dict[str, float], n: int, seed: int) -> dict[str, jnp.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(v * np.exp(rng.normal(0.0, 0.7, n))) for k, v in reference.items()}


def _new_and_old(fn, doses: Doses, features, extra: dict):
    """Jitted ``theta -> (now, with the old kernels)``, each ``(prediction, gradient of a weighted sum of it)``.

    One program for both (the old superpose is swapped in while its half is traced): one compilation. The
    weights are random, so every prediction's gradient counts.
    """
    weights = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, TIMES.shape))

    def predict(theta):
        return fn(TIMES, doses, **theta, **extra, features=features)

    def evaluate(theta):
        return jax.vmap(lambda th: (predict(th), jax.grad(lambda x: jnp.sum(weights * predict(x)))(th)))(theta)

    def both(theta):
        new = evaluate(theta)
        with old_kernels():
            return new, evaluate(theta)
    return jax.jit(both)


def _assert_close(new, old, what: str) -> None:
    new, old = np.asarray(new), np.asarray(old)
    assert np.all(np.isfinite(new)), f"{what}: not finite"
    # absolute floor: 1e-13 of the largest entry of the same row (a prediction curve, a gradient), for entries
    # that are sums of terms cancelling to ~0
    scale = np.max(np.abs(old), axis=-1, keepdims=True) if old.ndim > 1 else np.max(np.abs(old))
    err = np.abs(new - old) - (RTOL * np.abs(old) + 1e-13 * scale)
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert np.all(err <= 0), f"{what}: {new[worst]!r} vs old {old[worst]!r} at {worst}"


# The general kernel (infusions, steady state) changed only where it picks per-compartment values (selects instead
# of a gather: exact, see test_pick_is_indexing); it is compiled for the cheapest model here (its oral form takes
# ~4x longer to compile), to keep the suite short.
CASES = [(m, d) for m in MODELS for d in ("single", "multiple_padded", "reset")] + [
    ("one_cmt_iv", "infusion_steady_state")]


@pytest.mark.parametrize(("model", "design"), CASES)
def test_prediction_and_gradient_equal_old_kernels(model: str, design: str) -> None:
    fn, reference, n_cmt = MODELS[model]
    doses = _design(design, n_cmt)
    features = cf.dose_features(doses)
    extra = {"f": 0.7, "tlag": 0.4} if "ka" in reference and design == "multiple_padded" else {}
    theta = _draws(reference, 6, seed=len(model) * 7 + len(design))
    new, old = _new_and_old(fn, doses, features, extra)(theta)
    _assert_close(new[0], old[0], f"{model} {design}: prediction")
    for k in reference:
        _assert_close(new[1][k], old[1][k], f"{model} {design}: d sum(w prediction) / d {k}")


def test_edges_equal_old_kernels() -> None:
    """``ka == ke`` exactly (and 0.1 % apart), and flip-flop with fast elimination far out (no overflow)."""
    theta = {"ka": jnp.array([0.1, 0.1 * (1 + 1e-3), 0.01, 30.0]), "cl": jnp.array([2.0, 2.0, 160.0, 0.5]),
             "v": jnp.full(4, 20.0)}  # ke = 0.1, 0.1, 8, 0.025
    new, old = _new_and_old(cf.one_cmt_oral, _design("multiple_padded", 2), frozenset(), {})(theta)
    _assert_close(new[0], old[0], "edges: prediction")
    for k in theta:
        _assert_close(new[1][k], old[1][k], f"edges: d sum(w prediction) / d {k}")


def test_population_log_density_and_gradient_equal_old_kernels() -> None:
    """The oral_1cpt population density on 12 simulated patients with BLQ rows (M3), at random points.

    With censored rows the likelihood takes its censored branch; without them (the benchmark's case) it uses
    the same predictions, so one dataset covers the prediction inside the density.
    """
    from model_specs.oral_1cpt import spec
    from numpyro.infer.util import potential_energy
    from peerlib.models import nonmem_frame, simulate

    from bayestwin.data import read_nonmem
    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.inference.population import build_population_model
    from bayestwin.models import get_model

    s = spec()
    model = get_model(s.model)
    frame = nonmem_frame(simulate(12))
    low = (frame["EVID"] == 0) & (frame["TIME"] >= 24.0) & (frame["ID"] % 3 == 0)
    frame["CENS"] = np.where(low, 1, 0)
    frame.loc[low, "DV"] = 0.5
    arrays = cohort_arrays(read_nonmem(frame, units={"time": "h", "amt": "mg", "dv": "mg/L"}), s, model)
    assert "censored" in arrays.features
    fn = build_population_model(s, model, arrays.features)
    args = (arrays.doses, arrays.obs, dict(arrays.covariates))
    rng = np.random.default_rng(3)
    centre = {f"tv_{p.name}": p.typical.param("mu") for p in s.parameters}  # log-normal priors: mu = log median
    centre |= {f"omega_{p.name}": math.log(0.3) for p in s.parameters} | {"sigma_prop": math.log(0.1)}
    points = [{k: jnp.asarray(v + rng.normal(0.0, 0.3)) for k, v in centre.items()}
              | {"eta": jnp.asarray(rng.normal(0.0, 0.3, (arrays.n_patients, 3)))} for _ in range(2)]
    latent = points[0]
    evaluate = jax.value_and_grad(lambda z: potential_energy(fn, args, {}, z))

    def both(z):
        new = evaluate(z)
        with old_kernels():
            return new, evaluate(z)
    run = jax.jit(both)
    (value, grad), (old_value, old_grad) = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[run(p) for p in points])
    _assert_close(value, old_value, "log density")
    for name in latent:
        _assert_close(grad[name].reshape(2, -1), old_grad[name].reshape(2, -1), f"d log density / d {name}")


def test_pick_is_indexing() -> None:
    table = jnp.arange(12.0).reshape(3, 2, 2)
    cmt = jnp.array([2, 0, 1, 1, 0], dtype=jnp.int32)
    np.testing.assert_array_equal(np.asarray(cf._pick(table, cmt)), np.asarray(table[cmt]))
