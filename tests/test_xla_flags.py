"""Importing bayestwin first configures XLA: 4 host devices, single-threaded Eigen (see bayestwin.__init__)."""

from __future__ import annotations

import os
import subprocess
import sys


def _flags_after_import(env_flags: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if env_flags is not None:
        env["XLA_FLAGS"] = env_flags
    code = "import os, bayestwin, jax; print(os.environ['XLA_FLAGS']); print(jax.local_device_count())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout


def test_defaults_set_devices_and_eigen() -> None:
    out = _flags_after_import(None)
    assert "--xla_force_host_platform_device_count=4" in out
    assert "--xla_cpu_multi_thread_eigen=false" in out
    assert out.splitlines()[-1] == "4"


def test_user_flags_are_kept() -> None:
    out = _flags_after_import("--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=true")
    assert out.splitlines()[0] == "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=true"
    assert out.splitlines()[-1] == "2"
