"""Model specifications: priors, parameters, error models, the TwinSpec and its transforms."""

from bayestwin.spec.observation import ErrorModel
from bayestwin.spec.parameters import CovariateEffect, Parameter
from bayestwin.spec.prior import Prior
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.transforms import (
    add_covariate_effect,
    fix_parameter,
    remove_bsv,
    remove_covariate_effect,
    set_bsv,
    set_correlation,
    set_error_model,
    set_parametrization,
    set_prior,
)
from bayestwin.spec.twin_spec import TwinSpec

__all__ = [
    "AbstractStructuralModel",
    "CovariateEffect",
    "ErrorModel",
    "Parameter",
    "Prior",
    "TwinSpec",
    "add_covariate_effect",
    "example_spec",
    "fix_parameter",
    "remove_bsv",
    "remove_covariate_effect",
    "set_bsv",
    "set_correlation",
    "set_error_model",
    "set_parametrization",
    "set_prior",
]


def example_spec() -> TwinSpec:
    """A small one-compartment oral PK spec (theophylline-like), for examples and tests.

    Examples
    --------
    >>> example_spec().parameter_names
    ('ka', 'cl', 'v')
    """
    return TwinSpec(
        name="example.one_cmt_oral",
        model="pk.one_cmt_oral",
        parameters=(
            Parameter("ka", unit="1/h", typical=Prior.lognormal(median=1.0, sigma=1.0)),
            Parameter("cl", unit="L/h", typical=Prior.lognormal(median=3.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
            Parameter("v", unit="L", typical=Prior.lognormal(median=30.0, sigma=1.0), bsv=Prior.half_normal(0.5)),
        ),
        error=(ErrorModel("additive"),),
    )
