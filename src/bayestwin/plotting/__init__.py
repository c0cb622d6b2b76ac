"""Plots (the ``[plot]`` extra: matplotlib)."""

from bayestwin.plotting.fan import plot_forecast
from bayestwin.plotting.monitor import plot_monitor

__all__ = ["plot_forecast", "plot_monitor"]
