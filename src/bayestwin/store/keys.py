"""Where the store's secrets come from: an argument, an environment variable, or a key file.

The pseudonymisation key (:mod:`~bayestwin.store.pseudonym`) and the encryption
key (:mod:`~bayestwin.store.encryption`) are resolved the same way, in this order:

1. the argument (``key=`` or ``encryption_key=``);
2. an environment variable holding the secret itself (at least 32 characters);
3. an environment variable naming a file that holds it.

A key file inside the store directory is refused: a key kept beside the data
protects nothing.

Examples
--------
>>> spec = SecretSpec(what="demo key", argument="key=", env="DEMO_KEY", file_env="DEMO_KEY_FILE",
...                   consequence="nothing can be demonstrated", how_to="Set DEMO_KEY.")
>>> resolve_secret("x" * 32, spec)[:4]
b'xxxx'
>>> resolve_secret(None, spec, required=False) is None
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bayestwin.exceptions import StoreError

__all__ = ["MIN_KEY_BYTES", "SecretSpec", "resolve_secret"]

MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class SecretSpec:
    """How one kind of secret is named and found (for lookup and for the error messages).

    Parameters
    ----------
    what : str
        Its name in messages, e.g. ``"pseudonymisation key"``.
    argument : str
        The argument that passes it, e.g. ``"key="``.
    env, file_env : str
        Environment variables holding the secret itself, and the path of a file holding it.
    consequence : str
        What cannot be done without it (completes "no <what> is set, so ...").
    how_to : str
        How to set it, appended to every message.
    """

    what: str
    argument: str
    env: str
    file_env: str
    consequence: str
    how_to: str


def resolve_secret(key: bytes | str | None, spec: SecretSpec, *, store_dir: str | os.PathLike[str] | None = None,
                   required: bool = True) -> bytes | None:
    """Resolve a secret: argument, then ``spec.env``, then the file named by ``spec.file_env``.

    Parameters
    ----------
    key : bytes or str, optional
        The secret itself; wins over the environment.
    spec : SecretSpec
        Names of the secret, its variables and its help text.
    store_dir : path, optional
        The store directory; a key file inside it is refused.
    required : bool
        Raise ``StoreError`` when no secret is set; with ``False`` return ``None`` instead.

    Returns
    -------
    bytes or None
        The secret (at least 32 bytes), or ``None`` when none is set and none is required.

    Examples
    --------
    >>> spec = SecretSpec("demo key", "key=", "DEMO_KEY", "DEMO_KEY_FILE", "nothing works", "Set DEMO_KEY.")
    >>> resolve_secret("short", spec)
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: the demo key (argument key=) is 5 bytes long; it needs at least 32. Set DEMO_KEY.
    """
    source = f"argument {spec.argument}"
    if key is None and os.environ.get(spec.env):
        key, source = os.environ[spec.env], f"environment variable {spec.env}"
    elif key is None and os.environ.get(spec.file_env):
        path = Path(os.environ[spec.file_env]).expanduser().resolve()
        source = f"key file {path} (from {spec.file_env})"
        if store_dir is not None and Path(store_dir).resolve() in (path, *path.parents):
            raise StoreError(f"the {spec.what} file {path} lies inside the store directory {store_dir}; "
                             "a key stored beside the data protects nothing. Move it outside the store and "
                             f"point {spec.file_env} at the new place.")
        try:
            key = path.read_bytes().strip()
        except OSError as err:
            raise StoreError(f"cannot read the {spec.what} file {path} (from {spec.file_env}): "
                             f"{err.strerror or err}. Check the path and its permissions, or set {spec.env} "
                             "instead.") from err
    if key is None:
        if not required:
            return None
        raise StoreError(f"no {spec.what} is set, so {spec.consequence}. {spec.how_to}")
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) < MIN_KEY_BYTES:
        raise StoreError(f"the {spec.what} ({source}) is {len(raw)} bytes long; it needs at least "
                         f"{MIN_KEY_BYTES}. {spec.how_to}")
    return raw
