"""Helpers of benchmarks/peers.py: the peer model per engine and one runner per engine (issue 9)."""

import importlib.metadata as _md


def installed(pkg: str) -> bool:
    """Whether the distribution `pkg` is installed (its version can be read)."""
    try:
        _md.version(pkg)
    except _md.PackageNotFoundError:
        return False
    return True
