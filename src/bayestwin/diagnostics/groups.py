"""Posterior groups without arviz: what the convergence gate and the twin read, with the InferenceData on demand.

Importing arviz 0.23 costs more than a warm twin's fit (matplotlib through ``arviz.plots``, ``scipy.stats``, a
numba ufunc compiled at import where numba is installed), yet reading a population and fitting, gating and
forecasting a twin only need the draws. An ``InferenceGroups`` holds the groups (``posterior``,
``sample_stats``, ...) as xarray Datasets or as mappings of numpy arrays with leading ``(chain, draw)`` axes,
and builds the ``arviz.InferenceData`` -- importing arviz then -- the first time ``to_inference_data()`` is
called (``PopulationFit.idata`` and ``Twin.idata_`` call it when they are read).

Examples
--------
>>> import numpy as np
>>> groups = InferenceGroups({"posterior": {"cl": np.ones((2, 5))}, "sample_stats": {"diverging": np.zeros((2, 5))}})
>>> groups.posterior["cl"].shape, groups.groups()
((2, 5), ['posterior', 'sample_stats'])
>>> groups.to_inference_data().posterior["cl"].dims
('chain', 'draw')
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

__all__ = ["InferenceGroups", "group_draws", "posterior_inference_data"]


class InferenceGroups:
    """Named groups of draws, and the ``arviz.InferenceData`` made from them on first request.

    Parameters
    ----------
    groups : mapping of str to Dataset or mapping
        Group name -> an xarray ``Dataset``, or a mapping of variable name -> numpy array ``(chain, draw, ...)``.
    build : callable, optional
        Makes the InferenceData (default: ``arviz.InferenceData(**groups)`` for Datasets, ``arviz.from_dict``
        for arrays). Called once.
    """

    def __init__(self, groups: Mapping[str, Any], build: Callable[[], az.InferenceData] | None = None) -> None:
        self._groups = dict(groups)
        self._build = build
        self._idata: az.InferenceData | None = None

    def __getattr__(self, name: str) -> Any:
        groups = self.__dict__.get("_groups", {})
        if name in groups:
            return groups[name]
        raise AttributeError(f"no group {name!r}; groups: {sorted(groups)}")

    def __contains__(self, name: object) -> bool:
        return name in self._groups

    def __getitem__(self, name: str) -> Any:
        return self._groups[name]

    def groups(self) -> list[str]:
        """The group names, in order."""
        return list(self._groups)

    def to_inference_data(self) -> az.InferenceData:
        """The ``arviz.InferenceData`` of these groups (built, and arviz imported, on the first call)."""
        if self._idata is None:
            if self._build is not None:
                self._idata = self._build()
            else:
                import arviz as az

                with warnings.catch_warnings():  # arviz warns about groups outside its schema; kept as given
                    warnings.simplefilter("ignore", UserWarning)
                    if not any(hasattr(g, "data_vars") for g in self._groups.values()):  # arrays, not Datasets
                        self._idata = az.from_dict(**{k: dict(v) for k, v in self._groups.items()})
                    else:
                        self._idata = az.InferenceData(**self._groups)
        return self._idata

    def __repr__(self) -> str:
        return f"InferenceGroups({self.groups()}; arviz.InferenceData {'built' if self._idata else 'on request'})"


def group_draws(group: Any, name: str) -> np.ndarray:
    """Variable `name` of `group` (Dataset or mapping of arrays) as a numpy array with axes ``(chain, draw, ...)``.

    >>> group_draws({"x": np.zeros((4, 10, 2))}, "x").shape
    (4, 10, 2)
    """
    value = group[name]
    if hasattr(value, "dims") and hasattr(value, "transpose"):  # an xarray DataArray
        return value.transpose("chain", "draw", ...).to_numpy()
    return np.asarray(value)


def posterior_inference_data(posterior: Mapping[str, np.ndarray], dims: Mapping[str, list[str]],
                             stats: Mapping[str, np.ndarray], starts: np.ndarray | None = None,
                             units: Mapping[str, str] | None = None) -> az.InferenceData:
    """An ``arviz.InferenceData`` of one fit's draws, with each variable's unit in its ``attrs["unit"]``.

    The builder of a twin's deferred InferenceData (``Twin.idata_``); a module-level function, so a twin whose
    InferenceData is not built yet pickles. `starts` (segment start times) becomes the ``segment_start``
    coordinate of the ``segment`` dimension.

    >>> idata = posterior_inference_data({"cl": np.ones((2, 3))}, {}, {"diverging": np.zeros((2, 3), bool)},
    ...                                  units={"cl": "L/h"})
    >>> idata.posterior["cl"].attrs["unit"], idata.posterior["cl"].dims
    ('L/h', ('chain', 'draw'))
    """
    import arviz as az

    idata = az.from_dict(posterior=dict(posterior), dims=dict(dims), sample_stats=dict(stats))
    if starts is not None:
        idata.posterior.coords["segment_start"] = ("segment", starts)
    for name, unit in (units or {}).items():
        idata.posterior[name].attrs["unit"] = unit
    return idata
