"""Opening a store: its keys, directories, database and the checks that it is the store they belong to.

:func:`open_parts` resolves the pseudonymisation key and the optional encryption key
(:mod:`~bayestwin.store.keys`), creates the directories and schema of a new store,
records what the store is made with (:func:`~bayestwin.store.schema.init_meta`) and
refuses a wrong pseudonymisation key, a missing or wrong encryption key, or an
encryption key for an unencrypted store, each with a ``StoreError`` saying what to do.
:meth:`TwinStore.open <bayestwin.store.twin_store.TwinStore.open>` builds the store from the parts.

Examples
--------
>>> import tempfile
>>> parts = open_parts(tempfile.mkdtemp(), key="k" * 32)
>>> parts.objects.cipher is None, len(parts.store_id)
(True, 32)
"""

from __future__ import annotations

import getpass
import os
import sqlite3
from pathlib import Path
from typing import NamedTuple

from bayestwin._extras import require
from bayestwin.exceptions import StoreError
from bayestwin.store import files
from bayestwin.store.encryption import load_encryption_key, open_cipher
from bayestwin.store.objects import ObjectFiles
from bayestwin.store.pseudonym import Pseudonymizer, load_key
from bayestwin.store.schema import DB_NAME, connect, create_schema, init_meta, transaction

__all__ = ["OBJECTS", "StoreParts", "default_actor", "open_parts"]

OBJECTS = "objects"


class StoreParts(NamedTuple):
    """What an open store is made of."""

    root: Path
    conn: sqlite3.Connection
    pseudonymizer: Pseudonymizer
    objects: ObjectFiles
    store_id: str


def open_parts(path: str | os.PathLike[str], *, key: bytes | str | None = None,
               encryption_key: bytes | str | None = None, create: bool = True,
               timeout_s: float = 30.0) -> StoreParts:
    """Open (or create) the store at `path` and check its keys; see ``TwinStore.open`` for the arguments.

    Examples
    --------
    >>> import tempfile
    >>> open_parts(tempfile.mkdtemp(), key="k" * 32, encryption_key="k" * 32)
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: the encryption key is the pseudonymisation key; use two different secrets...
    """
    root = Path(path)
    if not (root / DB_NAME).exists() and not create:
        raise StoreError(f"no twin store at {root}; pass create=True to make a new one, or check the path")
    secret = load_key(key, store_dir=root)
    pseudonymizer = Pseudonymizer(secret)
    enc_secret = load_encryption_key(encryption_key, store_dir=root)
    if enc_secret is not None:
        require("cryptography", extra="crypto")
        if enc_secret == secret:
            raise StoreError("the encryption key is the pseudonymisation key; use two different secrets, so that "
                             "one leaked key does not expose both (see docs/store.md, key handling)")
    try:
        for folder in (root, root / OBJECTS):
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                files.fsync_dir(folder.parent)
        conn = connect(root / DB_NAME, timeout_s=timeout_s)
        create_schema(conn)
        with transaction(conn):
            meta = init_meta(conn, key_fingerprint=pseudonymizer.fingerprint, encryption_secret=enc_secret)
    except (OSError, sqlite3.Error) as err:
        raise StoreError(f"cannot open the twin store at {root}: {err}. Check that the directory exists, is "
                         "writable and has free space.") from err
    try:
        stored = meta["key_fingerprint"]
        if stored != pseudonymizer.fingerprint:
            raise StoreError(f"the store at {root} was created with a different pseudonymisation key (fingerprint "
                             f"{stored}, yours {pseudonymizer.fingerprint}); its patients cannot be found with this "
                             "key. Set BAYESTWIN_PSEUDONYM_KEY (or BAYESTWIN_PSEUDONYM_KEY_FILE) to the original key.")
        cipher = open_cipher(meta, enc_secret, root=root)
    except StoreError:
        conn.close()
        raise
    return StoreParts(root, conn, pseudonymizer, ObjectFiles(root / OBJECTS, cipher), meta["store_id"])


def default_actor(actor: str | None = None) -> str:
    """Who acts, for the audit trail: `actor`, else ``BAYESTWIN_ACTOR``, else the login name.

    Examples
    --------
    >>> default_actor("dr.lee")
    'dr.lee'
    """
    if actor:
        return actor
    if os.environ.get("BAYESTWIN_ACTOR"):
        return os.environ["BAYESTWIN_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no login name in some containers
        return "unknown"
