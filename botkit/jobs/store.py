"""An APScheduler 3 job store on the bots' SQLite state file, with the standard library only.

APScheduler ships a persistent store for SQLAlchemy; botkit already keeps a SQLite file for bot
state, so jobs live in a table of that file instead of pulling SQLAlchemy in. Jobs are stored the
way APScheduler's own stores do it: the pickled ``Job.__getstate__()`` plus the next run time as a
UTC timestamp for the due-job query.

APScheduler calls a job store synchronously from the event loop. The calls are few (one per
scheduler wake-up or job change) and touch a small indexed table, so they stay on the loop; the
busy_timeout bounds the rare wait for a lock held by the state store's writer.
"""

from __future__ import annotations

import pickle
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime

from botkit.errors import StateError

__all__ = ["SQLiteJobStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS botkit_jobs (
    id TEXT PRIMARY KEY,
    next_run_time REAL,
    job_state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS botkit_jobs_next_run ON botkit_jobs (next_run_time);
"""


class SQLiteJobStore(BaseJobStore):  # type: ignore[misc]
    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False,
                                 isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            if db is not None:
                db.close()  # a file that is not a database: don't leak the connection
            raise StateError(f"cannot open the job table in {self.path}: {exc}") from exc
        self._db = db

    def shutdown(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StateError(f"the job store {self.path} is not open")
        return self._db

    # -- reading -----------------------------------------------------------------------------

    def _jobs(self, where: str = "", params: tuple[Any, ...] = ()) -> list[Job]:
        with self._lock:
            # ``where`` is one of this module's fixed clauses; values go in as parameters.
            rows = self._conn().execute(
                f"SELECT id, job_state FROM botkit_jobs {where} "
                "ORDER BY next_run_time IS NULL, next_run_time, id", params).fetchall()
        jobs: list[Job] = []
        broken: list[str] = []
        for job_id, state in rows:
            try:
                jobs.append(self._reconstitute(state))
            except Exception:
                # A job whose target no longer imports (a plugin was removed) must not stop
                # the others; it is logged and dropped.
                self._logger.exception("dropping job %s: it can't be restored", job_id)
                broken.append(job_id)
        for job_id in broken:
            self.remove_job(job_id)
        return jobs

    def _reconstitute(self, state: bytes) -> Job:
        # Only this class writes the table, in the bots' own state file.
        job_state = pickle.loads(state)
        job_state["jobstore"] = self
        job = Job.__new__(Job)
        job.__setstate__(job_state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def lookup_job(self, job_id: str) -> Job | None:
        jobs = self._jobs("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        return self._jobs("WHERE next_run_time <= ?", (datetime_to_utc_timestamp(now),))

    def get_next_run_time(self) -> datetime | None:
        with self._lock:
            row = self._conn().execute(
                "SELECT next_run_time FROM botkit_jobs WHERE next_run_time IS NOT NULL "
                "ORDER BY next_run_time LIMIT 1").fetchone()
        return utc_timestamp_to_datetime(row[0]) if row else None

    def get_all_jobs(self) -> list[Job]:
        jobs = self._jobs()
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    # -- writing -----------------------------------------------------------------------------

    def _row(self, job: Job) -> tuple[float | None, bytes]:
        return (datetime_to_utc_timestamp(job.next_run_time),
                pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL))

    def add_job(self, job: Job) -> None:
        next_run, state = self._row(job)
        with self._lock:
            try:
                self._conn().execute(
                    "INSERT INTO botkit_jobs (id, next_run_time, job_state) VALUES (?, ?, ?)",
                    (job.id, next_run, state))
            except sqlite3.IntegrityError as exc:
                raise ConflictingIdError(job.id) from exc

    def update_job(self, job: Job) -> None:
        next_run, state = self._row(job)
        with self._lock:
            cursor = self._conn().execute(
                "UPDATE botkit_jobs SET next_run_time = ?, job_state = ? WHERE id = ?",
                (next_run, state, job.id))
        if cursor.rowcount == 0:
            raise JobLookupError(job.id)

    def remove_job(self, job_id: str) -> None:
        with self._lock:
            cursor = self._conn().execute("DELETE FROM botkit_jobs WHERE id = ?", (job_id,))
        if cursor.rowcount == 0:
            raise JobLookupError(job_id)

    def remove_all_jobs(self) -> None:
        with self._lock:
            self._conn().execute("DELETE FROM botkit_jobs")

    def __repr__(self) -> str:
        return f"<SQLiteJobStore {self.path}>"
