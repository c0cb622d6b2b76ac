"""Rebuilding twins from a store (``Twin.from_store``): what it refuses. The full round trip (fit, commit, load,
warm update) runs through the command line in tests/cli/test_cli_store.py."""

from __future__ import annotations

import numpy as np
import pytest

from bayestwin.data import load_dataset
from bayestwin.data.snapshot import events_from_bytes, events_to_bytes
from bayestwin.exceptions import BayestwinError, StoreError
from bayestwin.store import TwinStore
from bayestwin.twin import Twin

KEY = "a test key of at least thirty-two bytes"


@pytest.fixture
def store(tmp_path):
    import arviz as az

    with TwinStore.open(tmp_path / "store", key=KEY) as s:
        post = az.from_dict(posterior={"cl": np.ones((2, 5))})
        s.commit_version("P1", posterior=post, data_hash="sha256:d", spec_hash="sha256:s", population_version="pop-1",
                         diagnostics={"twin": {"ok": True}}, expected_parent=None)
        yield s


def test_a_version_without_settings_or_events_cannot_be_rebuilt(store) -> None:
    with pytest.raises(StoreError, match="without its population version or twin settings"):
        Twin.from_store(store, "P1")
    with pytest.raises(StoreError, match=r"committed without its events .*bayestwin fit"):
        store.load_events("P1", 1)
    with pytest.raises(StoreError, match="has no version 2"):
        Twin.from_store(store, "P1", 2)


def test_event_snapshots_refuse_other_content(first_three) -> None:
    with pytest.raises(BayestwinError, match="is not an event snapshot"):
        events_from_bytes(b"\x89HDF", patient=12)
    with pytest.raises(BayestwinError, match=r"is not a bayestwin\.events/1 event snapshot"):
        events_from_bytes(b'{"schema": "other"}', patient=12)
    with pytest.raises(ValueError, match="holds one patient's events; got 12 patients"):
        events_to_bytes(load_dataset("theo_sd"), label="p")
    with pytest.raises(BayestwinError, match="is not a whole number"):
        events_from_bytes(events_to_bytes(first_three, label="p-1"), patient="MRN-12")
