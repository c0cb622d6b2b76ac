"""Optional encryption at rest of the store's content-addressed objects (AES-256-GCM).

A store created with an encryption key keeps every posterior file encrypted; the
choice is made once, when the store is created, and recorded in its ``meta`` table.

**Key.** A secret of at least 32 bytes from ``encryption_key=``, else the environment
variable ``BAYESTWIN_ENCRYPTION_KEY``, else a file named by ``BAYESTWIN_ENCRYPTION_KEY_FILE``
(never inside the store directory). The AES-256 key is derived from it with
HKDF-SHA256, salted with the store's random id, so the same secret gives every store
its own key. The store keeps only a fingerprint of the derived key (an HMAC of a fixed
label), to refuse a wrong key at once with a clear message.

**File format** (``objects/<sha256>.nc.enc``)::

    b"BTWENC" | format version (1 byte, = 1) | nonce (12 random bytes) | AES-GCM ciphertext + 16-byte tag

The associated data authenticated with each file are the 7 header bytes, the store id
and the object's content hash, so a file that was altered, truncated, renamed to
another object's name or copied from another store fails to decrypt.

**Content hash.** Objects stay named by the SHA-256 of their *plaintext* (the posterior's
NetCDF bytes): versions, audit records, deduplication and exports mean the same in
encrypted and plain stores. After decryption the hash is checked again. The name
therefore tells someone who already holds an exact copy of a posterior that it is in
the store; it reveals nothing else (posterior draws are not guessable).

Examples
--------
>>> cipher = ObjectCipher(b"an encryption secret of 32+ bytes!", store_id="0" * 32)
>>> blob = cipher.encrypt(b"posterior bytes", digest="ab" * 32)
>>> blob[:6], len(blob) - len(b"posterior bytes")
(b'BTWENC', 35)
>>> cipher.decrypt(blob, digest="ab" * 32, path="objects/x")
b'posterior bytes'
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from bayestwin._extras import require
from bayestwin.exceptions import StoreError, StoreIntegrityError
from bayestwin.store.keys import MIN_KEY_BYTES, SecretSpec, resolve_secret

__all__ = ["ENCRYPTION_KEY_ENV", "ENCRYPTION_KEY_FILE_ENV", "FORMAT_VERSION", "MAGIC", "SCHEME", "ObjectCipher",
           "load_encryption_key", "new_store_id", "open_cipher"]

ENCRYPTION_KEY_ENV = "BAYESTWIN_ENCRYPTION_KEY"
ENCRYPTION_KEY_FILE_ENV = "BAYESTWIN_ENCRYPTION_KEY_FILE"
SCHEME = "aes-256-gcm/1"  # the value of meta 'encryption' in an encrypted store ('none' otherwise)
MAGIC = b"BTWENC"
FORMAT_VERSION = 1
_HEADER = MAGIC + bytes([FORMAT_VERSION])
_NONCE_BYTES = 12
_TAG_BYTES = 16
_INFO = b"bayestwin.store objects aes-256-gcm/1"
_CHECK = b"bayestwin.encryption-key-check/1"

HOW_TO = (f"Pass encryption_key=, or set the environment variable {ENCRYPTION_KEY_ENV} to the secret (at least "
          f"{MIN_KEY_BYTES} characters), or {ENCRYPTION_KEY_FILE_ENV} to a file holding it, kept outside the store "
          "directory and backed up separately: without the key the store's posteriors cannot be read.")
_SECRET = SecretSpec(what="encryption key", argument="encryption_key=", env=ENCRYPTION_KEY_ENV,
                     file_env=ENCRYPTION_KEY_FILE_ENV, consequence="the store's objects cannot be encrypted",
                     how_to=HOW_TO)


def load_encryption_key(key: bytes | str | None = None, *,
                        store_dir: str | os.PathLike[str] | None = None) -> bytes | None:
    """Resolve the encryption secret: argument, ``BAYESTWIN_ENCRYPTION_KEY``, the key file; ``None`` if unset.

    Parameters
    ----------
    key : bytes or str, optional
        The secret itself (at least 32 bytes); wins over the environment.
    store_dir : path, optional
        The store directory; a key file inside it is refused.

    Examples
    --------
    >>> load_encryption_key("e" * 32)[:2]
    b'ee'
    >>> load_encryption_key("tiny")
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: the encryption key (argument encryption_key=) is 4 bytes long; it needs...
    """
    return resolve_secret(key, _SECRET, store_dir=store_dir, required=False)


def new_store_id() -> str:
    """A random store id (32 hex characters), made once when a store is created.

    Examples
    --------
    >>> len(new_store_id())
    32
    """
    return secrets.token_hex(16)


class ObjectCipher:
    """Encrypt and decrypt one store's objects with AES-256-GCM (needs ``bayestwin[crypto]``).

    Parameters
    ----------
    secret : bytes
        The encryption secret (at least 32 bytes), see :func:`load_encryption_key`.
    store_id : str
        The store's id: salts the key derivation and is authenticated with every file.

    Examples
    --------
    >>> a = ObjectCipher(b"s" * 32, store_id="1" * 32)
    >>> a.fingerprint == ObjectCipher(b"s" * 32, store_id="1" * 32).fingerprint != ObjectCipher(
    ...     b"s" * 32, store_id="2" * 32).fingerprint
    True
    """

    def __init__(self, secret: bytes, *, store_id: str) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise StoreError(f"the encryption key is {len(secret)} bytes long; it needs at least {MIN_KEY_BYTES}. "
                             f"{HOW_TO}")
        require("cryptography", extra="crypto")
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=store_id.encode(), info=_INFO).derive(secret)
        self.store_id = store_id
        self._aead = AESGCM(key)
        self._fingerprint = hmac.new(key, _CHECK, hashlib.sha256).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """A public check value of the derived key: tells keys apart, reveals nothing of them."""
        return self._fingerprint

    def encrypt(self, plaintext: bytes, *, digest: str) -> bytes:
        """Header, a fresh random nonce, and the ciphertext of `plaintext` bound to its content `digest`.

        Examples
        --------
        >>> c = ObjectCipher(b"s" * 32, store_id="1" * 32)
        >>> c.encrypt(b"x", digest="0" * 64) != c.encrypt(b"x", digest="0" * 64)  # random nonces
        True
        """
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _HEADER + nonce + self._aead.encrypt(nonce, plaintext, self._associated(digest))

    def decrypt(self, blob: bytes, *, digest: str, path: str | os.PathLike[str]) -> bytes:
        """The plaintext of an object file read from `path`; ``StoreIntegrityError`` if it does not authenticate.

        Examples
        --------
        >>> c = ObjectCipher(b"s" * 32, store_id="1" * 32)
        >>> c.decrypt(c.encrypt(b"x", digest="0" * 64), digest="1" * 64, path="objects/f")
        Traceback (most recent call last):
        ...
        bayestwin.exceptions.StoreIntegrityError: file objects/f failed its authentication check (AES-GCM tag)...
        """
        from cryptography.exceptions import InvalidTag

        if len(blob) < len(_HEADER) + _NONCE_BYTES + _TAG_BYTES or not blob.startswith(MAGIC):
            raise StoreIntegrityError(
                f"file {path} is not an encrypted bayestwin object (no {MAGIC.decode()} header, or too short): it "
                "was altered, truncated or replaced on disk. Restore it from a backup; do not edit files in a store.")
        if blob[len(MAGIC)] != FORMAT_VERSION:
            raise StoreError(f"file {path} uses encryption format version {blob[len(MAGIC)]}; this bayestwin reads "
                             f"version {FORMAT_VERSION}. Open the store with the bayestwin version that wrote it.")
        nonce = blob[len(_HEADER):len(_HEADER) + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(_HEADER) + _NONCE_BYTES:], self._associated(digest))
        except InvalidTag as err:
            raise StoreIntegrityError(
                f"file {path} failed its authentication check (AES-GCM tag): it was altered or corrupted on disk, "
                "renamed to another object's name, or copied from another store. Restore it from a backup; do not "
                "edit files in a store.") from err

    def _associated(self, digest: str) -> bytes:
        return _HEADER + self.store_id.encode() + b"\x00" + digest.encode()

    def __repr__(self) -> str:
        return f"ObjectCipher({SCHEME}, store {self.store_id}, key fingerprint {self.fingerprint})"


def open_cipher(meta: dict[str, str], secret: bytes | None, *, root: str | os.PathLike[str]) -> ObjectCipher | None:
    """The cipher of a store from its ``meta`` rows, checking the key; ``None`` for an unencrypted store.

    Raises ``StoreError`` when an encrypted store has no key or a different one, or an
    unencrypted store is given a key (encryption is chosen when a store is created).

    Examples
    --------
    >>> open_cipher({"encryption": "none", "store_id": "1" * 32}, None, root="twins") is None
    True
    >>> open_cipher({"encryption": SCHEME, "store_id": "1" * 32, "encryption_key_check": "x"}, None, root="twins")
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: the store at twins is encrypted (aes-256-gcm/1) and no encryption key is set...
    """
    scheme = meta.get("encryption", "none")
    if scheme == "none":
        if secret is not None:
            raise StoreError(
                f"the store at {root} is not encrypted, but an encryption key was given. Encryption is chosen when "
                "a store is created; encrypting an existing store is not supported yet. Open it without an "
                f"encryption key (unset {ENCRYPTION_KEY_ENV} and {ENCRYPTION_KEY_FILE_ENV}), or create a new "
                "store with the key and commit the twins into it.")
        return None
    if scheme != SCHEME:
        raise StoreError(f"the store at {root} is encrypted with {scheme!r}, which this bayestwin cannot read (it "
                         f"reads {SCHEME}); open it with the bayestwin version that created it.")
    if secret is None:
        raise StoreError(f"the store at {root} is encrypted ({SCHEME}) and no encryption key is set, so its "
                         f"posteriors cannot be read. {HOW_TO}")
    cipher = ObjectCipher(secret, store_id=meta["store_id"])
    if not hmac.compare_digest(cipher.fingerprint, meta.get("encryption_key_check", "")):
        raise StoreError(
            f"the store at {root} was encrypted with a different encryption key (fingerprint "
            f"{meta.get('encryption_key_check')}, yours {cipher.fingerprint}); its posteriors cannot be decrypted "
            f"with this key. Pass encryption_key= or set {ENCRYPTION_KEY_ENV} (or {ENCRYPTION_KEY_FILE_ENV}) to the "
            "original key; it cannot be recovered from the store.")
    return cipher
