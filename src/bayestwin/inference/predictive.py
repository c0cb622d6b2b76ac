"""Posterior predictive draws for one patient or a cohort: latent prediction (IPRED) and new observations.

IPRED comes from one compiled JAX program per (spec, model, outputs, dose features). The residual noise of the
new observations is drawn, by default (``noise="auto"``), with numpy's PCG64 + ziggurat generator on CPU
(``inference.noise``: several times faster there than JAX's threefry, which dominated the cost) and with JAX's
generator inside the compiled program on a GPU. Both are reproducible from `seed`; they give different values,
so pass ``noise="numpy"`` or ``noise="jax"`` to get the same draws on every backend.

Examples
--------
>>> import numpy as np
>>> from bayestwin.dynamics.events import Doses
>>> from bayestwin.models import get_model
>>> from bayestwin.spec import example_spec
>>> theta = {"ka": np.full(3, 1.0), "cl": np.full(3, 2.0), "v": np.full(3, 20.0)}
>>> ipred, pred = predictive_draws(example_spec(), get_model("pk.one_cmt_oral"), theta,
...                                {"sigma_add": np.full(3, 0.1)}, Doses.single(time=0.0, amt=100.0),
...                                np.array([2.0]), seed=0)
>>> ipred.shape, round(float(ipred[0, 0, 0]), 5)
((3, 1, 1), 3.79664)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayestwin.dynamics.closed_form import dose_features
from bayestwin.dynamics.events import Doses
from bayestwin.inference.noise import observe_numpy, use_numpy_noise
from bayestwin.inference.outputs import output_columns, sigma_groups, simulate_observations
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["cohort_predictive_draws", "predictive_draws"]


def predictive_draws(
    spec: TwinSpec,
    model: AbstractStructuralModel,
    theta: Mapping[str, np.ndarray],
    sigmas: Mapping[str, np.ndarray],
    doses: Doses,
    times: np.ndarray,
    *,
    seed: int = 0,
    starts: np.ndarray | None = None,
    noise: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """IPRED and observation-scale draws at `times`: two arrays ``(sample, time, output)``.

    The output axis holds the spec's observed outputs in the order of ``spec.error``.
    `theta` maps every structural parameter to ``(sample,)`` values; `sigmas`
    every residual SD site (``spec.sigma_names``). With time-varying covariates, `starts` holds the
    segments' start times and each `theta` value is ``(sample, segment)``. Observations are simulated from
    each output's error model (log-normal error: ``exp(log ipred + sigma * e)``; Student-t noise for an error
    model with ``nu``), uncensored; a ``known_sd`` output raises SpecError. `noise` picks the generator of the
    residual noise (``"auto"``: numpy's PCG64 on CPU, JAX's threefry on a GPU; ``"numpy"``; ``"jax"``; see
    ``inference.noise``): the same `seed` gives the same draws with the same generator.
    """
    numpy_noise = use_numpy_noise(noise)
    columns = tuple(output_columns(spec, model))
    features = dose_features(doses)
    t = jnp.asarray(times, dtype=float)
    th = {k: jnp.asarray(v, dtype=float) for k, v in theta.items()}
    sg = {k: jnp.asarray(v, dtype=float) for k, v in sigmas.items()}
    st = None if starts is None else jnp.asarray(starts, dtype=float)
    run = _program(spec, model, columns, features, segmented=starts is not None, noise=not numpy_noise)
    if not numpy_noise:
        ipred, pred = run(th, sg, jax.random.PRNGKey(seed), doses, t, st)
        return np.asarray(ipred), np.asarray(pred)
    ipred = np.asarray(run(th, sg, None, doses, t, st))
    return ipred, observe_numpy(ipred, spec.error, sigma_groups(spec, sigmas), seed=seed)


def cohort_predictive_draws(
    spec: TwinSpec,
    model: AbstractStructuralModel,
    theta: Mapping[str, np.ndarray],
    sigmas: Mapping[str, np.ndarray],
    doses: Doses,
    times: np.ndarray,
    *,
    seed: int = 0,
    noise: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`predictive_draws` for many patients in one compiled call: two arrays ``(patient, sample, time, output)``.

    `theta` maps every structural parameter to ``(patient, sample)`` values and `sigmas` every residual SD
    site to ``(patient, sample)``; `doses` has a leading patient axis (padded, as ``cohort_arrays`` makes
    them); `times` is ``(time,)``, shared by every patient. Patient ``i`` gets its own random stream: with
    numpy's generator (`noise`, as in ``predictive_draws``) the children ``(i, block)`` of the seed's
    ``SeedSequence``, so patient 0's noise equals ``predictive_draws``' with the same seed and draws; with JAX's
    ``fold_in(PRNGKey(seed), i)``. Float64 (x64) as the twin's forecasts; the output of 200 patients x
    4,000 draws x 100 times is two 640 MB arrays (``benchmarks/predictive.py`` times it). No time-varying
    covariates (use ``predictive_draws`` per patient).

    Examples
    --------
    >>> from bayestwin.models import get_model
    >>> from bayestwin.spec import example_spec
    >>> one = Doses.single(time=0.0, amt=100.0)
    >>> doses = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), one)  # two patients, same dose
    >>> theta = {"ka": np.ones((2, 3)), "cl": np.full((2, 3), 2.0), "v": np.full((2, 3), 20.0)}
    >>> ipred, pred = cohort_predictive_draws(example_spec(), get_model("pk.one_cmt_oral"), theta,
    ...                                       {"sigma_add": np.full((2, 3), 0.1)}, doses, np.array([2.0]))
    >>> ipred.shape, round(float(ipred[1, 0, 0, 0]), 5)
    ((2, 3, 1, 1), 3.79664)
    """
    columns = tuple(output_columns(spec, model))
    features = dose_features(jax.tree_util.tree_map(lambda a: np.asarray(a).ravel(), doses))
    numpy_noise = use_numpy_noise(noise)
    th = {k: jnp.asarray(v, dtype=float) for k, v in theta.items()}
    sg = {k: jnp.asarray(v, dtype=float) for k, v in sigmas.items()}
    run = _cohort_program(spec, model, columns, features, noise=not numpy_noise)
    if not numpy_noise:
        ipred, pred = run(th, sg, jax.random.PRNGKey(seed), doses, jnp.asarray(times, dtype=float))
        return np.asarray(ipred), np.asarray(pred)
    ipred = np.asarray(run(th, sg, None, doses, jnp.asarray(times, dtype=float)))
    return ipred, observe_numpy(ipred, spec.error, sigma_groups(spec, sigmas), seed=seed)


