"""Bundled public data sets (see PROVENANCE.md for sources and licences)."""
