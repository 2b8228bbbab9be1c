"""Timed jobs on APScheduler 3 (``AsyncIOScheduler``), owned by the runtime.

Two kinds of jobs:

* **static** jobs come from ``@bot.every`` / ``@bot.cron`` and from ``schedules:`` in bots.yaml.
  They are declared again at every start, so they live in memory;
* **dynamic** jobs come from ``ctx.schedule(...)``. They are stored in the state file's job table
  (read off the event loop by :meth:`BotScheduler.open`, written by the file's worker thread, see
  :mod:`botkit.jobs.store`) and survive restarts: a job missed while the daemon was down runs
  once at start when still within the misfire grace period (coalesced), and is logged as missed
  otherwise.

A job is stored as JSON data only — the bot's name, a reference to a module-level function, the
room and JSON keyword arguments — never as a pickle, and a stored job may only name a function of
a module the process has already imported: the state file can't make the daemon run other code.
Jobs run through :class:`_BotkitExecutor`, which hands each fire *with its scheduled time* to the
bot, so that what a fire publishes carries an idempotency key made of the bot, the job id and
that time: one fire is never announced twice, even when a restart replays it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import obj_to_ref, ref_to_obj

from botkit.errors import PluginError, StateError
from botkit.jobs.codec import JobRowError, loaded_reference
from botkit.jobs.store import SQLiteJobStore
from botkit.ulid import new_ulid

if TYPE_CHECKING:  # redis is the cluster extra: imported only when cluster: is set
    from botkit.jobs.redis_store import RedisJobStore

__all__ = [
    "BotScheduler",
    "JobHost",
    "ScheduleSpec",
    "ScheduledJob",
    "plan_job",
    "scheduled_job",
    "static_job_id",
]

log = logging.getLogger("botkit.jobs.scheduler")

STATIC = "static"
DYNAMIC = "dynamic"
# NaN made timedelta raise a puzzling "cannot convert float NaN to integer", inf an
# OverflowError; ten years is far past any reminder and far from datetime's limits.
_MAX_DELAY = 10 * 365 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A static job of a bot: a handler (``fn``) or a fixed announcement (``text``)."""

    key: str
    trigger: BaseTrigger
    rooms: tuple[str, ...] = ()
    fn: Callable[..., Any] | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    id: str
    """The id as the bot knows it (without the bot's prefix)."""
    run_at: datetime | None
    room: str | None


class JobHost(Protocol):
    """What the scheduler needs of a running bot (BotRunner provides it)."""

    name: str

    async def run_job(self, job_id: str, run_time: datetime, target: str,
                      room: str | None, kwargs: Mapping[str, Any]) -> None: ...


def scheduled_job(*args: Any, **kwargs: Any) -> None:
    """The callable every botkit job names, so that a stored job references importable code.
    The botkit executor never calls it: it reads the job's arguments and runs the bot's job."""
    raise RuntimeError("botkit jobs run through the botkit executor")


