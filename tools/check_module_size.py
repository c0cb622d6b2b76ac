"""Fail when a module passes the house ceiling (800 lines); list those above the ~400-line aim."""

from __future__ import annotations

import sys
from pathlib import Path

AIM, CEILING = 400, 800


def main(root: str) -> int:
    over_aim, over_ceiling = [], []
    for path in sorted(Path(root).rglob("*.py")):
        n = sum(1 for _ in path.open(encoding="utf-8"))
        if n > CEILING:
            over_ceiling.append((path, n))
        elif n > AIM:
            over_aim.append((path, n))
    for path, n in over_aim:
        print(f"note: {path} has {n} lines (aim ~{AIM}); look for a second concept to split out")
    for path, n in over_ceiling:
        print(f"error: {path} has {n} lines, above the {CEILING}-line ceiling")
    return 1 if over_ceiling else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src/bayestwin"))
