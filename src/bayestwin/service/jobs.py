"""Background jobs: long fits run on a bounded worker pool; callers poll the job for status and result.

A job has an id, a kind, an owner (token subject), an optional patient, a status (``queued``, ``running``,
``succeeded``, ``failed``, ``timed_out``), a progress fraction with a message, and when done a result (a
JSON-ready dict) or a precise error. Jobs on the same patient run one after another (a per-patient lock),
so concurrent appends never race to commit on the same parent version. A job past ``timeout_s`` is marked
``timed_out``; its work checks :meth:`JobContext.check` before committing, so nothing is committed after
the deadline (a running sampler cannot be interrupted: its thread finishes and its result is dropped).
Jobs live in memory: a restart forgets them (what they committed stays in the store).

Examples
--------
>>> jm = JobManager(workers=1, max_queued=4, timeout_s=60.0)
>>> job = jm.submit("demo", owner="dr.a", patient=None, work=lambda ctx: {"answer": 42})
>>> jm.wait(job.id, 5.0).status, jm.get(job.id).result
('succeeded', {'answer': 42})
>>> jm.shutdown()
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bayestwin.exceptions import ServiceBusyError, ServiceJobTimeoutError

__all__ = ["Job", "JobContext", "JobManager"]

_KEEP_FINISHED = 1000


@dataclass
class Job:
    """The state of one background job (read it through :meth:`JobManager.get`)."""

    id: str
    kind: str
    owner: str
    patient: str | None
    status: str = "queued"
    progress: float = 0.0
    message: str = "waiting for a worker"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None


class JobContext:
    """Handed to a job's work: report progress, and check the deadline before committing."""

    def __init__(self, manager: JobManager, job: Job, deadline: float) -> None:
        self._manager = manager
        self._job = job
        self.deadline = deadline

    def progress(self, fraction: float, message: str) -> None:
        """Report progress (0-1) and what the job is doing."""
        with self._manager._lock:
            self._job.progress = min(max(float(fraction), 0.0), 1.0)
            self._job.message = message

    def check(self) -> None:
        """Raise :class:`ServiceJobTimeoutError` if the deadline has passed (call it just before committing)."""
        if time.monotonic() > self.deadline:
            raise ServiceJobTimeoutError


class JobManager:
    """A bounded pool of background workers and the table of their jobs (thread-safe)."""

    def __init__(self, *, workers: int, max_queued: int, timeout_s: float,
                 describe_error: Callable[[BaseException], dict[str, Any]] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bayestwin-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._patient_locks: dict[str, threading.Lock] = {}
        self.max_queued = max_queued
        self.timeout_s = timeout_s
        self._describe = describe_error or (lambda err: {"error": "job failed", "detail": type(err).__name__})

    def submit(self, kind: str, *, owner: str, patient: str | None,
               work: Callable[[JobContext], dict[str, Any]]) -> Job:
        """Queue `work`; :class:`ServiceBusyError` if `max_queued` jobs already wait."""
        with self._lock:
            waiting = sum(j.status == "queued" for j in self._jobs.values())
            if waiting >= self.max_queued:
                raise ServiceBusyError(f"{waiting} jobs are already waiting; retry when some have finished")
            job = Job(id=uuid.uuid4().hex, kind=kind, owner=owner, patient=patient)
            self._jobs[job.id] = job
            self._forget_old()
            lock = self._patient_locks.setdefault(patient, threading.Lock()) if patient is not None else None
        self._pool.submit(self._run, job, work, lock)
        return job

    def _run(self, job: Job, work: Callable[[JobContext], dict[str, Any]], lock: threading.Lock | None) -> None:
        if lock is not None:
            lock.acquire()
        try:
            with self._lock:
                job.status, job.started, job.message = "running", time.time(), "started"
            ctx = JobContext(self, job, time.monotonic() + self.timeout_s)
            result = work(ctx)
            ctx.check()
            with self._lock:
                job.status, job.result, job.progress, job.message = "succeeded", result, 1.0, "done"
        except ServiceJobTimeoutError:
            with self._lock:
                job.status, job.message = "timed_out", f"passed its {self.timeout_s:g} s limit; nothing committed"
                job.error = {"error": "job timed out",
                             "detail": f"the job ran past the service's limit of {self.timeout_s:g} s and nothing "
                                       "was committed; ask for fewer draws or a smaller cohort"}
        except Exception as err:  # reported through the job, never raised into the pool
            with self._lock:
                job.status, job.message, job.error = "failed", "failed", self._describe(err)
        finally:
            with self._lock:
                job.finished = time.time()
            if lock is not None:
                lock.release()

    def get(self, job_id: str) -> Job | None:
        """The job with `job_id` (``None`` if unknown); a running job past its deadline reads ``timed_out``."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.status == "running" and job.started is not None \
                    and time.time() - job.started > self.timeout_s:
                job.status, job.message = "timed_out", f"passed its {self.timeout_s:g} s limit; nothing committed"
                job.error = {"error": "job timed out", "detail": f"the job ran past {self.timeout_s:g} s"}
            return job

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """Poll until the job is finished or `timeout_s` passed; return it (tests and the client use it)."""
        end = time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job is None or job.status not in ("queued", "running") or time.monotonic() > end:
                return job  # type: ignore[return-value]
            time.sleep(0.02)

    def busy(self) -> int:
        """The number of queued or running jobs."""
        with self._lock:
            return sum(j.status in ("queued", "running") for j in self._jobs.values())

    def shutdown(self) -> None:
        """Stop taking jobs and wait for the running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _forget_old(self) -> None:
        done = [j for j in self._jobs.values() if j.finished is not None]
        for j in sorted(done, key=lambda j: j.finished or 0.0)[:max(0, len(done) - _KEEP_FINISHED)]:
            del self._jobs[j.id]
