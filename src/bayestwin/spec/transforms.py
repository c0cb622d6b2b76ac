"""Verb-noun transforms: each returns a new ``TwinSpec`` and leaves the old one untouched.

Examples
--------
>>> from bayestwin.spec import Prior, example_spec
>>> spec = example_spec()
>>> spec2 = add_covariate_effect(spec, "cl", "WT", form="power", reference=70.0, fixed=0.75)
>>> [c.covariate for c in spec2.parameter("cl").covariates], spec.parameter("cl").covariates
(['WT'], ())
"""

from __future__ import annotations

from dataclasses import replace

from bayestwin.exceptions import SpecError
from bayestwin.spec.observation import ErrorModel
from bayestwin.spec.parameters import CovariateEffect, CovariateForm, Parameter
from bayestwin.spec.prior import Prior
from bayestwin.spec.twin_spec import TwinSpec

__all__ = [
    "add_covariate_effect",
    "fix_parameter",
    "remove_bsv",
    "remove_covariate_effect",
    "set_bsv",
    "set_correlation",
    "set_error_model",
    "set_parametrization",
    "set_prior",
]


def _with_parameter(spec: TwinSpec, parameter: Parameter) -> TwinSpec:
    spec.parameter(parameter.name)  # SpecError listing the parameters if absent
    params = tuple(parameter if p.name == parameter.name else p for p in spec.parameters)
    return replace(spec, parameters=params)


def set_prior(spec: TwinSpec, parameter: str, prior: Prior) -> TwinSpec:
    """Return a copy of `spec` whose `parameter` has the typical-value prior `prior`.

    A fixed parameter becomes estimated again.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> set_prior(example_spec(), "v", Prior.lognormal(median=40.0, sigma=0.5)).parameter("v").typical.family
    'LogNormal'
    """
    return _with_parameter(spec, replace(spec.parameter(parameter), typical=prior, fixed=None))


def fix_parameter(spec: TwinSpec, parameter: str, value: float) -> TwinSpec:
    """Return a copy of `spec` with `parameter`'s typical value fixed at `value` (not estimated).

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> fix_parameter(example_spec(), "ka", 1.5).parameter("ka").estimated
    False
    """
    return _with_parameter(spec, replace(spec.parameter(parameter), typical=None, fixed=float(value)))


def set_bsv(spec: TwinSpec, parameter: str, prior: Prior) -> TwinSpec:
    """Return a copy of `spec` where `parameter` has BSV with SD prior `prior`.

    Log-normal BSV on a log-scale parameter, an additive normal random effect on an identity-scale one.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> set_bsv(example_spec(), "ka", Prior.half_normal(1.0)).bsv_parameters
    ('ka', 'cl', 'v')
    """
    return _with_parameter(spec, replace(spec.parameter(parameter), bsv=prior))


def remove_bsv(spec: TwinSpec, parameter: str) -> TwinSpec:
    """Return a copy of `spec` in which all patients share `parameter`'s typical value.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> remove_bsv(example_spec(), "v").bsv_parameters
    ('cl',)
    """
    changed = replace(spec.parameter(parameter), bsv=None)
    params = tuple(changed if p.name == parameter else p for p in spec.parameters)
    still_correlated = sum(p.has_bsv for p in params) >= 2
    return replace(spec, parameters=params, correlation=spec.correlation if still_correlated else None)


def add_covariate_effect(
    spec: TwinSpec,
    parameter: str,
    covariate: str,
    *,
    form: CovariateForm | None = None,
    reference: float = 1.0,
    prior: Prior | None = None,
    fixed: float | None = None,
    unit: str | None = None,
) -> TwinSpec:
    """Return a copy of `spec` in which `parameter` depends on `covariate`.

    Parameters
    ----------
    parameter : str
        Structural parameter, e.g. ``"cl"``.
    covariate : str
        Event-table column, e.g. ``"WT"`` (kg).
    form, reference, prior, fixed, unit
        See ``CovariateEffect``; default form ``"power"`` on a log-scale parameter and ``"linear"``
        (additive) on an identity-scale one; default prior Normal(0, 1) on the coefficient when
        neither prior nor fixed is given.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> s = add_covariate_effect(example_spec(), "v", "WT", reference=70.0, unit="kg")
    >>> s.parameter("v").covariates[0].prior
    Prior(family='Normal', params=(('mu', 0.0), ('sigma', 1.0)))
    """
    p = spec.parameter(parameter)
    if any(c.covariate == covariate for c in p.covariates):
        raise SpecError(f"parameter {parameter!r} already depends on {covariate!r}; remove that effect first")
    if prior is None and fixed is None:
        prior = Prior("Normal", mu=0.0, sigma=1.0)
    if form is None:
        form = "linear" if p.scale == "identity" else "power"
    effect = CovariateEffect(covariate, form=form, reference=reference, prior=prior, fixed=fixed, unit=unit)
    return _with_parameter(spec, replace(p, covariates=(*p.covariates, effect)))


def remove_covariate_effect(spec: TwinSpec, parameter: str, covariate: str) -> TwinSpec:
    """Return a copy of `spec` without `parameter`'s dependence on `covariate`."""
    p = spec.parameter(parameter)
    kept = tuple(c for c in p.covariates if c.covariate != covariate)
    if len(kept) == len(p.covariates):
        raise SpecError(f"parameter {parameter!r} has no effect of {covariate!r}; it has "
                        f"{[c.covariate for c in p.covariates]}")
    return _with_parameter(spec, replace(p, covariates=kept))


def set_error_model(spec: TwinSpec, error: ErrorModel) -> TwinSpec:
    """Return a copy of `spec` with `error` replacing the error model of its output.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> set_error_model(example_spec(), ErrorModel("combined")).error[0].kind
    'combined'
    """
    outputs = [e.output for e in spec.error]
    if error.output in outputs:
        errors = tuple(error if e.output == error.output else e for e in spec.error)
    else:
        errors = (*spec.error, error)
    return replace(spec, error=errors)


def set_correlation(spec: TwinSpec, prior: Prior | None) -> TwinSpec:
    """Return a copy of `spec` with correlated BSV (``Prior("LKJ", eta=2.0)``) or independent (None)."""
    return replace(spec, correlation=prior)


def set_parametrization(spec: TwinSpec, *, centered: bool | tuple[str, ...]) -> TwinSpec:
    """Return a copy of `spec` with centred (True), non-centred (False) or per-parameter centred random effects.

    A tuple names the parameters whose latent values are sampled directly (``TwinSpec.centered``).
    """
    return replace(spec, centered=centered)
