"""Authentication, the authorisation matrix (every endpoint x role x own/other patient) and the hard limits.

The matrix sends deliberately incomplete bodies and addresses patients without twins: a caller who is
allowed gets past authorisation and is stopped cheaply afterwards (422 for the body, 404 for the missing
twin), a caller who is not gets 403 -- so authorisation is decided before the body is even validated, and
no case fits anything. The expected policy is written out here, independently of the service's table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from _service_env import JWT_SECRET, MAX_BODY, PSEUDONYM_KEY, RATE_LIMIT

from bayestwin.exceptions import ServiceRequestError
from bayestwin.store import TwinStore

OWN, OTHER = "P-own-1", "P-other-2"
ROLES = ("clinician", "modeler", "service")
C, M, S = "clinician", "modeler", "service"
# (method, path, patient-scoped, roles allowed) -- the policy as documented in docs/service.md
ENDPOINTS = [
    ("POST", "/v1/specs", False, {M}),
    ("GET", "/v1/specs/sha256:" + "0" * 64, False, {C, M, S}),
    ("POST", "/v1/populations", False, {M}),
    ("GET", "/v1/populations", False, {C, M, S}),
    ("GET", "/v1/populations/pop-none", False, {C, M, S}),
    ("GET", "/v1/jobs/nojob", False, {C, M, S}),
    ("PUT", "/v1/twins/{p}", True, {C, S}),
    ("POST", "/v1/twins/{p}/data", True, {C, S}),
    ("POST", "/v1/twins/{p}/events/check", True, {C, S}),
    ("POST", "/v1/twins/{p}/forecast", True, {C, S}),
    ("POST", "/v1/twins/{p}/compare", True, {C}),
    ("GET", "/v1/twins/{p}/recommendations", True, {C}),
    ("GET", "/v1/twins/{p}/history", True, {C, S}),
]
CASES = [(method, path, scoped, allowed, role, limited, target)
         for method, path, scoped, allowed in ENDPOINTS for role in ROLES for limited in (False, True)
         for target in (OWN, OTHER)]


_HTTP: dict[str, httpx.Client] = {}


def _send(server, method: str, path: str, token: str | None, body: object = None) -> httpx.Response:
    """One request on a kept-alive connection (the matrix sends ~170)."""
    http = _HTTP.get(server.url)
    if http is None:
        http = _HTTP[server.url] = httpx.Client(base_url=server.url, timeout=60.0)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    kwargs = {"json": body} if method in ("POST", "PUT") else {}
    return http.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    for http in _HTTP.values():
        http.close()
    _HTTP.clear()


@pytest.mark.parametrize(("method", "path", "scoped", "allowed", "role", "limited", "target"), CASES,
                         ids=[f"{m} {p.format(p='{p}')} {r} {'limited' if lim else 'all'} {t}"
                              for m, p, _, _, r, lim, t in CASES])
def test_authorisation_matrix(server, method, path, scoped, allowed, role, limited, target) -> None:
    token = server.token(f"{role}-{'limited' if limited else 'all'}", role, [OWN] if limited else None)
    r = _send(server, method, path.format(p=target), token, body={})
    may = role in allowed and (not scoped or not limited or target == OWN)
    if may:
        assert r.status_code in (200, 404, 422), (r.status_code, r.text)  # past authorisation, stopped cheaply
    else:
        assert r.status_code == 403, (r.status_code, r.text)
        assert r.json()["error"] == "forbidden" and "detail" in r.json()


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _, _ in ENDPOINTS])
def test_no_anonymous_access_except_health_and_ready(server, method, path) -> None:
    r = _send(server, method, path.format(p=OWN), None, body={})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with server.client() as anonymous:
        assert anonymous.health()["status"] == "ok" and anonymous.ready()["status"] == "ready"


def test_bad_tokens_are_refused_with_a_reason(server) -> None:
    now = time.time()
    good = {"sub": "x", "role": "clinician", "exp": now + 60}
    cases = [  # (token, what the 401 must say)
        (jwt.encode(good | {"exp": now - 5}, JWT_SECRET), "expired"),
        (jwt.encode(good, "another secret of at least thirty-two bytes!"), "signature"),
        (jwt.encode({"sub": "x", "role": "clinician"}, JWT_SECRET), "claim 'exp'"),
        (jwt.encode(good | {"role": "admin"}, JWT_SECRET), "'role' claim"),
        (jwt.encode(good, JWT_SECRET * 2, algorithm="HS384"), "not signed with HS256"),
        (jwt.encode(good, None, algorithm="none"), "not signed with HS256"),  # alg=none never passes
        (jwt.encode(good | {"patients": OWN}, JWT_SECRET), "'patients' claim"),
        ("not.a.jwt", "not a valid JWT"),
    ]
    for token, reason in cases:
        r = _send(server, "GET", f"/v1/twins/{OWN}/history", token)
        assert r.status_code == 401 and reason in r.json()["detail"], (reason, r.json())


def test_denied_patient_requests_are_audited_with_the_caller(server) -> None:
    token = server.token("nosy-clinician", "clinician", [OWN])
    assert _send(server, "GET", f"/v1/twins/{OTHER}/history", token).status_code == 403
    with TwinStore.open(server.store, key=PSEUDONYM_KEY, create=False) as store:
        recs = [r for r in store.audit.records() if r.action == "service.denied" and r.actor == "nosy-clinician"]
        assert recs and recs[-1].subject == store.pseudonym(OTHER)
        assert OTHER not in str(store.audit.records()[-1])  # pseudonym only, never the raw id


def test_body_over_the_limit_is_413_before_parsing(server) -> None:
    token = server.token("big-sender", "clinician")
    big = b'{"data": {"format": "rows", "rows": [' + b'{"ID": 1},' * (MAX_BODY // 10) + b'{"ID": 1}]}}'
    r = httpx.post(f"{server.url}/v1/twins/{OWN}/data", content=big, timeout=30.0,
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert r.status_code == 413 and "exceeds" in r.json()["detail"]

    def chunks():  # streamed without Content-Length: counted and cut off
        yield b'{"data": "'
        for _ in range(MAX_BODY // 1000 + 5):
            yield b"x" * 1000
        yield b'"}'

    r = httpx.post(f"{server.url}/v1/twins/{OWN}/data", content=chunks(), timeout=30.0,
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert r.status_code == 413


def test_precise_422_names_the_field_and_leaks_nothing(server) -> None:
    with server.client(server.token("typo-clinician", "clinician")) as client:
        _check_422(server, client)


def _check_422(server, client) -> None:
    with pytest.raises(ServiceRequestError) as err:
        client.request("POST", f"/twins/{OWN}/forecast", json={"times": [1, "soon", 3], "levels": [0.9]})
    assert err.value.status == 422
    assert [e["field"] for e in err.value.body["errors"]] == ["body.times[1]"]
    with pytest.raises(ServiceRequestError) as err:  # the configured bound (50 times) -> 422 naming body.times
        client.forecast(OWN, list(range(51)))
    assert err.value.status == 422 and err.value.body["errors"][0]["field"] == "body.times"
    with pytest.raises(ServiceRequestError) as err:
        client.forecast(OWN, [1.0], levels=[1.5])
    assert err.value.status == 422 and "levels" in err.value.body["detail"]
    with pytest.raises(ServiceRequestError) as err:  # bad event data: row and column of the request
        rows = [{"ID": OWN, "TIME": 0.0, "AMT": 100.0, "DV": ".", "EVID": 1},
                {"ID": OWN, "TIME": -1.0, "AMT": 0.0, "DV": "2.5", "EVID": 0}]
        client.check_events(OWN, {"format": "rows", "rows": rows, "units": {"time": "h", "amt": "mg", "dv": "mg/L"}})
    assert err.value.status == 422 and "body.rows[1].TIME" in {e["field"] for e in err.value.body["errors"]}
    for body in (err.value.body, _send(server, "GET", "/v1/nowhere", None).json()):
        text = str(body)
        assert "Traceback" not in text and str(server.store) not in text and "/site-packages/" not in text


def test_rate_limit_per_subject_is_429_with_retry_after(server) -> None:
    flood = server.token("flooder", "modeler")
    codes = [_send(server, "GET", "/v1/populations", flood).status_code for _ in range(RATE_LIMIT + 1)]
    assert codes[:RATE_LIMIT] == [200] * RATE_LIMIT and codes[-1] == 429
    r = _send(server, "GET", "/v1/populations", flood)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _send(server, "GET", "/v1/populations", server.token("calm", "modeler")).status_code == 200
