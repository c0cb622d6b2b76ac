"""Plots (the ``[plot]`` extra: matplotlib)."""

from bayestwin.plotting.fan import plot_forecast

__all__ = ["plot_forecast"]
