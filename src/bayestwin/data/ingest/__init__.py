"""Readers that turn sources into validated event tables."""