def function_reference(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level function, or PluginError: a job that must survive
    a restart can only name code that can be imported again."""
    refused = PluginError(
        f"{getattr(fn, '__qualname__', fn)!r} can't be scheduled: a scheduled job must be a "
        "function defined at module level (not a lambda, method or nested function)")
    try:
        reference: str = obj_to_ref(fn)
        # The reference must lead back to ``fn`` itself: that of a bound method (or of a
        # callable object) names the plain function (or the class), which would be called
        # with the context in place of ``self``.
        restored = ref_to_obj(reference)
    except (ValueError, TypeError, LookupError) as exc:
        raise refused from exc
    if restored != fn:
        raise refused
    return reference


def _check_json(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return dict(json.loads(json.dumps(kwargs)))
    except (TypeError, ValueError) as exc:
        raise StateError(f"job arguments must be JSON values (they are stored): {exc}") from exc


def plan_job(fn: Callable[..., Any], *, at: datetime | None, delay: float | None,
             kwargs: Mapping[str, Any] | None, now: datetime
             ) -> tuple[datetime, str, dict[str, Any]]:
    """Check a ``ctx.schedule()`` call. Returns when the job runs, the reference of its
    function and its keyword arguments as stored (JSON values)."""
    if (at is None) == (delay is None):
        raise ValueError("schedule() needs exactly one of at= (a datetime) or delay= "
                         "(seconds)")
    if at is not None and at.tzinfo is None:
        raise ValueError("at= must be timezone-aware, e.g. datetime.now(UTC)")
    if delay is not None and not 0 <= delay <= _MAX_DELAY:
        raise ValueError("delay= must be a number of seconds from 0 to 10 years, got "
                         f"{delay!r}")
    when = at if at is not None else now + timedelta(seconds=delay or 0.0)
    return when, function_reference(fn), _check_json(kwargs or {})


def _counting_from_now(trigger: BaseTrigger) -> BaseTrigger:
    """``trigger``, an interval counting from now. An IntervalTrigger counts from when it was
    made — ``@bot.every`` makes it when the plugin is imported — so the first fire after a
    start would come at any point of the first interval (at once after an in-process restart)
    instead of one interval after the start."""
    if not isinstance(trigger, IntervalTrigger):
        return trigger
    return IntervalTrigger(seconds=trigger.interval_length, timezone=trigger.timezone,
                           end_date=trigger.end_date, jitter=trigger.jitter)


def static_job_id(host: str, key: str, room: str | None) -> str:
    """The id of a static job in one room: ``<bot>:static:<key>:<room or ->``."""
    return f"{host}:{STATIC}:{key}:{room or '-'}"


class _BotkitExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs each fire as a task it owns, passing the scheduled time along."""

    def __init__(self, scheduler: BotScheduler) -> None:
        super().__init__()
        self._owner = scheduler
        self._tasks: set[asyncio.Task[None]] = set()

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job, run_times),
                                                      name=f"job {job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job, run_times: list[datetime]) -> None:
        events = []
        try:
            for run_time in run_times:
                late = datetime.now(UTC) - run_time
                # The grace in force now, not the one stored with the job when it was made:
                # an operator who changes it expects it to apply to jobs already waiting.
                grace = self._owner.misfire_grace
                if late > timedelta(seconds=grace):
                    log.warning("job %s missed its time %s by %s (beyond the %ss grace)",
                                job.id, run_time.isoformat(), late, grace)
                    self._owner.missed += 1
                    events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id,
                                                    job._jobstore_alias, run_time))
                    continue
                await self._owner.fire(job, run_time)
                events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id,
                                                job._jobstore_alias, run_time))
        finally:
            self._run_job_success(job.id, events)

    async def drain(self, timeout: float) -> None:
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("%d job(s) still running at shutdown were cancelled", len(pending))
            await asyncio.wait(pending)

    def shutdown(self, wait: bool = True) -> None:
        for task in self._tasks:
            task.cancel()