_PROGRAMS: dict[tuple[Any, ...], Any] = {}


def _cohort_program(spec: TwinSpec, model: AbstractStructuralModel, columns: tuple[int, ...],
                    features: frozenset[str], *, noise: bool) -> Any:
    """The compiled cohort predictive program of (spec, model, outputs, dose features), built once."""
    key = ("cohort", spec.digest(), model.name, columns, features, noise)
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    one = _program(spec, model, columns, features, segmented=False, noise=noise)

    @jax.jit
    def run(th: Mapping[str, jax.Array], sg: Mapping[str, jax.Array], key: jax.Array | None, doses: Doses,
            t: jax.Array) -> Any:
        index = jnp.arange(next(iter(th.values())).shape[0])
        if key is None:
            return jax.vmap(lambda a, b, d: one(a, b, None, d, t, None))(th, sg, doses)
        return jax.vmap(lambda a, b, i, d: one(a, b, jax.random.fold_in(key, i), d, t, None))(th, sg, index, doses)

    _PROGRAMS[key] = run
    return run


def _program(spec: TwinSpec, model: AbstractStructuralModel, columns: tuple[int, ...], features: frozenset[str], *,
             segmented: bool, noise: bool) -> Any:
    """The compiled predictive program of (spec, model, outputs, dose features), built once.

    The draws, doses and times are arguments, so a new patient or regimen of an already-seen padded size
    compiles nothing. With `noise` it returns (IPRED, observations with JAX's noise), else IPRED alone.
    """
    key = (spec.digest(), model.name, columns, features, segmented, noise)
    if key in _PROGRAMS:
        return _PROGRAMS[key]

    @jax.jit
    def run(th: Mapping[str, jax.Array], sg: Mapping[str, jax.Array], key: jax.Array | None, doses: Doses,
            t: jax.Array, st: jax.Array | None) -> Any:
        if st is None:
            every = jax.vmap(lambda one: model.predict(one, doses, t, features=features))(th)
        else:
            every = jax.vmap(lambda one: model.predict_segments(one, st, doses, t, features=features))(th)
        # every: (sample, time, model output)
        ipred = every[..., jnp.asarray(columns)]  # (sample, time, observed output)
        if not noise:
            return ipred
        n = ipred.shape[0]
        groups = sigma_groups(spec, {k: v.reshape(n, 1, 1) for k, v in sg.items()})
        output = jnp.broadcast_to(jnp.arange(len(columns)), ipred.shape)  # error model of each column
        return ipred, simulate_observations(key, ipred, output, errors=spec.error, sigmas=groups)

    _PROGRAMS[key] = run
    return run
