"""Settings of the decision-support service, from the environment or a JSON file, checked once at start.

| Setting | Environment variable | Default |
|---|---|---|
| ``store`` | ``BAYESTWIN_STORE`` | (required) |
| ``jwt_algorithm`` | ``BAYESTWIN_JWT_ALGORITHM`` | ``HS256`` |
| ``jwt_key`` | ``BAYESTWIN_JWT_SECRET[_FILE]`` (HS256) / ``BAYESTWIN_JWT_PUBLIC_KEY[_FILE]`` (RS256) | (required) |
| ``jwt_audience``, ``jwt_issuer`` | ``BAYESTWIN_JWT_AUDIENCE``, ``BAYESTWIN_JWT_ISSUER`` | not checked |
| limits (``max_body_bytes`` ...) | ``BAYESTWIN_SERVICE_<NAME>`` (upper case) | see :class:`ServiceSettings` |

``BAYESTWIN_SERVICE_CONFIG`` may name a JSON file of the same fields (lower case); the environment wins.

Examples
--------
>>> s = ServiceSettings.from_env({"BAYESTWIN_STORE": "twins", "BAYESTWIN_JWT_SECRET": "s" * 32,
...                               "BAYESTWIN_SERVICE_MAX_TIMES": "50"})
>>> s.jwt_algorithm, s.max_times, s.store.name
('HS256', 50, 'twins')
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bayestwin.exceptions import ServiceConfigError

__all__ = ["ServiceSettings"]

ALGORITHMS = ("HS256", "RS256")
_PREFIX = "BAYESTWIN_SERVICE_"
_MIN_SECRET_BYTES = 32


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """Validated settings of one service instance (frozen: shared by every request).

    Parameters
    ----------
    store : Path
        Twin store directory (embedded SQLite store; its keys come from ``BAYESTWIN_PSEUDONYM_KEY[_FILE]`` and
        ``BAYESTWIN_ENCRYPTION_KEY[_FILE]`` as for the command line).
    jwt_algorithm : {"HS256", "RS256"}
        Signature algorithm of the bearer tokens; tokens signed otherwise (``none`` included) are refused.
    jwt_key : str
        HS256: the shared secret (at least 32 bytes); RS256: the issuer's public key (PEM).
    jwt_audience, jwt_issuer : str, optional
        When set, tokens must carry this ``aud`` / ``iss``.
    max_body_bytes : int
        Largest request body; larger ones get 413 before they are parsed.
    rate_limit, rate_window_s : int, float
        At most `rate_limit` authenticated requests per subject per `rate_window_s` seconds (else 429).
    max_times, max_levels, max_plans, max_targets, max_rows : int
        Bounds per request (else 422): forecast/comparison times, interval levels, plans, targets, event rows.
    max_draws : int
        Bound on chains x draws and chains x warm-up of a requested fit, and on the draws of a comparison's
        intervals.
    job_workers, max_queued_jobs : int
        Background fits run on `job_workers` threads; more than `max_queued_jobs` waiting gets 429.
    job_timeout_s : float
        A fit still running after this long is marked ``timed_out`` and its result is never committed.
    """

    store: Path
    jwt_algorithm: str = "HS256"
    jwt_key: str = dataclasses.field(repr=False)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    max_body_bytes: int = 2_000_000
    rate_limit: int = 300
    rate_window_s: float = 60.0
    max_times: int = 500
    max_levels: int = 6
    max_plans: int = 12
    max_targets: int = 12
    max_rows: int = 20_000
    max_draws: int = 20_000
    job_workers: int = 1
    max_queued_jobs: int = 32
    job_timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.jwt_algorithm not in ALGORITHMS:
            raise ServiceConfigError(f"jwt_algorithm must be one of {ALGORITHMS}, got {self.jwt_algorithm!r}; set "
                                     "BAYESTWIN_JWT_ALGORITHM")
        if not self.jwt_key:
            var = "BAYESTWIN_JWT_SECRET" if self.jwt_algorithm == "HS256" else "BAYESTWIN_JWT_PUBLIC_KEY"
            raise ServiceConfigError(f"no JWT key: set {var} (or {var}_FILE to a file holding it)")
        if self.jwt_algorithm == "HS256" and len(self.jwt_key.encode()) < _MIN_SECRET_BYTES:
            raise ServiceConfigError(f"the HS256 secret has {len(self.jwt_key.encode())} bytes; use at least "
                                     f"{_MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32`)")
        if self.jwt_algorithm == "RS256" and "PUBLIC KEY" not in self.jwt_key:
            raise ServiceConfigError("RS256 needs the issuer's public key in PEM form (-----BEGIN PUBLIC KEY-----) "
                                     "in BAYESTWIN_JWT_PUBLIC_KEY or BAYESTWIN_JWT_PUBLIC_KEY_FILE")
        for f in fields(self):
            if f.type in ("int", "float") and not getattr(self, f.name) > 0:
                raise ServiceConfigError(f"service setting {f.name} must be > 0, got {getattr(self, f.name)!r} "
                                         f"(environment variable {_PREFIX}{f.name.upper()})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServiceSettings:
        """Settings from `env` (default ``os.environ``) and an optional JSON file, then `overrides`.

        Examples
        --------
        >>> ServiceSettings.from_env({"BAYESTWIN_JWT_SECRET": "s" * 32})
        Traceback (most recent call last):
        ...
        bayestwin.exceptions.ServiceConfigError: no twin store given: set BAYESTWIN_STORE (or pass --store)
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        config = env.get(f"{_PREFIX}CONFIG")
        if config:
            values.update(_read_json(Path(config)))
        if env.get("BAYESTWIN_STORE"):
            values["store"] = env["BAYESTWIN_STORE"]
        for name in ("algorithm", "audience", "issuer"):
            if env.get(f"BAYESTWIN_JWT_{name.upper()}"):
                values[f"jwt_{name}"] = env[f"BAYESTWIN_JWT_{name.upper()}"]
        algorithm = overrides.get("jwt_algorithm", values.get("jwt_algorithm", "HS256"))
        key = _secret(env, "BAYESTWIN_JWT_SECRET" if algorithm == "HS256" else "BAYESTWIN_JWT_PUBLIC_KEY")
        if key:
            values["jwt_key"] = key
        for f in fields(cls):
            raw = env.get(f"{_PREFIX}{f.name.upper()}")
            if raw is not None and f.type in ("int", "float"):
                values[f.name] = _number(raw, f.name, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("store"):
            raise ServiceConfigError("no twin store given: set BAYESTWIN_STORE (or pass --store)")
        values["store"] = Path(values["store"])
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ServiceConfigError(f"unknown service settings {unknown}; known: {sorted(known)}")
        values.setdefault("jwt_key", "")
        return cls(**values)


def _secret(env: Mapping[str, str], var: str) -> str | None:
    if env.get(var):
        return env[var]
    path = env.get(f"{var}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ServiceConfigError(f"{var}_FILE names {path}, which cannot be read ({err.strerror}); check the "
                                 "path and its permissions") from err


def _number(raw: str, name: str, kind: str) -> int | float:
    try:
        return int(raw) if kind == "int" else float(raw)
    except ValueError as err:
        raise ServiceConfigError(f"{_PREFIX}{name.upper()} must be {'an integer' if kind == 'int' else 'a number'}"
                                 f", got {raw!r}") from err


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ServiceConfigError(f"the service config file {path} cannot be read as JSON ({err}); fix or remove "
                                 f"{_PREFIX}CONFIG") from err
    if not isinstance(doc, dict):
        raise ServiceConfigError(f"the service config file {path} must hold a JSON object of settings")
    return doc
