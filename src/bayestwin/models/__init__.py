"""Structural models by name: ``get_model("pk.one_cmt_oral")``; see ``model_names``."""

from bayestwin.models.registry import get_model, model_names, register, validate_spec

__all__ = ["get_model", "model_names", "register", "validate_spec"]