class BotScheduler:
    """One scheduler for all bots of a runtime."""

    def __init__(self, *, store_path: Path | None, misfire_grace: float = 300.0,
                 job_store: RedisJobStore | None = None) -> None:
        """Jobs of ``ctx.schedule`` are stored in ``job_store`` (replicas: Redis) if given,
        else in the SQLite file ``store_path``, else only in memory."""
        self._hosts: dict[str, JobHost] = {}
        self._static: dict[tuple[str, str], ScheduleSpec] = {}
        self.missed = 0
        self.misfire_grace = misfire_grace
        self._closed = False
        self._executor = _BotkitExecutor(self)
        self._stored: SQLiteJobStore | RedisJobStore | None = (
            job_store if job_store is not None
            else SQLiteJobStore(store_path) if store_path is not None else None)
        dynamic = self._stored if self._stored is not None else MemoryJobStore()
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            jobstores={DYNAMIC: dynamic, STATIC: MemoryJobStore()},
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "misfire_grace_time": int(misfire_grace),
                          "max_instances": 1})

    async def open(self) -> None:
        """Read the stored jobs, off the event loop. Call it once before using the scheduler
        when it keeps jobs in a file (StateError, StateInUseError, StateTimeoutError)."""
        if self._stored is not None and not self._closed:
            await self._stored.load()

    @property
    def running(self) -> bool:
        """True while jobs fire: from :meth:`start` until :meth:`stop_firing`/:meth:`shutdown`."""
        return bool(self._scheduler.state == STATE_RUNNING)

    def _opened(self) -> AsyncIOScheduler:
        """The APScheduler with its job stores open. Bots use their jobs before the runtime
        starts firing them (in on_start, or while another bot still connects) and after it
        stopped (finishing their envelopes): the stores are then opened with firing paused.
        A stopped APScheduler would keep new jobs in its pending list — lost at shutdown and
        without a run time to list — and would not see the stored ones at all."""
        if self._closed:
            raise StateError("the scheduler is shut down: jobs can no longer be scheduled, "
                             "listed or cancelled")
        if self._stored is not None and not self._stored.loaded:
            raise StateError("the scheduler's job store is not loaded: await "
                             "BotScheduler.open() first")
        if not self._scheduler.running:
            self._scheduler.start(paused=True)
        return self._scheduler

    def add_host(self, host: JobHost, specs: list[ScheduleSpec]) -> None:
        """Register a bot and its static jobs (before or after start)."""
        self._hosts[host.name] = host
        for spec in specs:
            self._static[(host.name, spec.key)] = spec
            trigger = _counting_from_now(spec.trigger)
            for room in spec.rooms or (None,):
                job_id = static_job_id(host.name, spec.key, room)
                self._scheduler.add_job(scheduled_job, trigger, id=job_id,
                                        args=(host.name, f"{STATIC}:{spec.key}", room),
                                        jobstore=STATIC, replace_existing=True)

    def static_spec(self, host: str, target: str) -> ScheduleSpec | None:
        """The static job a fire's target names (``static:<key>``), if any."""
        return self._static.get((host, target.removeprefix(f"{STATIC}:")))

    def start(self) -> None:
        """Start firing jobs. Static jobs count from now, however long ago they were declared
        (the job stores may have been opened early, with firing paused)."""
        if not self._scheduler.running:
            self._opened()
        for job in self._scheduler.get_jobs(jobstore=STATIC):
            job.reschedule(_counting_from_now(job.trigger))
        self._scheduler.resume()

    async def stop_firing(self, grace: float) -> None:
        """Stop firing and let fires under way finish within ``grace``. The job stores stay
        open until :meth:`shutdown`: bots finishing their envelopes may still schedule and
        cancel jobs, which are stored for the next start."""
        if self._scheduler.running:
            self._scheduler.pause()
            await self._executor.drain(grace)

    async def shutdown(self, grace: float) -> None:
        """Stop firing, let fires under way finish within ``grace``, close the job stores
        (writing the stored jobs' last changes: StateError if the file does not take them).
        Using jobs afterwards raises StateError."""
        await self.stop_firing(grace)
        if self._closed:
            return
        self._closed = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            # AsyncIOScheduler shuts down in a loop callback, queued just now: let it run, so
            # that the job stores are closed when this returns.
            await asyncio.sleep(0)
        if self._stored is not None:
            await self._stored.aclose()

    async def fire(self, job: Job, run_time: datetime) -> None:
        host_name, target, room = job.args
        host = self._hosts.get(host_name)
        if host is None:
            log.warning("job %s belongs to bot %s, which is not running; skipped", job.id,
                        host_name)
            return
        short_id = job.id.removeprefix(f"{host_name}:")
        if job._jobstore_alias == DYNAMIC:
            try:
                # Read from the state file: it may name only code that is already loaded.
                loaded_reference(target)
            except JobRowError as exc:
                log.error("job %s skipped: its target %s", job.id, exc)
                return
        await host.run_job(short_id, run_time, target, room, job.kwargs)

    # -- dynamic jobs ------------------------------------------------------------------------

    def schedule(self, host: str, fn: Callable[..., Any], *, at: datetime | None = None,
                 delay: float | None = None, id: str | None = None, room: str | None = None,
                 kwargs: Mapping[str, Any] | None = None) -> str:
        when, target, arguments = plan_job(fn, at=at, delay=delay, kwargs=kwargs,
                                           now=datetime.now(UTC))
        short_id = id or new_ulid()
        self._opened().add_job(
            scheduled_job, DateTrigger(run_date=when), id=f"{host}:{short_id}",
            args=(host, target, room), kwargs=arguments, jobstore=DYNAMIC,
            replace_existing=True)
        return short_id

    def cancel(self, host: str, job_id: str) -> bool:
        try:
            self._opened().remove_job(f"{host}:{job_id}", jobstore=DYNAMIC)
        except JobLookupError:
            return False
        return True

    def jobs(self, host: str, prefix: str = "") -> list[ScheduledJob]:
        start = f"{host}:{prefix}"
        return [ScheduledJob(job.id.removeprefix(f"{host}:"), job.next_run_time, job.args[2])
                for job in self._opened().get_jobs(jobstore=DYNAMIC)
                if job.id.startswith(start)]
