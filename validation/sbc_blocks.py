"""A built-in model's population SBC run in blocks of replications, for models too slow for one run (the ODE models).

``make validate``'s SBC of one model (``validation/run.py``: 200 replications + 60 of the broken variant) costs
18-27 CPU-hours for an ODE model (``validation/device_sbc.md``). Here the same SBC -- same spec, design and
sampler settings as ``run.py``'s ``sbc_setup(name, ode=True)`` -- runs in blocks keyed by replication id
(``run_sbc(..., replication_ids=...)``), each block saved as it finishes under
``docs/validation/fragments/sbc_parts/<model>/``, so that blocks run in different sessions, in the background or on
a device machine add up to one SBC. Nothing is discarded: ``combine`` uses every stored block of a variant.

Usage::

    python validation/sbc_blocks.py run MODEL --ids 0:28 --block 14 [--broken] [--deadline S] [--batch B]
    python validation/sbc_blocks.py status [MODEL]
    python validation/sbc_blocks.py combine MODEL [--replications 200] [--broken-replications 60]

``run`` skips ids already stored for the variant and starts no block it expects to end after ``--deadline``
seconds (measured from the start, by the previous block's time). Before running a block it *claims* its ids (a
file per id under ``.sbc_claims/<model>/``, created atomically; git-ignored), so several ``run`` processes on
one machine -- e.g. two with 2 host devices each here, or eight on a 16-core device machine -- share the ids:
each takes the next unclaimed ones, and a process that meets an expensive replication does not hold the others
up. A claim is released when its block is stored or its process ends; claims of processes that died are
removed on start. The set of replications is still the one ``--ids`` names: which process ran an id changes
nothing (each replication is keyed by its id). ``combine`` joins every stored block of the
good and broken variants (``bayestwin.validation.combine_sbc``; it refuses blocks of another SBC or a replication
counted twice), requires at least the asked numbers of replications, and writes the model's report fragment
(``sbc_<model>.json``) like ``run.py --only sbc`` does; ``run.py --only none`` then rebuilds the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
PARTS = HERE.parent / "docs" / "validation" / "fragments" / "sbc_parts"
CLAIMS = HERE.parent / ".sbc_claims"
VARIANTS = ("good", "broken")


def _parse_ids(text: str) -> list[int]:
    """``"0:28"`` -> 0..27; ``"3,5,9"`` -> those."""
    if ":" in text:
        lo, hi = (int(x) for x in text.split(":"))
        return list(range(lo, hi))
    return [int(x) for x in text.split(",") if x]


def _folder(model: str, root: Path) -> Path:
    return root / model


def stored(model: str, variant: str, root: Path = PARTS) -> list[Path]:
    """The stored block files of one variant of a model's SBC."""
    return sorted(_folder(model, root).glob(f"{variant}_*.json"))


def stored_ids(model: str, variant: str, root: Path = PARTS) -> set[int]:
    """Replication ids already stored for the variant."""
    return {i for p in stored(model, variant, root) for i in json.loads(p.read_text())["ranks"]["index"]}


def _claim_path(claims: Path, model: str, variant: str, i: int) -> Path:
    return claims / model / f"{variant}_{i:04d}.claim"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_stale(model: str, variant: str, claims: Path = CLAIMS) -> list[int]:
    """Remove this host's claims whose process is gone; returns their ids."""
    freed = []
    for path in sorted((claims / model).glob(f"{variant}_*.claim")):
        try:
            host, pid = path.read_text().split()[:2]
        except (OSError, ValueError):
            continue  # being written, or removed meanwhile
        if host == os.uname().nodename and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            freed.append(int(path.stem.split("_")[-1]))
    return freed


def claim(model: str, variant: str, candidates: list[int], n: int, claims: Path = CLAIMS) -> list[int]:
    """Claim up to `n` of `candidates`, in order, that no other process holds (atomic file creation)."""
    (claims / model).mkdir(parents=True, exist_ok=True)
    got = []
    for i in candidates:
        if len(got) == n:
            break
        try:
            fd = os.open(_claim_path(claims, model, variant, i), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.uname().nodename} {os.getpid()} {time.time():.0f}\n")
        got.append(i)
    return got


def release(model: str, variant: str, ids: list[int], claims: Path = CLAIMS) -> None:
    """Remove the claims of `ids`."""
    for i in ids:
        _claim_path(claims, model, variant, i).unlink(missing_ok=True)


