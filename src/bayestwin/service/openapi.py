"""The service's OpenAPI document, generated from the app; ``docs/openapi.json`` is a checked-in copy.

Refresh the copy after changing a route or schema::

    python -m bayestwin.service.openapi docs/openapi.json

(``tests/service/test_openapi.py`` fails while the copy differs from the generated document.)

Examples
--------
>>> doc = openapi_document()
>>> doc["openapi"][:2], "/v1/twins/{patient}/forecast" in doc["paths"]
('3.', True)
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["openapi_document", "openapi_text"]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the service (built on a throw-away store; settings do not change it)."""
    from bayestwin.service.app import create_app
    from bayestwin.service.settings import ServiceSettings

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(ServiceSettings(store=Path(folder) / "store", jwt_key="x" * 32), pseudonym_key="y" * 32)
        doc = app.openapi()
        app.state.service.jobs.shutdown()
    return doc


def openapi_text() -> str:
    """The document as canonical JSON text (sorted keys, 2-space indent, final newline)."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the document to the path given (default ``docs/openapi.json``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0] if args else "docs/openapi.json")
    path.write_text(openapi_text(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
