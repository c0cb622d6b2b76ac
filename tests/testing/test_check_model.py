"""Every registered built-in model goes through ``bayestwin.testing.check_model``.

The default suite runs the cheap checks (spec, prior predictive on 1,000 draws, gradients against
finite differences, one compilation for two data sets) on every closed-form model, and the spec check
on ODE models (their other checks take minutes: a diffrax solve per patient and draw, compiled for
gradients); ``make validate`` (validation/test_check_model.py) runs every check, recovery included,
on every model. The harness's own power: a model whose gradient is wrong, and one that returns NaN,
must fail it.

Gradient power (2026-11-27): the check reported exactly 0.0e+00 for ``cardio.windkessel_emax``,
``oncology.stein`` and ``pk.one_cmt_iv``: not a flat density nor a swamping floor. It reports the error NET
of 100 times the rounding floor ``eps |E| / h``, and the true errors lie below it (energies 2e2-3e6 at
prior draws: floors 5e-9-7e-5 absolute against gradients of 1e2-6e7; at the simulated truth, now also
checked, E ~ 3e1-1e3 and floors 1e-9-3e-8). A wrong derivative is caught: a Windkessel whose resistance
derivative is 0.1 % too large (a custom JVP) failed with relative error 1.3e-3 (1.3e-4 at 0.01 %; the
check before the truth points: 1.0e-3 and 1.0e-4); ``how="jvp"`` below pins this on the IV model.
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
from bayestwin.testing import RECOVERY_SAMPLER, check_model, default_spec

BUILT_IN = [n for n in model_names() if not n.startswith("test.")]


@pytest.mark.parametrize("name", BUILT_IN)
def test_cheap_checks(name: str) -> None:
    cheap = ("spec",) if get_model(name).kind == "ode" else ("spec", "prior_predictive", "gradients", "compile_once")
    check_model(name, checks=cheap).raise_if_failed()


@jax.custom_jvp
def _off_by_a_tenth_of_a_percent(x: jax.Array) -> jax.Array:  # the identity, with derivative 1.001
    return x


_off_by_a_tenth_of_a_percent.defjvp(lambda primals, tangents: (primals[0], 1.001 * tangents[0]))


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
        if self.how == "jvp":  # right values, derivative in CL 0.1 % too large (a custom JVP off by a factor)
            cl = _off_by_a_tenth_of_a_percent(cl)
        conc = cf.one_cmt_iv(times, doses, cl, theta["v"], features=features)
        if self.how == "nan":  # NaN for large clearances
            conc = jnp.where(theta["cl"] > 2.5, jnp.nan, conc)
        return conc[:, None]


@pytest.mark.parametrize(("how", "check"), [("gradient", "gradients"), ("jvp", "gradients"),
                                            ("nan", "prior_predictive")])
def test_harness_catches_a_broken_model(how: str, check: str) -> None:
    broken = type(f"Broken_{how}", (_Broken,), {"how": how})()
    # data simulated by the registered model (simulate_cohort looks the spec's model up): without this spec the
    # check crashed on the unregistered "test.broken" and "failed" whatever the gradient (until 2026-11-27)
    report = check_model(broken, spec=default_spec(get_model("pk.one_cmt_iv")), checks=(check,))
    assert not report.ok, report.format()
    assert "FAILED" in report.format() and "raised" not in report.format(), report.format()
    if how == "jvp":  # the 0.1 % itself (~1e-3), not noise
        assert "worst relative error 1." in report.format()


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