def run_blocks(model: str, ids: list[int], block: int, *, broken: bool, deadline: float | None, batch: int | None,
               root: Path = PARTS, claims: Path = CLAIMS) -> int:
    """Run the missing ids of `ids` in blocks of `block`, saving each; returns the number of replications run."""
    from run import sbc_setup

    from bayestwin.validation import misspecified_prior, run_sbc, sbc_to_dict

    started = time.perf_counter()
    setup = sbc_setup(model, ode=True)
    if isinstance(setup, dict):
        raise SystemExit(f"{model}: no SBC setup ({setup['row']})")
    spec, settings = setup
    variant = VARIANTS[int(broken)]
    fit_spec = misspecified_prior(spec, 1 / 3) if broken else None
    folder = _folder(model, root)
    folder.mkdir(parents=True, exist_ok=True)
    release_stale(model, variant, claims)
    last = 0.0
    n_run = 0
    while True:
        done = stored_ids(model, variant, root)
        elapsed = time.perf_counter() - started
        if deadline is not None and elapsed + last > deadline:
            print(f"[sbc_blocks] {model} {variant}: stopping ({elapsed:.0f} s gone, last block {last:.0f} s, "
                  f"deadline {deadline:.0f} s)", flush=True)
            break
        chunk = claim(model, variant, [i for i in ids if i not in done], block, claims)
        if not chunk:
            break
        t0 = time.perf_counter()
        extra = {"batch": batch} if batch else {"batch": max(1, -(-len(chunk) * settings.get("chains", 2)
                                                                 // _devices(settings)))}
        try:
            res = run_sbc(spec, fit_spec=fit_spec, replication_ids=chunk, **(settings | extra))
        except BaseException:
            release(model, variant, chunk, claims)
            raise
        last = time.perf_counter() - t0
        record = sbc_to_dict(res) | {"finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                     "host": os.uname().nodename}
        path = folder / f"{variant}_{chunk[0]:04d}-{chunk[-1]:04d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record) + "\n")
        tmp.replace(path)
        release(model, variant, chunk, claims)
        n_run += len(chunk)
        rep = res.replications
        print(f"[sbc_blocks] {model} {variant}: ids {chunk[0]}..{chunk[-1]} in {last:.0f} s "
              f"({res.settings['platform']}, {res.settings['devices']} devices, batch {res.settings['batch']}); "
              f"steps per iteration median {rep['mean_steps'].median():.0f} max {rep['mean_steps'].max():.0f}; "
              f"{int((rep['divergences'] > 0).sum())} with divergences -> {path.name}", flush=True)
    return n_run


def _devices(settings: dict) -> int:
    import jax

    return jax.local_device_count() if settings.get("parallel_ok") else 1


def load(model: str, variant: str, root: Path = PARTS):
    """Every stored block of the variant, combined (``combine_sbc``), or None when there is none."""
    from bayestwin.validation import combine_sbc, sbc_from_dict

    parts = [sbc_from_dict(json.loads(p.read_text())) for p in stored(model, variant, root)]
    return combine_sbc(parts) if parts else None


def status(models: list[str], root: Path = PARTS) -> None:
    for model in models or sorted(p.name for p in root.glob("*") if p.is_dir()):
        for variant in VARIANTS:
            files = stored(model, variant, root)
            ids = sorted(stored_ids(model, variant, root))
            wall = sum(json.loads(p.read_text())["wall_s"] for p in files)
            print(f"{model} {variant}: {len(ids)} replications in {len(files)} blocks, {wall / 3600:.2f} h of wall "
                  f"time" + (f"; ids {ids[0]}..{ids[-1]}" if ids else ""))


def combine(model: str, replications: int, broken_replications: int, root: Path = PARTS) -> int:
    """Write the model's report fragment from every stored block; exit status 1 if too few are stored."""
    import run

    good, bad = load(model, "good", root), load(model, "broken", root)
    n_good = 0 if good is None else len(good.ranks)
    n_bad = 0 if bad is None else len(bad.ranks)
    if n_good < replications or n_bad < broken_replications:
        print(f"{model}: {n_good} of {replications} good and {n_bad} of {broken_replications} broken replications "
              "stored; not combined", file=sys.stderr)
        return 1
    spec, settings = run.sbc_setup(model, ode=True)
    centred = (f"centred {', '.join(spec.centered)}" if isinstance(spec.centered, tuple)
               else ("centred" if spec.centered else "non-centred"))
    where = (f"in {good.settings['parts']} + {bad.settings['parts']} blocks (validation/sbc_blocks.py; "
             f"{centred}; platform {good.settings.get('platform')} / {bad.settings.get('platform')})")
    fragment = run.sbc_fragment(model, good, bad, settings, where=where)
    print(good.format(), bad.format(), sep="\n")
    run._save(f"sbc_{model}", fragment | {"date": run._now(), "wall_s": good.wall_s + bad.wall_s,
                                           "replications": n_good})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("model")
    r.add_argument("--ids", default="0:200")
    r.add_argument("--block", type=int, default=14)
    r.add_argument("--broken", action="store_true")
    r.add_argument("--deadline", type=float, default=None, help="seconds from the start")
    r.add_argument("--batch", type=int, default=None, help="fits per device call (default: a whole block at once)")
    r.add_argument("--root", default=str(PARTS))
    r.add_argument("--claims", default=str(CLAIMS), help="folder of the claim files (one machine's processes)")
    s = sub.add_parser("status")
    s.add_argument("models", nargs="*")
    s.add_argument("--root", default=str(PARTS))
    c = sub.add_parser("combine")
    c.add_argument("model")
    c.add_argument("--replications", type=int, default=200)
    c.add_argument("--broken-replications", type=int, default=60)
    c.add_argument("--root", default=str(PARTS))
    a = parser.parse_args()
    root = Path(a.root)
    if a.command == "run":
        run_blocks(a.model, _parse_ids(a.ids), a.block, broken=a.broken, deadline=a.deadline, batch=a.batch,
                   root=root, claims=Path(a.claims))
        return 0
    if a.command == "status":
        status(a.models, root)
        return 0
    return combine(a.model, a.replications, a.broken_replications, root)


if __name__ == "__main__":
    raise SystemExit(main())
