"""Shared helpers of the store tests: a test key, deterministic small posteriors, exact comparison."""

from __future__ import annotations

import hashlib

import arviz as az
import numpy as np
import xarray as xr

KEY = "test-key-for-the-store-tests-0123456789abcdef"


def make_idata(seed: int, *, draws: int = 40) -> az.InferenceData:
    """A small (a few KB) InferenceData fully determined by `seed`: several groups, dtypes, coords and attrs."""
    rng = np.random.default_rng(seed)
    posterior = xr.Dataset(
        {"cl": (("chain", "draw"), rng.lognormal(size=(2, draws))),
         "v": (("chain", "draw", "segment"), rng.normal(size=(2, draws, 3)).astype(np.float32)),
         "component": (("chain", "draw"), rng.integers(0, 4, size=(2, draws)))},
        coords={"chain": [0, 1], "draw": np.arange(draws), "segment": ["a", "b", "c"]},
        attrs={"seed": int(seed), "note": "test posterior"})
    posterior["cl"].attrs["unit"] = "L/h"
    stats = xr.Dataset({"diverging": (("chain", "draw"), rng.random((2, draws)) < 0.05),
                        "energy": (("chain", "draw"), rng.normal(size=(2, draws)))},
                       coords={"chain": [0, 1], "draw": np.arange(draws)})
    return az.InferenceData(posterior=posterior, sample_stats=stats)


def seed_for(patient: str, version: int) -> int:
    """A reproducible seed for (patient, version), so a checker can rebuild what a writer committed."""
    return int.from_bytes(hashlib.sha256(f"{patient}/{version}".encode()).digest()[:4], "little")


def assert_idata_identical(a: az.InferenceData, b: az.InferenceData) -> None:
    """Same groups, variables, coords, attrs; every array with the same dtype, shape and bytes."""
    assert list(a.groups()) == list(b.groups())
    for group in a.groups():
        x, y = a[group], b[group]
        assert x.attrs == y.attrs, group
        assert sorted(x.variables) == sorted(y.variables), group
        for name in x.variables:
            u, w = x[name], y[name]
            assert u.dims == w.dims, (group, name)
            assert u.dtype == w.dtype, (group, name, u.dtype, w.dtype)
            assert u.attrs == w.attrs, (group, name)
            assert np.asarray(u.values).tobytes() == np.asarray(w.values).tobytes(), (group, name)
