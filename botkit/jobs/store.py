"""An APScheduler 3 job store on the bots' SQLite state file, served from memory.

APScheduler calls a job store synchronously, on the event loop, at every wake-up and job change.
Reading or writing the file there would stop every bot of the process while another connection
holds the file's lock, so the file is never touched from the loop:

* ``await load()`` reads the job table once, on the file's worker thread
  (:mod:`botkit.state.worker`, shared with ``ctx.state``), before APScheduler starts the store;
* APScheduler's reads are then answered from memory (APScheduler's own ``MemoryJobStore``);
* each change is applied in memory at once and handed to the worker thread to be written.
  Changes waiting to be written are coalesced per job (the latest wins), so the backlog is
  bounded by the number of jobs (and by MAX_PENDING); one batch is written at a time, in one
  transaction; a batch that fails is retried;
* ``await aclose()`` writes what is left, waits for it (bounded), and releases the file.

Rows are JSON (:mod:`botkit.jobs.codec`), never pickles: whoever can write the state file must
not be able to run code in the daemon. Rows of the pickle format of earlier versions are refused
with a message saying what to do; they are never unpickled.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.util import datetime_to_utc_timestamp

from botkit.errors import StateError, StateTimeoutError
from botkit.jobs.codec import JobRowError, decode_job, encode_job
from botkit.state.worker import DEFAULT_TIMEOUT, SQLiteFile

__all__ = ["MAX_PENDING", "SQLiteJobStore"]

log = logging.getLogger("botkit.jobs.store")

MAX_PENDING = 10_000
"""Jobs with a change not yet written, at most; beyond, a change is refused (StateError)."""
_RETRY_AFTER = 1.0

_SCHEMA = """CREATE TABLE IF NOT EXISTS botkit_jobs_json (
    id TEXT PRIMARY KEY, next_run_time REAL, job TEXT NOT NULL)"""
_UPSERT = """INSERT INTO botkit_jobs_json (id, next_run_time, job) VALUES (?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET next_run_time = excluded.next_run_time, job = excluded.job"""
_LEGACY_TABLE = "botkit_jobs"  # pickled rows of earlier versions: refused, never read

Row = tuple[float | None, str]
"""A job's due time (for people reading the file) and its JSON."""


@dataclass
class _Batch:
    """Changes to write: all rows deleted first (``clear``), then each job's latest row
    (None: delete it)."""

    clear: bool = False
    rows: dict[str, Row | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.clear or bool(self.rows)

    def under(self, newer: _Batch) -> _Batch:
        """This batch with ``newer`` applied on top (for a batch that must be written again)."""
        if newer.clear:
            return newer
        return _Batch(self.clear, {**self.rows, **newer.rows})


def _load(db: sqlite3.Connection, path: str) -> list[tuple[str, str]]:
    legacy = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (_LEGACY_TABLE,)).fetchone()
    if legacy is not None:
        (count,) = db.execute(f"SELECT COUNT(*) FROM {_LEGACY_TABLE}").fetchone()
        if count:
            raise StateError(
                f"state file {path}: table {_LEGACY_TABLE} holds {count} job(s) stored as "
                "pickles by an earlier botkit, which botkit no longer loads (unpickling a file "
                "that others can write would run their code). Set them aside with: sqlite3 "
                f"{path} 'ALTER TABLE {_LEGACY_TABLE} RENAME TO {_LEGACY_TABLE}_pickled' "
                "(or drop the table), then schedule those jobs again")
        db.execute(f"DROP TABLE {_LEGACY_TABLE}")  # empty: nothing to lose
    db.execute(_SCHEMA)
    return [(str(job_id), str(text)) for job_id, text in
            db.execute("SELECT id, job FROM botkit_jobs_json ORDER BY id").fetchall()]


def _write(db: sqlite3.Connection, batch: _Batch) -> None:
    db.execute("BEGIN IMMEDIATE")
    with db:  # one transaction: commits, or rolls back on any error
        if batch.clear:
            db.execute("DELETE FROM botkit_jobs_json")
        for job_id, row in batch.rows.items():
            if row is None:
                db.execute("DELETE FROM botkit_jobs_json WHERE id = ?", (job_id,))
            else:
                db.execute(_UPSERT, (job_id, *row))


class SQLiteJobStore(MemoryJobStore):  # type: ignore[misc]
    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.path = Path(path)
        self.timeout = timeout
        self._file: SQLiteFile | None = None
        self._loaded: list[tuple[str, str]] = []
        self._started = False
        self._pending = _Batch()
        self._writing: asyncio.Future[None] | None = None
        self._retry: asyncio.TimerHandle | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._file is not None

    async def load(self) -> None:
        """Open the file and read the stored jobs, off the event loop (StateError,
        StateInUseError, StateTimeoutError)."""
        if self._file is not None:
            return
        file = await SQLiteFile.open(self.path, timeout=self.timeout)
        try:
            self._loaded = await file.call(_load, str(self.path))
        except BaseException:
            file.close_soon()
            raise
        self._file = file

    def start(self, scheduler: Any, alias: str) -> None:
        if self._file is None:
            raise StateError(f"the job store {self.path} is not loaded: await its load() "
                             "(BotScheduler.open()) before starting the scheduler")
        super().start(scheduler, alias)
        self._started = True
        rows, self._loaded = self._loaded, []
        for job_id, text in rows:
            try:
                job = self._restore(job_id, text)
            except (JobRowError, ValueError, TypeError, LookupError) as exc:
                # A job whose function no longer exists (a plugin was removed) or a row that
                # is not ours must not stop the others: logged, and deleted from the file.
                log.error("dropping job %s of %s: it can't be restored: %s", job_id, self.path,
                          exc)
                self._record(job_id, None)
                continue
            MemoryJobStore.add_job(self, job)

    def shutdown(self) -> None:
        """APScheduler's stop: forget the jobs in memory (changes still pending are written by
        :meth:`aclose`)."""
        self._started = False
        MemoryJobStore.remove_all_jobs(self)

    async def aclose(self) -> None:
        """Write the changes still pending and wait for them (StateTimeoutError naming the
        file if it stays locked: those changes are lost, and logged), then release the file."""
        file = self._file
        if file is None:
            return
        self._started = False
        try:
            await self._drain(file)
        except StateError:
            log.error("job store %s: job changes could not be written before closing",
                      self.path)
            raise
        finally:
            self._file = None
            if self._retry is not None:
                self._retry.cancel()
            await file.release()

    async def _drain(self, file: SQLiteFile) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + file.timeout
        while (writing := self._writing) is not None:
            done, _ = await asyncio.wait({writing}, timeout=max(0.0, deadline - loop.time()))
            if not done:
                raise StateTimeoutError(f"state file {self.path}: writing the jobs took longer "
                                        f"than {file.timeout:g} s")
        if self._pending:
            batch, self._pending = self._pending, _Batch()
            await file.call(_write, batch)

    # -- reading: from memory ------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._started:
            raise StateError(f"the job store {self.path} is not open")

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

    # -- writing: to memory now, to the file soon ----------------------------------------------

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
        self._pending = _Batch(clear=True)
        self._flush()

    def _stored(self, job: Job) -> tuple[Job, Row]:
        """The job as it will be read back from the file, and its row. Kept in memory in that
        form, so that a job that would not survive a restart fails now, in the call that made
        it."""
        if job.id not in self._pending.rows and len(self._pending.rows) >= MAX_PENDING:
            raise StateError(f"state file {self.path}: {MAX_PENDING} job changes wait to be "
                             "written; it is locked or too slow")
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
        """Hand the pending changes to the worker thread, unless a batch is being written (the
        next goes when it is done)."""
        if self._writing is not None or self._file is None or not self._pending:
            return
        batch, self._pending = self._pending, _Batch()
        try:
            future = self._file.submit(_write, batch)
        except StateError as exc:
            self._failed(batch, exc)
            return
        self._writing = asyncio.wrap_future(future)
        self._writing.add_done_callback(functools.partial(self._written, batch))

    def _written(self, batch: _Batch, writing: asyncio.Future[None]) -> None:
        self._writing = None
        if writing.cancelled():
            self._failed(batch, None)
        elif (exc := writing.exception()) is not None:
            self._failed(batch, exc)
        else:
            self._flush()

    def _failed(self, batch: _Batch, exc: BaseException | None) -> None:
        # Written again later: each row is the job's latest state, so a second write of a
        # batch that did get through changes nothing.
        self._pending = batch.under(self._pending)
        if self._file is None:
            return  # closing: aclose() writes what is pending
        log.warning("job store %s: %d job change(s) not written yet, retrying in %g s: %s",
                    self.path, len(self._pending.rows), _RETRY_AFTER, exc)
        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.get_running_loop().call_later(_RETRY_AFTER, self._flush)

    def __repr__(self) -> str:
        return f"<SQLiteJobStore {self.path}>"
