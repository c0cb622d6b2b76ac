"""Secrets and limits of the test service (shared by conftest.py and the tests)."""

JWT_SECRET = "a test JWT secret of at least thirty-two bytes"
PSEUDONYM_KEY = "a service test pseudonym key, 32+ bytes long"
RATE_LIMIT = 100
MAX_BODY = 200_000
