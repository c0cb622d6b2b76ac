"""Hard limits: request body size (413 before parsing) and a per-subject rate limit (429 with Retry-After).

:class:`BodySizeLimit` is a plain ASGI middleware: a ``Content-Length`` over the limit is refused at once,
and a body streamed without one is counted chunk by chunk and refused as soon as it passes the limit, so
no oversized body is ever buffered or parsed. :class:`RateLimiter` is a sliding window per subject
(thread-safe); the auth dependency consults it after verifying the token.

Examples
--------
>>> rl = RateLimiter(limit=2, window_s=60.0)
>>> rl.hit("a", now=0.0), rl.hit("a", now=1.0), rl.hit("a", now=2.0)
(None, None, 58.0)
>>> rl.hit("a", now=61.0) is None
True
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from typing import Any

__all__ = ["BodySizeLimit", "RateLimiter"]


class BodySizeLimit:
    """ASGI middleware answering 413 to any HTTP request whose body exceeds `max_bytes`.

    Examples
    --------
    >>> BodySizeLimit(app=None, max_bytes=10).max_bytes
    10
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, answering 413 as soon as its body is known to exceed the limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False  # the server rejects a malformed header itself
            if too_big:
                await self._refuse(send)
                return
        seen = 0
        started = refused = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # answer 413 now; the app sees a disconnected client
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent: drop what the app answers to the disconnect
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, tracked_send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"error": "request body too large",
                           "detail": f"the request body exceeds {self.max_bytes} bytes; send less per request "
                                     "(e.g. split the event rows into several appends)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """At most `limit` hits per key in any `window_s` seconds (sliding window, thread-safe)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, now: float | None = None) -> float | None:
        """Count one request of `key`; ``None`` if allowed, else the seconds until the next one is allowed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window_s - now, 0.0)
            hits.append(now)
            return None

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """The ``Retry-After`` header value (whole seconds, at least 1) for a wait of `wait_s`."""
        return str(max(1, math.ceil(wait_s)))
