"""What the SQLite and the Redis job stores share: APScheduler's reads answered from memory, and
each change applied in memory at once and written soon after.

APScheduler 3 calls a job store synchronously, on the event loop, at every wake-up and job
change; a store that waited for a file lock or a network round trip there would stop every bot
of the process. So a :class:`WriteBehindJobStore` keeps APScheduler's own ``MemoryJobStore`` as
the truth for reads, and hands each change to its backend (:meth:`_flush`, the subclass's):
changes waiting to be written are coalesced per job (the latest wins; the backlog is bounded by
the number of jobs and by :data:`MAX_PENDING`), one batch is written at a time, and a batch that
fails is written again later. Rows are JSON (:mod:`botkit.jobs.codec`), never pickles.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.util import datetime_to_utc_timestamp

from botkit.errors import StateError
from botkit.jobs.codec import JobRowError, decode_job, encode_job

__all__ = ["MAX_PENDING", "RETRY_AFTER", "Batch", "Row", "WriteBehindJobStore"]

log = logging.getLogger("botkit.jobs.store")

MAX_PENDING = 10_000
"""Jobs with a change not yet written, at most; beyond, a change is refused (StateError)."""
RETRY_AFTER = 1.0
"""Seconds before a batch that failed is written again."""

Row = tuple[float | None, str]
"""A job's due time (for people reading the store) and its JSON."""


@dataclass
class Batch:
    """Changes to write: all rows deleted first (``clear``), then each job's latest row
    (None: delete it)."""

    clear: bool = False
    rows: dict[str, Row | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.clear or bool(self.rows)

    def under(self, newer: Batch) -> Batch:
        """This batch with ``newer`` applied on top (for a batch that must be written again)."""
        if newer.clear:
            return newer
        return Batch(self.clear, {**self.rows, **newer.rows})


class WriteBehindJobStore(MemoryJobStore):  # type: ignore[misc]
    """The shared half of a job store; a subclass writes (:meth:`_flush`) and says where
    (:attr:`where`, :attr:`backlog_hint`)."""

    where = "the job store"
    """How messages name this store (a file, a Redis key)."""
    backlog_hint = "it is too slow"
    """Why changes would pile up, for the message that refuses one more."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._pending = Batch()
        self._retry: asyncio.TimerHandle | None = None

    def shutdown(self) -> None:
        """APScheduler's stop: forget the jobs in memory (changes still pending are written by
        the subclass's ``aclose``)."""
        self._started = False
        MemoryJobStore.remove_all_jobs(self)

    # -- reading: from memory ------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._started:
            raise StateError(f"the job store {self.where} is not open")

    def lookup_job(self, job_id: str) -> Job | None:
        self._check_open()
        job: Job | None = super().lookup_job(job_id)
        return job

    def get_due_jobs(self, now: datetime) -> list[Job]:
        self._check_open()
        jobs: list[Job] = super().get_due_jobs(now)
        return jobs

    def get_next_run_time(self) -> datetime | None:
        self._check_open()
        when: datetime | None = super().get_next_run_time()
        return when

    def get_all_jobs(self) -> list[Job]:
        self._check_open()
        jobs: list[Job] = super().get_all_jobs()
        return jobs

    # -- writing: to memory now, to the backend soon -------------------------------------------

    def add_job(self, job: Job) -> None:
        self._check_open()
        if job.id in self._jobs_index:
            raise ConflictingIdError(job.id)
        stored, row = self._stored(job)
        super().add_job(stored)
        self._record(job.id, row)

    def update_job(self, job: Job) -> None:
        self._check_open()
        if job.id not in self._jobs_index:
            raise JobLookupError(job.id)
        stored, row = self._stored(job)
        super().update_job(stored)
        self._record(job.id, row)

    def remove_job(self, job_id: str) -> None:
        self._check_open()
        super().remove_job(job_id)
        self._record(job_id, None)

    def remove_all_jobs(self) -> None:
        self._check_open()
        super().remove_all_jobs()
        self._pending = Batch(clear=True)
        self._flush()

    def _stored(self, job: Job) -> tuple[Job, Row]:
        """The job as it will be read back, and its row. Kept in memory in that form, so that a
        job that would not survive a restart fails now, in the call that made it."""
        if job.id not in self._pending.rows and len(self._pending.rows) >= MAX_PENDING:
            raise StateError(f"{self.where}: {MAX_PENDING} job changes wait to be written; "
                             f"{self.backlog_hint}")
        text = encode_job(job)
        try:
            stored = self._restore(job.id, text)
        except JobRowError as exc:
            raise StateError(f"job {job.id} can't be stored: {exc}") from exc
        return stored, (datetime_to_utc_timestamp(job.next_run_time), text)

    def _restore(self, job_id: str, text: str) -> Job:
        job: Job = Job.__new__(Job)
        job.__setstate__(decode_job(job_id, text))
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _record(self, job_id: str, row: Row | None) -> None:
        self._pending.rows[job_id] = row
        self._flush()

    def _flush(self) -> None:
        """Start writing the pending changes, unless a batch is being written."""
        raise NotImplementedError

    def _closing(self) -> bool:
        """True once ``aclose`` took over writing what is pending (no retry timer then)."""
        raise NotImplementedError

    def _failed(self, batch: Batch, exc: BaseException | None) -> None:
        # Written again later: each row is the job's latest state, so a second write of a
        # batch that did get through changes nothing.
        self._pending = batch.under(self._pending)
        if self._closing():
            return
        log.warning("job store %s: %d job change(s) not written yet, retrying in %g s: %s",
                    self.where, len(self._pending.rows), RETRY_AFTER, exc)
        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.get_running_loop().call_later(RETRY_AFTER, self._flush)
