"""Registry of structural models: every built-in model is found by name.

Registering a model enrols it in the shared conformance harness, the CLI and
the service. Names are unique; registering one twice is an error.

Examples
--------
>>> "pk.one_cmt_oral" in model_names()
True
>>> get_model("pk.one_cmt_oral").compartments
('depot', 'central')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from bayestwin.exceptions import SpecError
from bayestwin.spec.structural import AbstractStructuralModel
from bayestwin.spec.twin_spec import TwinSpec

__all__ = ["get_model", "model_names", "register", "validate_spec"]

_REGISTRY: dict[str, type[AbstractStructuralModel]] = {}
M = TypeVar("M", bound=type[AbstractStructuralModel])


def register(name: str) -> Callable[[M], M]:
    """Class decorator registering a structural model under `name`."""

    def wrap(cls: M) -> M:
        if name in _REGISTRY:
            raise SpecError(f"a structural model named {name!r} is already registered ({_REGISTRY[name].__name__})")
        extra = sorted(set(getattr(cls, "nonnegative_outputs", ())) - set(cls.outputs))
        if extra:
            raise SpecError(f"model {name!r}: nonnegative_outputs {extra} are not among its outputs "
                            f"{list(cls.outputs)}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_builtins() -> None:
    """Import every module and subpackage of ``bayestwin.models``: importing one registers its models."""
    import importlib
    import pkgutil

    import bayestwin.models as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"bayestwin.models.{info.name}")


def model_names() -> list[str]:
    """Names of every registered structural model, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_model(name: str) -> AbstractStructuralModel:
    """An instance of the structural model registered as `name`."""
    _load_builtins()
    if name not in _REGISTRY:
        raise SpecError(f"no structural model {name!r}; registered models: {sorted(_REGISTRY)}")
    return _REGISTRY[name]()


def validate_spec(spec: TwinSpec, model: AbstractStructuralModel | None = None) -> None:
    """Raise ``SpecError`` unless `spec` fits its structural model.

    Every required model parameter must be in the spec, every spec parameter must be a model parameter
    (required or optional, such as ``f`` and ``tlag``), and every observed output one the model predicts.

    Examples
    --------
    >>> from bayestwin.spec import example_spec
    >>> validate_spec(example_spec())
    """
    model = model or get_model(spec.model)
    required = set(model.parameters)
    allowed = required | set(getattr(model, "optional_parameters", {}))
    names = set(spec.parameter_names)
    if required - names:
        raise SpecError(f"spec {spec.name!r} lacks parameter(s) {sorted(required - names)} of model {model.name!r} "
                        f"(it needs {sorted(required)})")
    if names - allowed:
        raise SpecError(f"spec {spec.name!r} has parameter(s) {sorted(names - allowed)} that model {model.name!r} "
                        f"does not use (it takes {sorted(allowed)})")
    for out in spec.observed_outputs:
        if out not in model.outputs:
            raise SpecError(f"spec {spec.name!r} observes output {out!r}, but model {model.name!r} predicts "
                            f"{list(model.outputs)}")
