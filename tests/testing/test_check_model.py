"""Every registered built-in model goes through ``bayestwin.testing.check_model``.

The default suite runs the cheap checks (spec, prior predictive on 1,000 draws, gradients against
finite differences, one compilation for two data sets) on every closed-form model, and the spec check
on ODE models (their other checks take minutes: a diffrax solve per patient and draw, compiled for
gradients); ``make validate`` (validation/test_check_model.py) runs every check, recovery included,
on every model. The harness's own power: a model whose gradient is wrong, and one that returns NaN,
must fail it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp
import pytest

import bayestwin.inference
from bayestwin.dynamics import closed_form as cf
from bayestwin.inference import SamplerConfig
from bayestwin.models import get_model, model_names
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.testing import RECOVERY_SAMPLER, check_model

BUILT_IN = [n for n in model_names() if not n.startswith("test.")]


@pytest.mark.parametrize("name", BUILT_IN)
def test_cheap_checks(name: str) -> None:
    cheap = ("spec",) if get_model(name).kind == "ode" else ("spec", "prior_predictive", "gradients", "compile_once")
    check_model(name, checks=cheap).raise_if_failed()


class _Broken(AbstractStructuralModel):
    name = "test.broken"
    compartments: ClassVar[tuple[str, ...]] = ("central",)
    default_dose_compartment: ClassVar[str] = "central"
    parameters: ClassVar[Mapping[str, str]] = {"cl": "L/h", "v": "L"}
    units: ClassVar[Mapping[str, str]] = {"time": "h", "amt": "mg", "conc": "mg/L"}
    reference_values: ClassVar[Mapping[str, float]] = {"cl": 2.0, "v": 20.0}
    how: ClassVar[str] = "gradient"

    def predict(self, theta, doses, times, *, features=None):
        cl = theta["cl"]
        if self.how == "gradient":  # right values, gradient in CL missing (a dropped term)
            cl = jax.lax.stop_gradient(cl)
        conc = cf.one_cmt_iv(times, doses, cl, theta["v"], features=features)
        if self.how == "nan":  # NaN for large clearances
            conc = jnp.where(theta["cl"] > 2.5, jnp.nan, conc)
        return conc[:, None]


@pytest.mark.parametrize(("how", "check"), [("gradient", "gradients"), ("nan", "prior_predictive")])
def test_harness_catches_a_broken_model(how: str, check: str) -> None:
    broken = type(f"Broken_{how}", (_Broken,), {"how": how})()
    report = check_model(broken, checks=(check,))
    assert not report.ok, report.format()
    assert "FAILED" in report.format()


def test_recovery_fits_with_the_documented_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    # the recovery check's default sampler is RECOVERY_SAMPLER at check_model's seed, with a diagonal mass matrix
    # for a non-centred spec and a dense one for a centred spec (why: bayestwin.testing.harness); a given sampler
    # is used as is
    seen = []

    def fake_fit(spec, table, *, sampler=None, gate=None):  # records the sampler, fits nothing
        seen.append((spec.centered, sampler, table.n_patients))
        raise RuntimeError("no fit in this test")

    monkeypatch.setattr(bayestwin.inference, "fit_population", fake_fit)
    report = check_model("pk.one_cmt_iv", checks=("recovery",), seed=3)
    assert not report.ok and "no fit in this test" in report.format()
    check_model("longitudinal.level", checks=("recovery",), seed=3)
    mine = SamplerConfig.fast(seed=5)
    check_model("pk.one_cmt_iv", checks=("recovery",), recovery_sampler=mine)
    assert seen == [(False, dataclasses.replace(RECOVERY_SAMPLER, seed=3), 16),
                    (True, dataclasses.replace(RECOVERY_SAMPLER, seed=3, dense_mass=True), 16), (False, mine, 16)]
    assert not RECOVERY_SAMPLER.dense_mass and (RECOVERY_SAMPLER.warmup, RECOVERY_SAMPLER.draws) == (1000, 1000)
