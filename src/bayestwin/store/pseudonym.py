"""Keyed pseudonyms for patient identifiers (HMAC-SHA256).

The store never holds a patient's own identifier: every patient is filed under
``HMAC-SHA256(key, identifier)``, truncated to 128 bits and written ``p-<32 hex>``.
Without the key, a pseudonym cannot be linked back to an identifier, not even by
trying every hospital number. The key comes from, in this order:

1. the ``key=`` argument;
2. the environment variable ``BAYESTWIN_PSEUDONYM_KEY`` (the key itself, at least 32 characters);
3. the environment variable ``BAYESTWIN_PSEUDONYM_KEY_FILE`` (a path to a file holding the key).

The key must never be stored beside the data: :func:`load_key` refuses a key file
inside the store directory. Identifiers are compared as text: ``12`` and ``"12"``
are the same patient.

Examples
--------
>>> p = Pseudonymizer(b"an example key of at least 32 bytes!!")
>>> p("MRN-0001")
'p-...'
>>> p("MRN-0001") == p("MRN-0001") != p("MRN-0002")
True
"""

from __future__ import annotations

import hashlib
import hmac
import os

from bayestwin.exceptions import StoreError
from bayestwin.store.keys import MIN_KEY_BYTES, SecretSpec, resolve_secret

__all__ = ["KEY_ENV", "KEY_FILE_ENV", "MIN_KEY_BYTES", "Pseudonymizer", "load_key"]

KEY_ENV = "BAYESTWIN_PSEUDONYM_KEY"
KEY_FILE_ENV = "BAYESTWIN_PSEUDONYM_KEY_FILE"
_DOMAIN = b"bayestwin.patient/1\x00"
_CHECK = b"bayestwin.key-check/1"
_SHIFT = b"bayestwin.date-shift/1\x00"

_SECRET = SecretSpec(
    what="pseudonymisation key", argument="key=", env=KEY_ENV, file_env=KEY_FILE_ENV,
    consequence="patient identifiers cannot be pseudonymised",
    how_to=(f"Set the environment variable {KEY_ENV} to a secret of at least {MIN_KEY_BYTES} characters "
            f"(e.g. export {KEY_ENV}=$(python -c 'import secrets; print(secrets.token_hex(32))')), or "
            f"{KEY_FILE_ENV} to a file holding it, kept outside the store directory and backed up separately: "
            "without the same key the store's patients cannot be found again."))


def load_key(key: bytes | str | None = None, *, store_dir: str | os.PathLike[str] | None = None) -> bytes:
    """Resolve the pseudonymisation key: argument, then ``BAYESTWIN_PSEUDONYM_KEY``, then the key file.

    Parameters
    ----------
    key : bytes or str, optional
        The key itself; wins over the environment.
    store_dir : path, optional
        The store directory; a key file inside it is refused.

    Raises
    ------
    StoreError
        No key is set, it is shorter than 32 bytes, the key file is unreadable, or it lies in the store.

    Examples
    --------
    >>> load_key("x" * 32)[:4]
    b'xxxx'
    >>> load_key("short")
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: the pseudonymisation key (argument key=) is 5 bytes long; it needs at least 32...
    """
    secret = resolve_secret(key, _SECRET, store_dir=store_dir)
    assert secret is not None  # required=True: resolve_secret raised otherwise
    return secret


class Pseudonymizer:
    """Map patient identifiers to keyed pseudonyms ``p-<32 hex>`` (HMAC-SHA256, 128 bits kept).

    Parameters
    ----------
    key : bytes
        Secret key, at least 32 bytes (see :func:`load_key`).

    Examples
    --------
    >>> Pseudonymizer(b"k" * 32)(17) == Pseudonymizer(b"k" * 32)("17")
    True
    """

    def __init__(self, key: bytes) -> None:
        self._key = load_key(key)

    def __call__(self, identifier: object) -> str:
        """The pseudonym of `identifier` (compared as text)."""
        text = str(identifier)
        if not text:
            raise StoreError("empty patient identifier; pass the patient's id as it appears in the event table")
        digest = hmac.new(self._key, _DOMAIN + text.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"p-{digest[:32]}"

    def date_shift_days(self, pseudonym: str, *, max_days: int = 365) -> int:
        """The keyed date shift of a patient, in whole days: never 0, at most `max_days` either way.

        ``HMAC-SHA256(key, pseudonym)`` (under its own domain label) picks one of the
        ``2 * max_days`` non-zero offsets. The same patient always gets the same shift, so
        intervals between their dates are kept exactly; without the key the shift cannot be
        recovered. Used by :func:`~bayestwin.store.deidentify.export_deidentified`.

        Examples
        --------
        >>> p = Pseudonymizer(b"k" * 32)
        >>> shift = p.date_shift_days(p("MRN-1"))
        >>> shift == p.date_shift_days(p("MRN-1")) and 1 <= abs(shift) <= 365
        True
        """
        if max_days < 1:
            raise StoreError(f"max_days={max_days}: a date shift needs a range of at least 1 day either way")
        draw = int.from_bytes(hmac.new(self._key, _SHIFT + pseudonym.encode("utf-8"), hashlib.sha256).digest()[:8],
                              "big") % (2 * max_days)
        return draw - max_days if draw < max_days else draw - max_days + 1

    @property
    def fingerprint(self) -> str:
        """A public check value of the key (HMAC of a fixed label): tells keys apart, reveals nothing of them.

        Examples
        --------
        >>> Pseudonymizer(b"k" * 32).fingerprint != Pseudonymizer(b"j" * 32).fingerprint
        True
        """
        return hmac.new(self._key, _CHECK, hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Pseudonymizer(key fingerprint {self.fingerprint})"
