"""The twin's saved program (``jax.export``, issue 9 warm start) gives the draws of the traced one, bitwise.

In ``make validate``: three compilations of the twin program (~10-20 s each on 2 shared cores). The default
suite checks the saving and loading without running (``tests/inference/test_twin_program.py``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from bayestwin.inference import twin_program as tp
from bayestwin.inference.sampler import SamplerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "inference"))
from test_twin_program import fit_draws, small  # noqa: F401 (fixture)


@pytest.mark.skipif(importlib.util.find_spec("flatbuffers") is None, reason="jax.export serialization needs it")
def test_saved_and_loaded_programs_give_the_traced_programs_draws(small, tmp_path, monkeypatch) -> None:  # noqa: F811
    spec, pop, events = small
    sampler = SamplerConfig(chains=2, warmup=150, draws=150, seed=11, chain_method="vectorized")
    monkeypatch.setattr(tp, "_program_directory", lambda: None)
    monkeypatch.setattr(tp, "_PROGRAMS", {})
    plain = fit_draws(spec, pop, events, sampler)
    monkeypatch.setattr(tp, "_program_directory", lambda: tmp_path)
    monkeypatch.setattr(tp, "_PROGRAMS", {})
    before = tp.twin_trace_count()
    saved = fit_draws(spec, pop, events, sampler)  # traced, exported, saved, run through the exported program
    assert tp.twin_trace_count() == before + 1 and len(list(tmp_path.glob("twin-*.jax"))) == 1
    monkeypatch.setattr(tp, "_PROGRAMS", {})  # as in a new process
    loaded = fit_draws(spec, pop, events, sampler)
    assert tp.twin_trace_count() == before + 1, "the saved program was traced again instead of loaded"
    np.testing.assert_array_equal(saved, plain)
    np.testing.assert_array_equal(loaded, plain)
