"""Property-based API fuzzing (schemathesis) against the checked-in OpenAPI document: no 5xx, ever.

A small real subset (a few examples per operation, against the session's real server); the full run with
hundreds of examples per operation and a fitted twin is ``validation/service_fuzz.py``. Each generated
request carries a token of the role the operation needs (modeler for specs and populations, clinician
otherwise) with a fresh subject, so the rate limit does not cut the run short.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from bayestwin._extras import require_all_deps

if not require_all_deps():  # CI sets BAYESTWIN_REQUIRE_ALL_DEPS=1: a missing schemathesis fails there
    pytest.importorskip("schemathesis", reason="needs schemathesis (dev dependency)")
import schemathesis
from hypothesis import HealthCheck, given, settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
EXAMPLES = int(os.environ.get("BAYESTWIN_FUZZ_EXAMPLES", "4"))  # validation/service_fuzz.py sets more


SCHEMA = schemathesis.openapi.from_dict(json.loads(DOC.read_text(encoding="utf-8")))
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}


def fuzz(server, operation, examples: int) -> int:
    """Send `examples` generated requests for `operation`; assert none gets a 5xx; return how many were sent."""
    sent = []

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        role = "modeler" if case.path.startswith(("/v1/specs", "/v1/populations")) else "clinician"
        token = server.token(f"fuzz-{uuid.uuid4().hex[:8]}", role)
        response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        sent.append(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path, response.status_code,
                                            response.text[:500])
        if response.status_code >= 400:
            assert set(response.json()) >= {"error", "detail"} and "Traceback" not in response.text

    run()
    return len(sent)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_server_errors(server, label: str) -> None:
    assert fuzz(server, OPERATIONS[label], EXAMPLES) >= 1
