"""Validation rules, one module per family; importing them registers them."""
