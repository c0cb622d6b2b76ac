"""Inference: NumPyro NUTS on hierarchical twin models, with a convergence gate."""

from bayestwin.inference.fit import PopulationFit, fit_population
from bayestwin.inference.sampler import SamplerConfig

__all__ = ["PopulationFit", "SamplerConfig", "fit_population"]
