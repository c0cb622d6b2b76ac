"""The service's parts in-process: settings, tokens, policy, rate limiter, job pool (timeouts, queue bound)."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("jwt", reason="needs the [service] extra")

from bayestwin.exceptions import (
    ServiceAuthError,
    ServiceBusyError,
    ServiceConfigError,
    ServiceForbiddenError,
)
from bayestwin.service.auth import Principal, decode_token, make_token
from bayestwin.service.authz import Action, authorize
from bayestwin.service.jobs import JobManager
from bayestwin.service.limits import RateLimiter
from bayestwin.service.settings import ServiceSettings

SECRET = "s" * 32


@pytest.mark.parametrize(("env", "message"), [
    ({"BAYESTWIN_STORE": "t"}, "no JWT key: set BAYESTWIN_JWT_SECRET"),
    ({"BAYESTWIN_STORE": "t", "BAYESTWIN_JWT_SECRET": "short"}, "at least 32 random bytes"),
    ({"BAYESTWIN_STORE": "t", "BAYESTWIN_JWT_ALGORITHM": "none", "BAYESTWIN_JWT_SECRET": SECRET}, "must be one of"),
    ({"BAYESTWIN_STORE": "t", "BAYESTWIN_JWT_ALGORITHM": "RS256", "BAYESTWIN_JWT_PUBLIC_KEY": "abc"}, "PEM"),
    ({"BAYESTWIN_STORE": "t", "BAYESTWIN_JWT_SECRET": SECRET, "BAYESTWIN_SERVICE_MAX_TIMES": "0"},
     "max_times must be > 0"),
    ({"BAYESTWIN_STORE": "t", "BAYESTWIN_JWT_SECRET": SECRET, "BAYESTWIN_SERVICE_RATE_LIMIT": "many"},
     "BAYESTWIN_SERVICE_RATE_LIMIT must be an integer"),
    ({"BAYESTWIN_STORE": "t", "BAYESTWIN_JWT_SECRET_FILE": "/nonexistent/secret"}, "cannot be read"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ServiceConfigError, match=message.replace("(", r"\(")):
        ServiceSettings.from_env(env)


def test_rs256_tokens_verify_with_the_public_key_only() -> None:
    crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
    from cryptography.hazmat.primitives import serialization

    key = crypto.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    settings = ServiceSettings(store="t", jwt_algorithm="RS256", jwt_key=public, jwt_audience="twins")
    token = make_token(private, subject="etl", role="service", algorithm="RS256", aud="twins")
    assert decode_token(token, settings) == Principal("etl", "service")
    with pytest.raises(ServiceAuthError, match="aud"):
        decode_token(make_token(private, subject="etl", role="service", algorithm="RS256"), settings)
    forged = _hs256_by_hand({"sub": "etl", "role": "service", "aud": "twins", "exp": time.time() + 60}, public)
    with pytest.raises(ServiceAuthError, match="not signed with RS256"):
        decode_token(forged, settings)


def _hs256_by_hand(claims: dict, key: str) -> str:
    """An HS256 token keyed with the RS256 public key (the classic key-confusion forgery; PyJWT refuses to make it)."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(key.encode(), head.encode(), hashlib.sha256).digest())


def test_policy_denies_by_default_and_patient_lists_accept_pseudonyms() -> None:
    limited = Principal("dr", "clinician", frozenset({"p-abc"}))
    authorize(limited, Action.FORECAST, patient="12", pseudonym=lambda p: "p-abc" if p == "12" else "p-x")
    with pytest.raises(ServiceForbiddenError, match="limited to"):
        authorize(limited, Action.FORECAST, patient="13", pseudonym=lambda p: "p-x")
    with pytest.raises(ServiceForbiddenError, match="needs a patient"):
        authorize(Principal("dr", "clinician"), Action.FORECAST)
    with pytest.raises(ServiceForbiddenError, match="role 'service' may not"):
        authorize(Principal("etl", "service"), Action.COMPARE, patient="12")


def test_rate_limiter_is_a_sliding_window_per_key() -> None:
    rl = RateLimiter(limit=3, window_s=10.0)
    assert [rl.hit("a", now=t) for t in (0.0, 1.0, 2.0)] == [None, None, None]
    assert rl.hit("a", now=3.0) == pytest.approx(7.0) and rl.hit("b", now=3.0) is None
    assert rl.hit("a", now=10.5) is None and RateLimiter.retry_after(0.2) == "1"


def test_jobs_time_out_without_committing_and_the_queue_is_bounded() -> None:
    committed: list[str] = []
    release = threading.Event()
    jm = JobManager(workers=1, max_queued=1, timeout_s=0.2)
    try:
        def slow(ctx):  # a fit that outlives its deadline: the commit after ctx.check() never happens
            release.wait(5.0)
            ctx.check()
            committed.append("slow")
            return {}

        first = jm.submit("slow", owner="a", patient="12", work=slow)
        time.sleep(0.05)
        queued = jm.submit("quick", owner="a", patient="12", work=lambda ctx: {"n": 1})  # waits on patient 12
        with pytest.raises(ServiceBusyError):
            jm.submit("more", owner="a", patient=None, work=lambda ctx: {})
        time.sleep(0.3)
        assert jm.get(first.id).status == "timed_out"
        release.set()
        assert jm.wait(first.id, 5.0).status == "timed_out" and committed == []
        assert jm.wait(queued.id, 5.0).status == "succeeded" and jm.get(queued.id).result == {"n": 1}
        failing = jm.submit("bad", owner="a", patient=None, work=lambda ctx: 1 / 0)
        assert jm.wait(failing.id, 5.0).error == {"error": "job failed", "detail": "ZeroDivisionError"}
    finally:
        release.set()
        jm.shutdown()


def test_client_and_service_start_without_jax() -> None:
    import subprocess
    import sys

    code = ("import sys, bayestwin.client, bayestwin.service.app, bayestwin.service.openapi; "
            "print(sorted(m for m in ('jax', 'numpyro', 'arviz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_serve_with_tls_and_its_option_checks(tmp_path) -> None:
    import datetime as dt

    import httpx
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from typer.testing import CliRunner

    from bayestwin.cli import app
    from bayestwin.service.local import LocalServer

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                                         serialization.NoEncryption()))
    env = {"BAYESTWIN_STORE": str(tmp_path / "store"), "BAYESTWIN_PSEUDONYM_KEY": "p" * 32,
           "BAYESTWIN_JWT_SECRET": SECRET}
    tls = ["--ssl-certfile", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem")]
    with LocalServer(env, tmp_path / "tls.log", args=tls, verify=str(tmp_path / "cert.pem")) as url:
        assert url.startswith("https://")
        from bayestwin.client import BayestwinClient

        with BayestwinClient(url, verify=str(tmp_path / "cert.pem")) as client:
            assert client.health()["status"] == "ok"
        with pytest.raises(httpx.ConnectError):  # no certificate check skipped: an unknown CA is refused
            httpx.get(f"{url}/v1/health")
    half = CliRunner().invoke(app, ["serve", "--store", str(tmp_path / "store"), "--ssl-certfile",
                                    str(tmp_path / "cert.pem")], env=env)
    assert half.exit_code == 2 and "both --ssl-certfile and --ssl-keyfile" in half.output
