"""Forecasts: labelled predictive draws, interval tables, JSON for decision-support tools."""

from bayestwin.forecast.forecast import FORECAST_SCHEMA, Forecast, forecast_times, require_finite_predictions

__all__ = ["FORECAST_SCHEMA", "Forecast", "forecast_times", "require_finite_predictions"]
