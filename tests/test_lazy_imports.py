"""Start-up: ``import bayestwin`` and the closed-form twin path load no heavy optional module (issue 9, warm start).

arviz (and through it matplotlib, scipy.stats, numba), diffrax and pymc cost seconds at import; a twin of a
closed-form model needs none of them until an InferenceData is read or an ODE is solved. Checked in fresh
interpreters (``sys.modules`` after the imports); the public names must all still resolve.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bayestwin

HEAVY = ("arviz", "matplotlib", "diffrax", "numba", "pymc")


def _loaded_after(code: str) -> dict[str, bool]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_bayestwin_loads_no_heavy_module() -> None:
    loaded = _loaded_after("import bayestwin\nassert 'jax' not in sys.modules")
    assert not any(loaded.values()), loaded


def test_the_closed_form_twin_path_loads_no_heavy_module() -> None:
    """What a warm start imports and runs before sampling: data, spec, registry, population read, gate, twin."""
    loaded = _loaded_after(
        "from bayestwin import Twin, PopulationFit, SamplerConfig, load_dataset, get_model, model_names\n"
        "from bayestwin.diagnostics.convergence import check_convergence\n"
        "from bayestwin.diagnostics.groups import InferenceGroups\n"
        "from bayestwin.forecast import Forecast\n"
        "import numpy as np\n"
        "assert 'pk.one_cmt_oral_mm' in model_names()  # every model module imported, the ODE ones too\n"
        "get_model('pk.one_cmt_oral')\n"
        "rng = np.random.default_rng(0)\n"
        "groups = InferenceGroups({'posterior': {'x': rng.normal(size=(4, 100))},\n"
        "                          'sample_stats': {'diverging': np.zeros((4, 100), bool),\n"
        "                                           'energy': rng.normal(size=(4, 100))}})\n"
        "assert check_convergence(groups).table.shape == (1, 3)\n")
    assert not any(loaded.values()), loaded


def test_the_ode_solvers_are_diffrax_solvers_when_asked_for() -> None:
    """``dynamics.ode`` imports diffrax on first use (tests/dynamics/test_ode.py solves with it)."""
    import diffrax

    from bayestwin.dynamics.ode import SOLVERS

    assert isinstance(SOLVERS["tsit5"](), diffrax.Tsit5) and isinstance(SOLVERS["kvaerno5"](), diffrax.Kvaerno5)
    assert SOLVERS["dopri5"]() == "dopri5"


@pytest.mark.parametrize("package", ["bayestwin", "bayestwin.inference"])
def test_every_public_name_resolves(package: str) -> None:
    module = sys.modules.get(package) or __import__(package, fromlist=["_"])
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018
    assert bayestwin.Twin.__module__ == "bayestwin.twin"
