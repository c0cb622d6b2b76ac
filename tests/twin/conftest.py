"""Shared fixtures of the theophylline twin tests: the real data, the spec, and subject 12's first three samples."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bayestwin.data import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from model_specs.theophylline import spec as theophylline_spec


@pytest.fixture(scope="module")
def theo():
    return load_dataset("theo_sd")


@pytest.fixture(scope="module")
def spec():
    return theophylline_spec()


@pytest.fixture(scope="module")
def first_three(theo):
    """Subject 12 with only its first three concentrations (0, 0.25, 0.5 h): the twin's history."""
    p12 = theo.patient(12)
    later = p12.frame.index.isin(p12.frame.index[p12.frame["evid"] == 0][3:])
    return p12.exclude(later, reason="measured after the twin is built")
