"""Forecasts: labelled predictive draws, interval tables, JSON for decision-support tools."""

from bayestwin.forecast.forecast import FORECAST_SCHEMA, Forecast

__all__ = ["FORECAST_SCHEMA", "Forecast"]
