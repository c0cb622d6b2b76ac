"""The checked-in OpenAPI document (docs/openapi.json) is the generated one, and it is complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the [service] extra")

from bayestwin.service.openapi import openapi_text

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REFRESH = "python -m bayestwin.service.openapi docs/openapi.json"


@pytest.fixture(scope="module")
def generated() -> str:
    return openapi_text()


def test_checked_in_document_is_the_generated_one(generated: str) -> None:
    assert DOC.read_text(encoding="utf-8") == generated, f"docs/openapi.json is stale: refresh it with `{REFRESH}`"


def test_every_route_is_documented_with_schemas_and_errors(generated: str) -> None:
    doc = json.loads(generated)
    ops = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    assert len(ops) == 15
    for path, method, op in ops:
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert len(ok) == 1 and "schema" in op["responses"][ok[0]]["content"]["application/json"], (path, method)
        if path in ("/v1/health", "/v1/ready"):
            assert "security" not in op
            continue
        assert op["security"] == [{"HTTPBearer": []}], (path, method)
        for code in ("401", "403", "413", "422", "429", "500"):
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (path, method, code)
        if method in ("post", "put"):
            assert op["requestBody"]["content"]["application/json"]["schema"], (path, method)

