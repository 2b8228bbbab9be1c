"""An APScheduler 3 job store in Redis, shared by every replica (the ``cluster:`` section).

The same design as the SQLite store (:mod:`botkit.jobs.store`): APScheduler calls a job store
synchronously, on the event loop, so its reads are answered from memory and each change is
applied in memory at once and written soon after, coalesced per job, one batch at a time (a
``MULTI`` transaction), retried when Redis fails. The rows are the same JSON
(:mod:`botkit.jobs.codec`), never pickles, in one hash, ``botkit:{project}:jobs``, job id → row.

Every replica sees the same stored jobs: each write batch also bumps
``botkit:{project}:jobs:version``, and every store polls that counter (one GET a second,
:data:`REFRESH_INTERVAL`); when it moved, the store reads the hash again and brings its memory in
line (jobs added, changed or removed by another replica), keeping its own changes not yet
written. Which replica fires a job is not this store's business: a replica fires only the jobs of
the rooms it holds (see the leases).

Unlike the SQLite store, a row that can't be restored (its function is not loaded here) is
logged and skipped, not deleted: during a rolling deploy another replica may run the code
that can.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from redis.asyncio import Redis

from botkit.errors import StateError
from botkit.jobs.codec import JobRowError
from botkit.jobs.writebehind import Batch, WriteBehindJobStore
from botkit.state.redis import DEFAULT_TIMEOUT, key_prefix, redis_errors

__all__ = ["REFRESH_INTERVAL", "RedisJobStore"]

log = logging.getLogger("botkit.jobs.store")

REFRESH_INTERVAL = 1.0
"""Seconds between two looks at whether another replica changed the stored jobs."""


class RedisJobStore(WriteBehindJobStore):
    backlog_hint = "Redis is down or too slow"

    def __init__(self, client: Redis, project_id: str, *, timeout: float = DEFAULT_TIMEOUT,
                 url: str | None = None, refresh_interval: float = REFRESH_INTERVAL) -> None:
        super().__init__()
        self.client = client
        self.timeout = timeout
        self.refresh_interval = refresh_interval
        self._url = url
        self.key = f"{key_prefix(project_id)}jobs"
        self.where = self.key
        self._version_key = f"{self.key}:version"
        self._loaded: dict[str, str] | None = None
        self._texts: dict[str, str] = {}  # each job's row as last read or written
        self._version: str | None = None
        self._unrestorable: set[tuple[str, str]] = set()  # (id, row) already logged
        self._writing: asyncio.Task[None] | None = None
        self._in_flight = Batch()  # the batch _writing writes
        self._poller: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded is not None or self._started

    async def _read(self) -> tuple[str | None, dict[str, str]]:
        async with redis_errors(self.client, "reading the stored jobs", timeout=self.timeout,
                                url=self._url):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(self._version_key)
                pipe.hgetall(self.key)
                version, rows = await pipe.execute()
            return version, dict(rows)
        raise AssertionError("unreachable")  # for mypy: redis_errors re-raises

    async def load(self) -> None:
        """Read the stored jobs (StateError naming ``cluster.redis_url`` if Redis fails)."""
        if self.loaded:
            return
        self._version, self._loaded = await self._read()

    def start(self, scheduler: Any, alias: str) -> None:
        if self._loaded is None:
            raise StateError("the Redis job store is not loaded: await its load() "
                             "(BotScheduler.open()) before starting the scheduler")
        super().start(scheduler, alias)
        self._started = True
        rows, self._loaded = self._loaded, None
        for job_id, text in sorted(rows.items()):
            job = self._restorable(job_id, text)
            if job is not None:
                MemoryJobStore.add_job(self, job)
                self._texts[job_id] = text
        if self._poller is None and self.refresh_interval > 0:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="job store refresh")

    async def aclose(self) -> None:
        """Stop polling, write the changes still pending and wait for them (bounded by
        ``timeout``; StateError if Redis does not take them: they are lost, and logged)."""
        self._started = False
        self._loaded = None
        if self._retry is not None:
            self._retry.cancel()
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.wait([poller])
        try:
            async with asyncio.timeout(self.timeout):
                while (writing := self._writing) is not None:
                    await asyncio.wait([writing])
            if self._pending:
                batch, self._pending = self._pending, Batch()
                await self._write(batch)
        except (StateError, TimeoutError):
            log.error("job store %s: job changes could not be written before closing",
                      self.key)
            raise

    # -- seeing the other replicas' changes ----------------------------------------------------

    async def _poll(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except StateError as exc:
                if not failing:  # once per outage, not once a second
                    log.warning("job store %s: can't read the other replicas' job changes: "
                                "%s", self.key, exc)
                failing = True
                continue
            except Exception:  # a bug of ours: logged, and the next poll tries again
                log.exception("job store %s: reading the other replicas' job changes failed",
                              self.key)
                continue
            if failing:
                log.info("job store %s: reading the other replicas' job changes again",
                         self.key)
            failing = False

    async def refresh(self) -> bool:
        """Bring the jobs in memory in line with Redis if another replica changed them; True
        if anything changed here."""
        async with redis_errors(self.client, "reading the stored jobs", timeout=self.timeout,
                                url=self._url):
            version = await self.client.get(self._version_key)
        if version == self._version or not self._started:
            return False
        version, rows = await self._read()
        if not self._started:
            return False
        self._version = version
        changed = False
        for job_id in [job_id for job_id in self._texts if job_id not in rows]:
            if not self._local(job_id):
                del self._texts[job_id]
                if job_id in self._jobs_index:
                    MemoryJobStore.remove_job(self, job_id)
                    changed = True
        for job_id, text in rows.items():
            if self._local(job_id):
                continue  # our own change, not yet written, is newer
            if self._texts.get(job_id) == text and job_id in self._jobs_index:
                continue
            job = self._restorable(job_id, text)
            if job is None:
                continue
            if job_id in self._jobs_index:
                MemoryJobStore.update_job(self, job)
            else:
                MemoryJobStore.add_job(self, job)
            self._texts[job_id] = text
            changed = True
        if changed and self._scheduler is not None and self._scheduler.running:
            self._scheduler.wakeup()  # a job may now be due sooner
        return changed

    def _local(self, job_id: str) -> bool:
        """Whether a change of ours to ``job_id`` is not yet written (Redis has an older row)."""
        return any(job_id in batch.rows or batch.clear
                   for batch in (self._pending, self._in_flight))

    def _restorable(self, job_id: str, text: str) -> Job | None:
        try:
            return self._restore(job_id, text)
        except (JobRowError, ValueError, TypeError, LookupError) as exc:
            if (job_id, text) not in self._unrestorable:
                self._unrestorable.add((job_id, text))
                log.error("skipping job %s of %s: it can't be restored here: %s", job_id,
                          self.key, exc)
            return None

    # -- writing: to Redis, one MULTI per batch --------------------------------------------------

    async def _write(self, batch: Batch) -> None:
        async with (redis_errors(self.client, "writing the stored jobs", timeout=self.timeout,
                                 url=self._url),
                    self.client.pipeline(transaction=True) as pipe):
            if batch.clear:
                pipe.delete(self.key)
            removed = [job_id for job_id, row in batch.rows.items() if row is None]
            written = {job_id: row[1] for job_id, row in batch.rows.items() if row is not None}
            if removed:
                pipe.hdel(self.key, *removed)
            if written:
                pipe.hset(self.key, mapping=written)
            pipe.incr(self._version_key)
            results = await pipe.execute()
        if batch.clear:
            self._texts.clear()
        for job_id, row in batch.rows.items():
            if row is None:
                self._texts.pop(job_id, None)
            else:
                self._texts[job_id] = row[1]
        if self._version is not None and str(int(self._version) + 1) == str(results[-1]):
            self._version = str(results[-1])  # only our write since the last read

    def _flush(self) -> None:
        """Start writing the pending changes, unless a batch is being written (the next goes
        when it is done)."""
        if self._writing is not None or not self._started or not self._pending:
            return
        batch, self._pending = self._pending, Batch()
        self._in_flight = batch
        self._writing = asyncio.get_running_loop().create_task(
            self._write(batch), name="job store write")
        self._writing.add_done_callback(lambda task: self._written(batch, task))

    def _written(self, batch: Batch, writing: asyncio.Task[None]) -> None:
        self._writing, self._in_flight = None, Batch()
        if writing.cancelled():
            self._failed(batch, None)
        elif (exc := writing.exception()) is not None:
            self._failed(batch, exc)
        else:
            self._flush()

    def _closing(self) -> bool:
        return not self._started

    def __repr__(self) -> str:
        return f"<RedisJobStore {self.key}>"
