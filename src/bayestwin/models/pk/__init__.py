"""Pharmacokinetic structural models (closed form and ODE); importing registers them."""

from bayestwin.models.pk import closed_form_models, ode_models  # noqa: F401
