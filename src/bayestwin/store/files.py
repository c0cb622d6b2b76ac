"""The store's file layer: content hashes, atomic durable writes, verified reads.

Every byte the store puts on disk goes through :func:`write_atomic`: the data go
to a temporary file in the destination directory, are flushed and ``fsync``-ed,
the file is renamed over its final name with ``os.replace`` (atomic on POSIX),
and the directory is ``fsync``-ed so that the rename itself survives a power
loss. A reader therefore sees either no file or the whole file, never a part.

The low-level calls are module attributes (``_open``, ``_write``, ``_fsync``,
``_replace``) so that tests can inject I/O faults (ENOSPC, EIO, EROFS) here and
nowhere else.

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> name = sha256_hex(b"posterior bytes")
>>> path = write_atomic(folder, name, b"posterior bytes")
>>> read_verified(path, name)
b'posterior bytes'
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from pathlib import Path

from bayestwin.exceptions import StoreIntegrityError

__all__ = ["TMP_PREFIX", "check_hash", "fsync_dir", "read_existing", "read_verified", "sha256_hex", "write_atomic"]

TMP_PREFIX = ".tmp-"

# Low-level calls, looked up at call time (tests monkeypatch these to inject faults).
_open = os.open
_write = os.write
_fsync = os.fsync
_replace = os.replace


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data` (64 characters): the name of a content-addressed file.

    Examples
    --------
    >>> sha256_hex(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """``fsync`` a directory so that file creations and renames in it are durable.

    Examples
    --------
    >>> import tempfile
    >>> fsync_dir(tempfile.mkdtemp())
    """
    fd = _open(os.fspath(directory), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def write_atomic(directory: str | os.PathLike[str], name: str, data: bytes) -> Path:
    """Durably write `data` to ``directory/name``; all or nothing.

    Temporary file in the same directory, write, ``fsync``, ``os.replace``, then
    ``fsync`` of the directory. On any error the temporary file is removed and the
    ``OSError`` propagates (the caller turns it into a ``StoreError`` naming the
    patient and version); an existing ``directory/name`` is never touched until
    the final rename.

    Parameters
    ----------
    directory : path
        Destination directory (must exist).
    name : str
        Final file name.
    data : bytes
        The complete content.

    Returns
    -------
    pathlib.Path
        The final path.

    Examples
    --------
    >>> import tempfile
    >>> write_atomic(tempfile.mkdtemp(), "a.txt", b"abc").read_bytes()
    b'abc'
    """
    directory = Path(directory)
    tmp = directory / f"{TMP_PREFIX}{secrets.token_hex(8)}-{name}"
    final = directory / name
    fd = _open(os.fspath(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = _write(fd, view)
                if written <= 0:  # pragma: no cover - os.write raises rather than returning 0
                    raise OSError(errno.EIO, "short write")
                view = view[written:]
            _fsync(fd)
        finally:
            os.close(fd)
        _replace(os.fspath(tmp), os.fspath(final))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    return final


def read_verified(path: str | os.PathLike[str], expected_hex: str) -> bytes:
    """Read a content-addressed file and check its SHA-256; raise ``StoreIntegrityError`` on mismatch.

    Examples
    --------
    >>> import tempfile
    >>> p = write_atomic(tempfile.mkdtemp(), "x", b"abc")
    >>> read_verified(p, "0" * 64)
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreIntegrityError: file ... has SHA-256 ba7816bf8f01..., expected 000000000000...; ...
    """
    data = read_existing(path, expected_hex)
    check_hash(data, expected_hex, path)
    return data


def read_existing(path: str | os.PathLike[str], expected_hex: str) -> bytes:
    """Read a content-addressed file as it is on disk; ``StoreIntegrityError`` naming it if it is missing.

    Examples
    --------
    >>> import tempfile, os
    >>> read_existing(os.path.join(tempfile.mkdtemp(), "gone"), "ab" * 32)
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreIntegrityError: file .../gone is missing (expected content SHA-256 abababababab...); ...
    """
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise StoreIntegrityError(
            f"file {path} is missing (expected content SHA-256 {expected_hex[:12]}...); it was deleted or "
            "moved outside bayestwin. Restore the store directory from a backup.") from err


def check_hash(data: bytes, expected_hex: str, path: str | os.PathLike[str]) -> None:
    """Raise ``StoreIntegrityError`` unless `data` (the content of `path`) has SHA-256 `expected_hex`.

    Examples
    --------
    >>> check_hash(b"", sha256_hex(b""), "objects/empty")
    """
    actual = sha256_hex(data)
    if actual != expected_hex:
        raise StoreIntegrityError(
            f"file {path} has SHA-256 {actual[:12]}..., expected {expected_hex[:12]}...; it was altered or "
            "corrupted on disk. Restore it from a backup; do not edit files in a store.")
