"""A virtual clock that is also the bot's scheduler: jobs fire when a test moves time forward.

It serves what the runtime's :class:`~botkit.jobs.scheduler.BotScheduler` serves (``ctx.schedule``,
``ctx.cancel``, ``ctx.jobs``, static jobs), with the same checks (:func:`plan_job`), and computes
fire times with APScheduler's own triggers. Moving the clock runs every fire due on the way, in
time order, through the bot's ``run_job`` with the fire's scheduled time — as the runtime's
executor does — and leaves the clock at each fire's time while it runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from botkit.jobs.scheduler import (
    STATIC,
    JobHost,
    ScheduledJob,
    ScheduleSpec,
    plan_job,
    static_job_id,
)
from botkit.ulid import new_ulid

__all__ = ["VirtualClock"]

_MAX_FIRES = 100_000
"""Fires in one move of the clock before it gives up: a job that reschedules itself at the
same time would otherwise hang the test."""


@dataclass(slots=True)
class _Job:
    id: str
    """The full id (``<bot>:<id>``), as the runtime's scheduler keeps it."""
    host: str
    target: str
    room: str | None
    kwargs: dict[str, Any]
    trigger: BaseTrigger
    next_run: datetime
    order: int
    dynamic: bool

    @property
    def short_id(self) -> str:
        return self.id.removeprefix(f"{self.host}:")


class VirtualClock:
    """Time that moves only when told, and the jobs that fire on the way."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("the clock's start must be timezone-aware, e.g. "
                             "datetime(2026, 1, 1, tzinfo=UTC)")
        self._now = now.astimezone(UTC)
        self._hosts: dict[str, JobHost] = {}
        self._static: dict[tuple[str, str], ScheduleSpec] = {}
        self._jobs: dict[str, _Job] = {}
        self._order = itertools.count()
        self.fired = 0
        """Fires run so far."""

    @property
    def now(self) -> datetime:
        return self._now

    def time(self) -> float:
        """The clock as a Unix timestamp (the state store's clock, for expiry)."""
        return self._now.timestamp()

    # -- the scheduler interface -------------------------------------------------------------

    def add_host(self, host: JobHost, specs: list[ScheduleSpec]) -> None:
        self._hosts[host.name] = host
        for spec in specs:
            self._static[(host.name, spec.key)] = spec
            trigger = _counting_from(spec.trigger, self._now)
            for room in spec.rooms or (None,):
                self._add(_Job(static_job_id(host.name, spec.key, room), host.name,
                               f"{STATIC}:{spec.key}", room, {}, trigger, self._now,
                               0, dynamic=False), first=True)

    def static_spec(self, host: str, target: str) -> ScheduleSpec | None:
        return self._static.get((host, target.removeprefix(f"{STATIC}:")))

    def schedule(self, host: str, fn: Callable[..., Any], *, at: datetime | None = None,
                 delay: float | None = None, id: str | None = None, room: str | None = None,
                 kwargs: Mapping[str, Any] | None = None) -> str:
        when, target, arguments = plan_job(fn, at=at, delay=delay, kwargs=kwargs,
                                           now=self._now)
        short_id = id or new_ulid()
        self._add(_Job(f"{host}:{short_id}", host, target, room, arguments,
                       DateTrigger(run_date=when), when, 0, dynamic=True), first=True)
        return short_id

    def cancel(self, host: str, job_id: str) -> bool:
        job = self._jobs.get(f"{host}:{job_id}")
        if job is None or not job.dynamic:
            return False
        del self._jobs[job.id]
        return True

    def jobs(self, host: str, prefix: str = "") -> list[ScheduledJob]:
        """The pending jobs ``ctx.schedule`` made for ``host``, soonest first."""
        return [ScheduledJob(job.short_id, job.next_run, job.room)
                for job in self._pending() if job.dynamic and job.host == host
                and job.short_id.startswith(prefix)]

    def pending(self) -> list[ScheduledJob]:
        """Every pending fire, static jobs included (their ids start with ``static:``)."""
        return [ScheduledJob(job.short_id, job.next_run, job.room) for job in self._pending()]

    # -- moving time -------------------------------------------------------------------------

    async def advance_to(self, when: datetime) -> int:
        """Move to ``when``, running each fire due on the way; returns how many ran."""
        if when.tzinfo is None:
            raise ValueError("give an aware datetime, e.g. h.now + timedelta(minutes=5)")
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError(f"the clock only moves forward: it is {self._now.isoformat()}, "
                             f"not before")
        fired = 0
        while (job := self._next_due(when)) is not None:
            fired += 1
            if fired > _MAX_FIRES:
                raise RuntimeError(f"more than {_MAX_FIRES} fires while moving the clock; "
                                   f"does job {job.short_id!r} reschedule itself endlessly?")
            run_time = job.next_run
            self._now = max(self._now, run_time)
            # As APScheduler does: the next fire is computed (or the job removed) before this
            # one runs, so the job does not list itself and may schedule its own successor.
            following = job.trigger.get_next_fire_time(run_time, run_time)
            if following is None:
                del self._jobs[job.id]
            else:
                job.next_run = following
            host = self._hosts.get(job.host)
            if host is not None:
                self.fired += 1
                await host.run_job(job.short_id, run_time, job.target, job.room, job.kwargs)
        self._now = when
        return fired

    def _add(self, job: _Job, *, first: bool) -> None:
        if first:
            next_run = job.trigger.get_next_fire_time(None, self._now)
            if next_run is None:
                self._jobs.pop(job.id, None)
                return
            job.next_run = next_run
        job.order = next(self._order)
        self._jobs[job.id] = job  # the same id again replaces the job, as in the runtime

    def _pending(self) -> list[_Job]:
        return sorted(self._jobs.values(), key=lambda job: (job.next_run, job.order))

    def _next_due(self, until: datetime) -> _Job | None:
        due = [job for job in self._jobs.values() if job.next_run <= until]
        return min(due, key=lambda job: (job.next_run, job.order)) if due else None


def _counting_from(trigger: BaseTrigger, now: datetime) -> BaseTrigger:
    """An interval trigger counts from when it was made: for ``@bot.every`` that is the
    plugin's import, which the runtime does just before it starts. The harness starts later
    (many tests may share one import), so its intervals count from the harness's own start:
    ``@bot.every(minutes=5)`` fires first five minutes after it."""
    if not isinstance(trigger, IntervalTrigger):
        return trigger
    return IntervalTrigger(seconds=trigger.interval_length, start_date=now + trigger.interval,
                           end_date=trigger.end_date, timezone=trigger.timezone,
                           jitter=trigger.jitter)
