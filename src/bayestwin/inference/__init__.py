"""Inference: NumPyro NUTS on hierarchical twin models, with a convergence gate.

The names below load their module on first use (``bayestwin._lazy``): importing one submodule, as the twin does,
does not import the others (the fleet and comparison modules import arviz).
"""

from typing import TYPE_CHECKING

from bayestwin._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs; at run time they load on first use
    from bayestwin.inference.compare import compare_populations, format_comparison
    from bayestwin.inference.fit import PopulationFit, fit_population, load_population, population_version
    from bayestwin.inference.fleet import FleetFit, fit_fleet
    from bayestwin.inference.sampler import SamplerConfig

_EXPORTS = {
    "compare_populations": "bayestwin.inference.compare", "format_comparison": "bayestwin.inference.compare",
    "PopulationFit": "bayestwin.inference.fit", "fit_population": "bayestwin.inference.fit",
    "load_population": "bayestwin.inference.fit", "population_version": "bayestwin.inference.fit",
    "FleetFit": "bayestwin.inference.fleet", "fit_fleet": "bayestwin.inference.fleet",
    "SamplerConfig": "bayestwin.inference.sampler",
}
__all__ = ["FleetFit", "PopulationFit", "SamplerConfig", "compare_populations", "fit_fleet", "fit_population",
           "format_comparison", "load_population", "population_version"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
