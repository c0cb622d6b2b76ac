"""Inference: NumPyro NUTS on hierarchical twin models, with a convergence gate."""

from bayestwin.inference.compare import compare_populations, format_comparison
from bayestwin.inference.fit import PopulationFit, fit_population, load_population, population_version
from bayestwin.inference.fleet import FleetFit, fit_fleet
from bayestwin.inference.sampler import SamplerConfig

__all__ = ["FleetFit", "PopulationFit", "SamplerConfig", "compare_populations", "fit_fleet", "fit_population",
           "format_comparison", "load_population", "population_version"]
