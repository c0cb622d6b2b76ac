"""The decision-support service (REST/OpenAPI, optional ``[service]`` extra): see ``docs/service.md``.

``bayestwin serve`` runs it with uvicorn; :func:`create_app` builds the FastAPI app for other servers.

Examples
--------
>>> from bayestwin.service import ServiceSettings
>>> ServiceSettings(store="twins", jwt_key="k" * 32).max_times
500
"""

from bayestwin.service.settings import ServiceSettings


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Build the FastAPI app (see :func:`bayestwin.service.app.create_app`); imports FastAPI on first use."""
    from bayestwin.service.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["ServiceSettings", "create_app"]
