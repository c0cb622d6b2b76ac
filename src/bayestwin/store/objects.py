"""The store's content-addressed object files, plain (``<sha256>.nc``) or encrypted (``<sha256>.nc.enc``).

Every object is named by the SHA-256 of its plaintext bytes (a posterior's NetCDF-4
bytes), in both kinds of store; an encrypted store keeps the AES-256-GCM envelope of
:mod:`~bayestwin.store.encryption` on disk instead of the bytes themselves. Reads check
the hash (and, when encrypted, the authentication tag first); writes are atomic and
durable (:func:`~bayestwin.store.files.write_atomic`) and deduplicate equal content.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> objects = ObjectFiles(Path(tempfile.mkdtemp()))
>>> digest = objects.write(b"posterior bytes", what="a demo posterior")
>>> objects.read(digest), objects.path(digest).name == f"{digest}.nc"
(b'posterior bytes', True)
"""

from __future__ import annotations

import errno
from pathlib import Path

from bayestwin.exceptions import StoreError, StoreIntegrityError
from bayestwin.store import files
from bayestwin.store.encryption import ObjectCipher

__all__ = ["ObjectFiles"]


class ObjectFiles:
    """The object directory of one store, with its cipher (``None``: objects are stored as they are).

    Parameters
    ----------
    directory : pathlib.Path
        The ``objects/`` directory.
    cipher : ObjectCipher, optional
        Set for an encrypted store.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> ObjectFiles(Path(tempfile.mkdtemp()), ObjectCipher(b"s" * 32, store_id="1" * 32)).suffix
    '.nc.enc'
    """

    def __init__(self, directory: Path, cipher: ObjectCipher | None = None) -> None:
        self.directory = directory
        self.cipher = cipher

    @property
    def suffix(self) -> str:
        """File-name suffix of the objects: ``".nc"``, or ``".nc.enc"`` in an encrypted store."""
        return ".nc" if self.cipher is None else ".nc.enc"

    def path(self, digest: str) -> Path:
        """Where the object with content hash `digest` lives."""
        return self.directory / f"{digest}{self.suffix}"

    def read(self, digest: str) -> bytes:
        """The object's plaintext bytes, authenticated (encrypted store) and hash-checked.

        Raises ``StoreIntegrityError`` naming the file when it is missing, altered or corrupted.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> ObjectFiles(Path(tempfile.mkdtemp())).read("ab" * 32)
        Traceback (most recent call last):
        ...
        bayestwin.exceptions.StoreIntegrityError: file ...abab.nc is missing (expected content SHA-256 ...
        """
        path = self.path(digest)
        data = files.read_existing(path, digest)
        if self.cipher is not None:
            data = self.cipher.decrypt(data, digest=digest, path=path)
        files.check_hash(data, digest, path)
        return data

    def write(self, data: bytes, *, what: str) -> str:
        """Store `data` durably under its SHA-256 (once: equal content shares one file); return the hash.

        A damaged file already under that name is rewritten. I/O errors become a
        ``StoreError`` naming `what`, the directory and what to do.
        """
        digest = files.sha256_hex(data)
        path = self.path(digest)
        try:
            if path.exists():
                try:
                    self.read(digest)
                    return digest  # same content already durable (content addressing deduplicates)
                except StoreIntegrityError:
                    pass  # a damaged copy: rewrite it below
            blob = data if self.cipher is None else self.cipher.encrypt(data, digest=digest)
            files.write_atomic(path.parent, path.name, blob)
        except OSError as err:
            if isinstance(err, StoreError):
                raise
            name = errno.errorcode.get(err.errno or 0, "I/O error")
            raise StoreError(f"could not write {what} to {path.parent}: {err.strerror or err} "
                             f"({name}). Nothing was committed; the store is unchanged. Free disk space or "
                             "fix the directory's permissions, then commit again.") from err
        return digest
