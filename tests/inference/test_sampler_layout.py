"""What ``chain_method="auto"`` chooses: one chain per device when there are enough devices, else one by one."""

from __future__ import annotations

from bayestwin.inference.sampler import auto_chain_method


def test_auto_chooses_by_devices_and_by_whether_pmap_is_safe() -> None:
    assert auto_chain_method(4, parallel_ok=True, devices=4) == "parallel"
    assert auto_chain_method(4, parallel_ok=True, devices=8) == "parallel"
    assert auto_chain_method(4, parallel_ok=True, devices=2) == "sequential"  # never vectorised (measured slower)
    assert auto_chain_method(4, parallel_ok=False, devices=4) == "sequential"  # diffrax under pmap fails
    assert auto_chain_method(1, parallel_ok=True, devices=4) == "sequential"

