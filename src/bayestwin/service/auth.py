"""Authentication: a bearer JWT becomes a :class:`Principal` (subject, role, optional patient list).

Tokens are verified with the configured algorithm only (HS256 or RS256; ``alg: none`` and any other algorithm
are refused), must carry ``sub``, ``role`` and ``exp`` (and ``aud`` / ``iss`` when configured). The optional
``patients`` claim (a list of the patients' own ids, or their store pseudonyms) limits the token to those
patients. Every failure is a :class:`ServiceAuthError` whose message says what to fix, never the token itself.

Examples
--------
>>> import jwt, time
>>> from bayestwin.service.settings import ServiceSettings
>>> s = ServiceSettings(store="twins", jwt_key="k" * 32)
>>> tok = jwt.encode({"sub": "dr.a", "role": "clinician", "patients": ["12"], "exp": time.time() + 60}, "k" * 32)
>>> decode_token(tok, s)
Principal(subject='dr.a', role='clinician', patients=frozenset({'12'}))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from bayestwin.exceptions import ServiceAuthError
from bayestwin.service.settings import ServiceSettings

__all__ = ["ROLES", "Principal", "decode_token", "make_token"]

#: The roles a token may carry.
ROLES = ("clinician", "modeler", "service")
_MAX_PATIENTS = 10_000


@dataclass(frozen=True)
class Principal:
    """Who calls: the token's subject (the audit trail's actor), role, and the patients it is limited to.

    ``patients`` is ``None`` for a token without a ``patients`` claim (not limited by patient).
    """

    subject: str
    role: str
    patients: frozenset[str] | None = None


def decode_token(token: str, settings: ServiceSettings) -> Principal:
    """Verify `token` with `settings` and return its principal; :class:`ServiceAuthError` if it is not acceptable.

    Examples
    --------
    >>> from bayestwin.service.settings import ServiceSettings
    >>> decode_token("not-a-token", ServiceSettings(store="twins", jwt_key="k" * 32))
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.ServiceAuthError: the bearer token is not a valid JWT: ...
    """
    options = {"require": ["sub", "exp"] + (["aud"] if settings.jwt_audience else [])
               + (["iss"] if settings.jwt_issuer else [])}
    try:
        claims = jwt.decode(token, settings.jwt_key, algorithms=[settings.jwt_algorithm],
                            audience=settings.jwt_audience, issuer=settings.jwt_issuer, options=options)
    except jwt.ExpiredSignatureError as err:
        raise ServiceAuthError("the bearer token has expired; get a new one from the identity provider") from err
    except jwt.InvalidSignatureError as err:
        raise ServiceAuthError("the bearer token's signature does not verify with this service's key") from err
    except jwt.InvalidAlgorithmError as err:
        raise ServiceAuthError(f"the bearer token is not signed with {settings.jwt_algorithm}, the only algorithm this "
                               "service accepts") from err
    except jwt.MissingRequiredClaimError as err:
        raise ServiceAuthError(f"the bearer token lacks the required claim {err.claim!r}") from err
    except jwt.InvalidAudienceError as err:
        raise ServiceAuthError(f"the bearer token is not for this service (aud must be "
                               f"{settings.jwt_audience!r})") from err
    except jwt.InvalidIssuerError as err:
        raise ServiceAuthError(f"the bearer token is not from the trusted issuer {settings.jwt_issuer!r}") from err
    except jwt.PyJWTError as err:
        raise ServiceAuthError(f"the bearer token is not a valid JWT: {type(err).__name__}") from err
    return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    subject, role = claims.get("sub"), claims.get("role")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 200:
        raise ServiceAuthError("the bearer token's 'sub' claim must be a non-empty string (at most 200 characters)")
    if role not in ROLES:
        raise ServiceAuthError(f"the bearer token's 'role' claim must be one of {list(ROLES)}, got {role!r}")
    patients = claims.get("patients")
    if patients is None:
        return Principal(subject, role)
    if (not isinstance(patients, list) or len(patients) > _MAX_PATIENTS
            or not all(isinstance(p, str | int) and not isinstance(p, bool) for p in patients)):
        raise ServiceAuthError(f"the bearer token's 'patients' claim must be a list of at most {_MAX_PATIENTS} "
                               "patient ids (strings)")
    return Principal(subject, role, frozenset(str(p) for p in patients))


def make_token(secret: str, *, subject: str, role: str, patients: list[str] | None = None, ttl_s: float = 3600.0,
               algorithm: str = "HS256", **claims: Any) -> str:
    """A signed token for tests, demos and service-to-service calls (`secret`: HS256 secret or RS256 private key).

    Examples
    --------
    >>> from bayestwin.service.settings import ServiceSettings
    >>> tok = make_token("k" * 32, subject="etl", role="service")
    >>> decode_token(tok, ServiceSettings(store="twins", jwt_key="k" * 32)).role
    'service'
    """
    import time

    payload: dict[str, Any] = {"sub": subject, "role": role, "iat": int(time.time()),
                               "exp": int(time.time() + ttl_s), **claims}
    if patients is not None:
        payload["patients"] = list(patients)
    return jwt.encode(payload, secret, algorithm=algorithm)
