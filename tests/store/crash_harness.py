"""Crash and concurrency harness: a fork server ("zygote") whose children write to a store until killed.

The zygote is one Python process that imports the store once (about 4 s on a busy 2-core machine) and then
forks a writer per request in milliseconds, so a test can SIGKILL many writers at random points cheaply.
It runs without JAX (it reports whether JAX got imported: the store must not import it).

Protocol on stdin/stdout, one line each: ``go <job> <store> <ackfile> <arg>`` -> ``pid <pid>``;
``wait <pid>`` -> ``status <exit code or -signal>``. Writers append one line per *completed* operation to
the ack file (``commit <patient> <version>``, ``record <patient> <version>``, ``conflict ...``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATIENTS = ("crash-A", "crash-B", "crash-C")
DRAWS = 10  # posteriors of about 9 KB


def _ack(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())  # O_APPEND; survives SIGKILL once written (no fsync needed for that)


def _writer_loop(store_dir: str, fd: int, arg: str) -> None:
    from storekit import make_idata, seed_for

    from bayestwin.store import TwinStore

    store = TwinStore.open(store_dir, actor=f"writer-{os.getpid()}")
    rng = random.Random(int(arg))
    while True:
        patient = rng.choice(PATIENTS)
        head = store.head(patient)
        version = (head or 0) + 1
        store.commit_version(patient, posterior=make_idata(seed_for(patient, version), draws=DRAWS),
                             data_hash=f"sha256:{patient}/{version}", spec_hash="sha256:spec",
                             population_version="pop-1", diagnostics={"version": version}, expected_parent=head)
        _ack(fd, f"commit {patient} {version}")
        store.add_record(patient, version, "forecast", {"version": version})
        _ack(fd, f"record {patient} {version}")


def _race(store_dir: str, fd: int, arg: str) -> None:
    """Wait for the start file, commit version 1 of `patient` (or of the given patient), retry once on conflict."""
    from storekit import make_idata

    from bayestwin.exceptions import StoreConflictError
    from bayestwin.store import TwinStore

    patient, seed = arg.split(":")
    store = TwinStore.open(store_dir, actor=f"racer-{seed}")
    start = Path(store_dir) / "start"
    while not start.exists():
        time.sleep(0.001)
    fields = dict(posterior=make_idata(int(seed)), data_hash=f"d{seed}", spec_hash="s", population_version=None,
                  diagnostics={"seed": int(seed)})
    try:
        version = store.commit_version(patient, expected_parent=None, **fields)
    except StoreConflictError as err:
        _ack(fd, f"conflict {patient} {seed} {err}")
        head = store.head(patient)
        version = store.commit_version(patient, expected_parent=head, **fields)
    _ack(fd, f"commit {patient} {version} {seed}")


def _zygote() -> None:
    sys.path.insert(0, str(HERE))
    from storekit import make_idata

    from bayestwin.store.netcdf import idata_from_bytes, idata_to_bytes

    idata_from_bytes(idata_to_bytes(make_idata(0, draws=DRAWS)))  # preload: the slow (lazy) imports happen here

    jax = any(m == "jax" or m.startswith(("jax.", "numpyro", "diffrax")) for m in sys.modules)
    print(f"ready jax={jax}", flush=True)
    jobs = {"writer": _writer_loop, "race": _race}
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "go":
            job, store_dir, ackfile, arg = args
            pid = os.fork()
            if pid == 0:  # child: run the job, never return into the zygote loop
                code = 0
                try:
                    fd = os.open(ackfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    jobs[job](store_dir, fd, arg)
                except BaseException as err:  # reported through the exit code and the ack file
                    os.write(fd, f"error {type(err).__name__}: {err}\n".encode())
                    code = 1
                os._exit(code)
            print(f"pid {pid}", flush=True)
        elif cmd == "wait":
            _, status = os.waitpid(int(args[0]), 0)
            print(f"status {os.waitstatus_to_exitcode(status)}", flush=True)


class Zygote:
    """Client of the fork server; use as a context manager."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        ready = self._read()
        assert ready.startswith("ready"), ready
        self.jax_loaded = ready.endswith("True")

    def _read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def _send(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._read()

    def start(self, job: str, store: Path, ack: Path, arg: str) -> int:
        """Fork a child running `job`; return its pid."""
        return int(self._send(f"go {job} {store} {ack} {arg}").split()[1])

    def wait(self, pid: int) -> int:
        """Reap a child; its exit code, or minus the signal that ended it."""
        return int(self._send(f"wait {pid}").split()[1])

    def kill(self, pid: int) -> int:
        """SIGKILL a child and reap it."""
        os.kill(pid, signal.SIGKILL)
        return self.wait(pid)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def run_crash_test(store_dir: Path, kills: int, *, seed: int = 0, max_delay_s: float = 0.35,
                   zygote: Zygote | None = None) -> dict[str, int]:
    """Kill `kills` writers at random points; after each, check the store completely. Returns counts."""
    if zygote is None:
        from storekit import KEY

        with Zygote({**os.environ, "BAYESTWIN_PSEUDONYM_KEY": KEY}) as own:
            return run_crash_test(store_dir, kills, seed=seed, max_delay_s=max_delay_s, zygote=own)
    from storekit import KEY, assert_idata_identical, make_idata, seed_for

    from bayestwin.store import TwinStore

    rng = random.Random(seed)
    acked: set[tuple[str, int]] = set()
    recorded: set[tuple[str, int]] = set()
    checked: set[tuple[str, int]] = set()
    counts = {"kills": 0, "killed_by_sigkill": 0, "versions": 0, "records": 0, "leftover_tmp": 0,
              "unreferenced": 0}
    assert not zygote.jax_loaded, "importing bayestwin.store imported JAX"
    for k in range(kills):
        ack = store_dir.parent / f"ack-{k}.txt"
        pid = zygote.start("writer", store_dir, ack, str(rng.randrange(10**9)))
        # Wait for the writer's first acknowledged commit, then kill at a random point of the writes that follow:
        # a fixed delay alone made the progress check depend on the machine's load (4 versions in 10 kills
        # once, under load average 3.3).
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not (ack.exists() and ack.read_text().strip()):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, max_delay_s))
        status = zygote.kill(pid)
        counts["kills"] += 1
        counts["killed_by_sigkill"] += status == -signal.SIGKILL
        lines = ack.read_text().splitlines() if ack.exists() else []
        assert not any(line.startswith("error") for line in lines), lines
        for line in lines:
            what, patient, version = line.split()
            (acked if what == "commit" else recorded).add((patient, int(version)))
        store = TwinStore.open(store_dir, key=KEY)
        report = store.check_integrity(raise_on_error=True)
        counts["leftover_tmp"] = len(report.temporary_files)
        counts["unreferenced"] = len(report.unreferenced_files)
        for patient in PATIENTS:
            hist = store.history(patient)
            versions = hist["version"].tolist()
            assert versions == list(range(1, len(versions) + 1)), (patient, versions)  # no gap, nothing partial
            assert all(v in versions for p, v in acked if p == patient), "an acknowledged commit was lost"
            for version in versions:
                if (patient, version) in checked and k != kills - 1:
                    continue  # loaded bit-identically after an earlier kill; its file hash is re-checked above
                loaded = store.load_version(patient, version)
                assert_idata_identical(make_idata(seed_for(patient, version), draws=DRAWS), loaded.posterior)
                assert loaded.diagnostics == {"version": version}
                assert loaded.data_hash == f"sha256:{patient}/{version}"
                checked.add((patient, version))
            n_records = dict(zip(hist["version"], hist["n_records"], strict=True))
            assert all(n_records[v] >= 1 for p, v in recorded if p == patient), "an acknowledged record was lost"
        counts["versions"] = report.n_versions
        counts["records"] = report.n_records
        store.close()
    return counts


if __name__ == "__main__":
    _zygote()
