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
from pathlib import Path
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore

from botkit.errors import StateError, StateTimeoutError
from botkit.jobs.codec import JobRowError
from botkit.jobs.writebehind import MAX_PENDING, Batch, WriteBehindJobStore
from botkit.state.worker import DEFAULT_TIMEOUT, SQLiteFile

__all__ = ["MAX_PENDING", "SQLiteJobStore"]

log = logging.getLogger("botkit.jobs.store")

_SCHEMA = """CREATE TABLE IF NOT EXISTS botkit_jobs_json (
    id TEXT PRIMARY KEY, next_run_time REAL, job TEXT NOT NULL)"""
_UPSERT = """INSERT INTO botkit_jobs_json (id, next_run_time, job) VALUES (?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET next_run_time = excluded.next_run_time, job = excluded.job"""
_LEGACY_TABLE = "botkit_jobs"  # pickled rows of earlier versions: refused, never read

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


def _write(db: sqlite3.Connection, batch: Batch) -> None:
    db.execute("BEGIN IMMEDIATE")
    with db:  # one transaction: commits, or rolls back on any error
        if batch.clear:
            db.execute("DELETE FROM botkit_jobs_json")
        for job_id, row in batch.rows.items():
            if row is None:
                db.execute("DELETE FROM botkit_jobs_json WHERE id = ?", (job_id,))
            else:
                db.execute(_UPSERT, (job_id, *row))


class SQLiteJobStore(WriteBehindJobStore):
    backlog_hint = "it is locked or too slow"

    def __init__(self, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.path = Path(path)
        self.where = f"state file {self.path}"
        self.timeout = timeout
        self._file: SQLiteFile | None = None
        self._loaded: list[tuple[str, str]] = []
        self._writing: asyncio.Future[None] | None = None

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
            batch, self._pending = self._pending, Batch()
            await file.call(_write, batch)

    # -- writing: to the file, on its worker thread ---------------------------------------------

    def _flush(self) -> None:
        """Hand the pending changes to the worker thread, unless a batch is being written (the
        next goes when it is done)."""
        if self._writing is not None or self._file is None or not self._pending:
            return
        batch, self._pending = self._pending, Batch()
        try:
            future = self._file.submit(_write, batch)
        except StateError as exc:
            self._failed(batch, exc)
            return
        self._writing = asyncio.wrap_future(future)
        self._writing.add_done_callback(functools.partial(self._written, batch))

    def _written(self, batch: Batch, writing: asyncio.Future[None]) -> None:
        self._writing = None
        if writing.cancelled():
            self._failed(batch, None)
        elif (exc := writing.exception()) is not None:
            self._failed(batch, exc)
        else:
            self._flush()

    def _closing(self) -> bool:
        return self._file is None

    def __repr__(self) -> str:
        return f"<SQLiteJobStore {self.path}>"
