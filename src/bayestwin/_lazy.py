"""Lazy package attributes (PEP 562): a package's public names import their module on first use.

A package ``__init__`` that imports every submodule makes ``from bayestwin.inference.sampler import X`` pay for
all of them (``bayestwin.inference`` alone imported arviz, and with it matplotlib, through its fleet and
comparison modules). With ``lazy_exports`` the package keeps its names, its ``__all__`` and ``dir()``, and
loads a submodule only when one of its names is asked for.

Examples
--------
>>> getattr_, dir_ = lazy_exports("json_pkg", {"dumps": "json", "loads": "json"}, namespace={})
>>> getattr_("dumps")({"a": 1})
'{"a": 1}'
>>> dir_()
['dumps', 'loads']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for `package`: each name in `exports` comes from the module it maps to.

    Parameters
    ----------
    package : str
        The package's name (for the error message).
    exports : mapping of str to str
        Public name -> the module (absolute name) that defines it.
    namespace : dict
        The package's ``globals()``: a resolved name is stored there, so later lookups are ordinary.

    Examples
    --------
    >>> ns = {}
    >>> getattr_, _ = lazy_exports("pkg", {"sqrt": "math"}, ns)
    >>> getattr_("sqrt")(4.0), "sqrt" in ns
    (2.0, True)
    >>> getattr_("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'pkg' has no attribute 'nope'
    """

    def __getattr__(name: str) -> Any:  # noqa: N807  (PEP 562 hook)
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
