"""bayestwin: Bayesian digital twins of patients."""

__version__ = "0.1.0.dev0"
