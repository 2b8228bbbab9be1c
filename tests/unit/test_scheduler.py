"""BotScheduler on a running loop, the scheduling decorators of Bot, static_schedules() and
the scheduling side of Context. Pure tests: a recording JobHost stands in for a BotRunner."""

from __future__ import annotations

import asyncio
import logging
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from botkit import Bot, Context
from botkit.config import parse_config
from botkit.context import BotServices
from botkit.errors import BotkitError, PluginError, StateError
from botkit.jobs.scheduler import BotScheduler, ScheduledJob, ScheduleSpec
from botkit.runtime.runner import LoadedBot, static_schedules

HOST = "bot"
TARGET = f"{__name__}:remind"


async def remind(ctx: Context, text: str = "") -> None:
    """A module-level job: what ctx.schedule stores a reference to."""


async def tick(ctx: Context) -> None:
    """A module-level handler for @bot.every (its key is its qualified name)."""


async def vip_only(ctx: Context) -> None:
    pass


class Reminder:
    async def remind(self, ctx: Context) -> None:
        """A method: its reference would name the plain function, called without ``self``."""


@dataclass
class Fire:
    job_id: str
    run_time: datetime
    target: str
    room: str | None
    kwargs: dict[str, Any]
    fired_at: datetime


@dataclass
class RecordingHost:
    """A JobHost that records each fire; ``hold`` keeps a fire running that long."""

    name: str = HOST
    hold: float = 0.0
    fires: list[Fire] = field(default_factory=list)
    finished: int = 0
    cancelled: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Mapping[str, Any]) -> None:
        self.fires.append(Fire(job_id, run_time, target, room, dict(kwargs),
                               datetime.now(UTC)))
        self.started.set()
        try:
            await asyncio.sleep(self.hold)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition still false after {timeout} s")
        await asyncio.sleep(0.01)


@pytest.fixture
async def make_scheduler() -> AsyncIterator[Callable[..., Awaitable[BotScheduler]]]:
    """Schedulers shut down at the end of the test, whatever happened."""
    made: list[BotScheduler] = []

    async def make(*, store_path: Path | None = None,
                   misfire_grace: float = 300.0) -> BotScheduler:
        scheduler = BotScheduler(store_path=store_path, misfire_grace=misfire_grace)
        made.append(scheduler)
        await scheduler.open()  # reads the stored jobs, as the runtime does before using it
        return scheduler

    try:
        yield make
    finally:
        for scheduler in made:
            await scheduler.shutdown(0)


@pytest.fixture
async def scheduler(make_scheduler: Callable[..., Awaitable[BotScheduler]]) -> BotScheduler:
    return await make_scheduler()


def started_with(scheduler: BotScheduler, *hosts: RecordingHost,
                 specs: list[ScheduleSpec] | None = None) -> BotScheduler:
    for host in hosts:
        scheduler.add_host(host, specs or [])
    scheduler.start()
    return scheduler


# --- ctx.schedule: firing ---------------------------------------------------------------------


async def test_a_delayed_job_fires_once_with_its_id_room_arguments_and_time(
        scheduler: BotScheduler) -> None:
    host = RecordingHost()
    started_with(scheduler, host)
    before = datetime.now(UTC)
    job_id = scheduler.schedule(HOST, remind, delay=0.1, id="later", room="lobby",
                                kwargs={"text": "hi", "n": [1, 2], "x": None})
    assert job_id == "later"
    (job,) = scheduler.jobs(HOST)
    assert job.id == "later"
    assert job.room == "lobby"
    assert job.run_at is not None
    assert before + timedelta(seconds=0.1) <= job.run_at <= datetime.now(UTC) + timedelta(
        seconds=0.1)

    await until(lambda: len(host.fires) == 1)
    (fire,) = host.fires
    assert (fire.job_id, fire.target, fire.room) == ("later", TARGET, "lobby")
    assert fire.kwargs == {"text": "hi", "n": [1, 2], "x": None}
    assert fire.run_time == job.run_at  # the scheduled time, not the time it ran
    assert fire.fired_at >= fire.run_time
    await asyncio.sleep(0.3)
    assert len(host.fires) == 1
    assert scheduler.jobs(HOST) == []  # a one-off job is gone once fired


async def test_a_job_at_an_aware_datetime_fires_at_that_time(scheduler: BotScheduler) -> None:
    host = RecordingHost()
    started_with(scheduler, host)
    at = datetime.now(UTC) + timedelta(seconds=0.15)
    generated = scheduler.schedule(HOST, remind, at=at)
    assert len(generated) == 26  # no id given: a ULID
    await until(lambda: len(host.fires) == 1)
    assert host.fires[0].run_time == at
    assert host.fires[0].job_id == generated
    assert host.fires[0].room is None


@pytest.mark.parametrize(("when", "message"), [
    ({"at": datetime(2030, 1, 1, 12, 0)}, "at= must be timezone-aware"),
    ({}, "exactly one of at= .* or delay="),
    ({"at": datetime(2030, 1, 1, tzinfo=UTC), "delay": 5.0}, "exactly one of at="),
])
def test_when_must_be_exactly_one_aware_time(scheduler: BotScheduler, when: dict[str, Any],
                                             message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scheduler.schedule(HOST, remind, **when)


async def test_only_importable_functions_can_be_scheduled(scheduler: BotScheduler) -> None:
    async def nested(ctx: Context) -> None:
        pass

    for job in (lambda ctx: None, nested, Reminder().remind):
        with pytest.raises(PluginError, match="must be a function defined at module level"):
            scheduler.schedule(HOST, job, delay=60)
    assert scheduler.jobs(HOST) == []


@pytest.mark.parametrize("kwargs", [
    {"when": datetime(2030, 1, 1, tzinfo=UTC)},
    {"tags": {"a", "b"}},
    {"nested": {"obj": object()}},
])
async def test_job_arguments_must_be_json(scheduler: BotScheduler,
                                          kwargs: dict[str, Any]) -> None:
    with pytest.raises(StateError, match="job arguments must be JSON values"):
        scheduler.schedule(HOST, remind, delay=60, id="bad", kwargs=kwargs)
    assert scheduler.jobs(HOST) == []


async def test_tuples_are_stored_as_lists(scheduler: BotScheduler) -> None:
    host = RecordingHost()
    started_with(scheduler, host)
    scheduler.schedule(HOST, remind, delay=0.05, kwargs={"pair": (1, 2)})
    await until(lambda: len(host.fires) == 1)
    assert host.fires[0].kwargs == {"pair": [1, 2]}  # what a restart would read back anyway


async def test_the_same_id_replaces_the_job(scheduler: BotScheduler) -> None:
    host = RecordingHost()
    started_with(scheduler, host)
    scheduler.schedule(HOST, remind, delay=0.2, id="once", room="lobby", kwargs={"text": "old"})
    scheduler.schedule(HOST, remind, delay=0.3, id="once", room="hall", kwargs={"text": "new"})
    (job,) = scheduler.jobs(HOST)
    assert job.room == "hall"
    await until(lambda: len(host.fires) == 1)
    await asyncio.sleep(0.3)
    assert [(f.room, f.kwargs) for f in host.fires] == [("hall", {"text": "new"})]


async def test_cancel_says_whether_there_was_a_job(scheduler: BotScheduler) -> None:
    host = RecordingHost()
    started_with(scheduler, host)
    scheduler.schedule(HOST, remind, delay=0.2, id="a")
    scheduler.schedule("other", remind, delay=60, id="b")
    assert scheduler.cancel(HOST, "b") is False  # another bot's job
    assert scheduler.cancel(HOST, "a") is True
    assert scheduler.cancel(HOST, "a") is False
    assert scheduler.cancel(HOST, "never") is False
    assert [job.id for job in scheduler.jobs("other")] == ["b"]
    await asyncio.sleep(0.4)
    assert host.fires == []


async def test_jobs_lists_one_bots_jobs_by_prefix(scheduler: BotScheduler) -> None:
    started_with(scheduler, RecordingHost())
    for job_id, delay in (("match:a:2", 20), ("match:a:1", 10), ("match:b:1", 30),
                          ("other", 40)):
        scheduler.schedule(HOST, remind, delay=delay, id=job_id, room="arena")
    scheduler.schedule("bot2", remind, delay=5, id="match:a:9")
    scheduler.schedule("bot-x", remind, delay=5, id="match:a:8")  # a name that extends "bot"

    listed = scheduler.jobs(HOST, "match:a:")
    assert [job.id for job in listed] == ["match:a:1", "match:a:2"]  # soonest first
    assert all(isinstance(job, ScheduledJob) and job.room == "arena" for job in listed)
    assert [job.id for job in scheduler.jobs(HOST)] == [
        "match:a:1", "match:a:2", "match:b:1", "other"]
    assert scheduler.jobs(HOST, "nothing") == []
    assert [job.id for job in scheduler.jobs("bot2")] == ["match:a:9"]


# --- static jobs, hosts -----------------------------------------------------------------------


async def test_static_jobs_fire_once_per_room(scheduler: BotScheduler) -> None:
    # As @bot.every(rooms=["b_room", "a_room"]) makes it, at an interval below its 1 s floor.
    spec = ScheduleSpec("tick", IntervalTrigger(seconds=0.2, timezone=UTC), ("a_room", "b_room"),
                        fn=tick)
    host = RecordingHost(name="ticker")
    started_with(scheduler, host, specs=[spec])
    await until(lambda: {f.room for f in host.fires} == {"a_room", "b_room"})
    fire = next(f for f in host.fires if f.room == "a_room")
    assert fire.job_id == "static:tick:a_room"
    assert fire.target == "static:tick"
    assert fire.kwargs == {}
    spec = scheduler.static_spec("ticker", fire.target)
    assert spec is not None
    assert spec.fn is tick
    assert scheduler.static_spec("ticker", "static:nope") is None
    assert scheduler.static_spec("someone", "static:tick") is None
    assert scheduler.jobs("ticker") == []  # static jobs are not the bot's dynamic jobs
    await until(lambda: len([f for f in host.fires if f.room == "a_room"]) >= 2)


async def test_an_interval_counts_from_start_not_from_when_the_plugin_was_imported(
        scheduler: BotScheduler) -> None:
    bot = Bot("ticker")
    bot.every(seconds=1)(tick)  # the trigger is made now, as at a plugin's import
    await asyncio.sleep(0.6)  # connecting, subscribing, on_start... or an earlier run
    host = RecordingHost(name="ticker")
    started = datetime.now(UTC)
    started_with(scheduler, host, specs=bot.schedules)
    await until(lambda: len(host.fires) == 1)
    assert host.fires[0].run_time >= started + timedelta(seconds=1)


async def test_a_static_job_without_rooms_fires_with_no_room(scheduler: BotScheduler) -> None:
    host = RecordingHost()
    spec = ScheduleSpec("announce", IntervalTrigger(seconds=0.1, timezone=UTC), text="hello")
    started_with(scheduler, host, specs=[spec])
    await until(lambda: len(host.fires) >= 1)
    assert (host.fires[0].job_id, host.fires[0].room) == ("static:announce:-", None)
    assert scheduler.static_spec(HOST, "static:announce") == spec


async def test_a_job_of_a_bot_that_is_not_running_is_skipped(
        scheduler: BotScheduler, caplog: pytest.LogCaptureFixture) -> None:
    host = RecordingHost()
    started_with(scheduler, host)
    with caplog.at_level(logging.WARNING, logger="botkit.jobs.scheduler"):
        scheduler.schedule("ghost", remind, delay=0.05, id="boo")
        scheduler.schedule(HOST, remind, delay=0.1, id="mine")
        await until(lambda: len(host.fires) == 1)
        await until(lambda: any("ghost" in r.getMessage() for r in caplog.records))
    assert [f.job_id for f in host.fires] == ["mine"]
    assert "job ghost:boo belongs to bot ghost, which is not running; skipped" in [
        r.getMessage() for r in caplog.records]
    assert scheduler.jobs("ghost") == []


# --- misfires ---------------------------------------------------------------------------------


async def test_a_job_later_than_the_grace_is_missed_not_run(
        make_scheduler: Callable[..., Awaitable[BotScheduler]],
        caplog: pytest.LogCaptureFixture) -> None:
    scheduler = await make_scheduler(misfire_grace=2)
    host = RecordingHost()
    with caplog.at_level(logging.WARNING, logger="botkit.jobs.scheduler"):
        started_with(scheduler, host)
        scheduler.schedule(HOST, remind, at=datetime.now(UTC) - timedelta(seconds=30), id="old")
        await until(lambda: scheduler.missed == 1)
    assert host.fires == []
    assert scheduler.jobs(HOST) == []
    assert any("missed its time" in r.getMessage() and "beyond the 2s grace" in r.getMessage()
               for r in caplog.records)


async def test_a_job_within_the_grace_runs_once_late(
        make_scheduler: Callable[..., Awaitable[BotScheduler]]) -> None:
    scheduler = await make_scheduler(misfire_grace=60)
    host = RecordingHost()
    started_with(scheduler, host)
    at = datetime.now(UTC) - timedelta(seconds=5)
    scheduler.schedule(HOST, remind, at=at, id="late")
    await until(lambda: len(host.fires) == 1)
    await asyncio.sleep(0.2)
    assert [f.run_time for f in host.fires] == [at]
    assert scheduler.missed == 0


async def test_the_grace_in_force_when_firing_applies(
        make_scheduler: Callable[..., Awaitable[BotScheduler]]) -> None:
    scheduler = await make_scheduler(misfire_grace=60)
    host = RecordingHost()
    scheduler.add_host(host, [])
    scheduler.schedule(HOST, remind, at=datetime.now(UTC) - timedelta(seconds=5), id="late")
    scheduler.misfire_grace = 1  # an operator shortened it before the jobs ran
    scheduler.start()
    await until(lambda: scheduler.missed == 1)
    assert host.fires == []


class SteppingTrigger(BaseTrigger):
    """Fires at ``first``, then every ``step``: with ``first`` in the past, several fire times
    are already due when the scheduler first looks (as after a long stop)."""

    def __init__(self, first: datetime, step: timedelta) -> None:
        self.first = first
        self.step = step

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime:
        return self.first if previous_fire_time is None else previous_fire_time + self.step


async def test_several_missed_fire_times_coalesce_into_one_fire(
        make_scheduler: Callable[..., Awaitable[BotScheduler]]) -> None:
    scheduler = await make_scheduler(misfire_grace=60)
    host = RecordingHost()
    now = datetime.now(UTC)
    # Due: now-95s, now-65s, now-35s, now-5s; the next one is now+25s.
    trigger = SteppingTrigger(now - timedelta(seconds=95), timedelta(seconds=30))
    started_with(scheduler, host, specs=[ScheduleSpec("digest", trigger, ("lobby",),
                                                      text="digest")])
    await until(lambda: len(host.fires) == 1)
    await asyncio.sleep(0.3)
    # One fire, for the latest time due — which is within the grace, so it is not missed.
    assert [f.run_time for f in host.fires] == [now - timedelta(seconds=5)]
    assert scheduler.missed == 0


# --- lifecycle --------------------------------------------------------------------------------


async def test_shutdown_waits_for_a_fire_under_way(scheduler: BotScheduler) -> None:
    host = RecordingHost(hold=0.3)
    started_with(scheduler, host)
    scheduler.schedule(HOST, remind, delay=0)
    await asyncio.wait_for(host.started.wait(), 5)
    started = time.monotonic()
    await scheduler.shutdown(5)
    assert time.monotonic() - started < 4
    assert (host.finished, host.cancelled) == (1, 0)
    assert not scheduler.running


async def test_shutdown_cancels_a_fire_over_the_grace(
        scheduler: BotScheduler, caplog: pytest.LogCaptureFixture) -> None:
    host = RecordingHost(hold=60)
    started_with(scheduler, host)
    scheduler.schedule(HOST, remind, delay=0)
    await asyncio.wait_for(host.started.wait(), 5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="botkit.jobs.scheduler"):
        await scheduler.shutdown(0.2)
    assert 0.15 <= time.monotonic() - started < 5
    assert (host.finished, host.cancelled) == (0, 1)
    assert "1 job(s) still running at shutdown were cancelled" in caplog.messages


async def test_nothing_fires_after_shutdown_and_jobs_are_refused(
        make_scheduler: Callable[..., Awaitable[BotScheduler]], tmp_path: Path) -> None:
    scheduler = await make_scheduler(store_path=tmp_path / "state.sqlite")
    host = RecordingHost()
    started_with(scheduler, host, specs=[
        ScheduleSpec("fast", IntervalTrigger(seconds=0.1, timezone=UTC), text="x")])
    scheduler.schedule(HOST, remind, delay=60, id="pending")
    await until(lambda: len(host.fires) >= 1)
    await scheduler.shutdown(1)
    count = len(host.fires)
    # A job would be silently dropped here (APScheduler keeps it in a pending list once
    # stopped): refusing it says so.
    with pytest.raises(StateError, match="the scheduler is shut down"):
        scheduler.schedule(HOST, remind, delay=0.1, id="too-late")
    with pytest.raises(StateError, match="the scheduler is shut down"):
        scheduler.jobs(HOST)
    with pytest.raises(StateError, match="the scheduler is shut down"):
        scheduler.cancel(HOST, "pending")
    await scheduler.shutdown(1)  # twice is fine
    await asyncio.sleep(0.4)
    assert len(host.fires) == count
    # The job store was closed by shutdown() itself, not later by a loop callback.
    reopened = await make_scheduler(store_path=tmp_path / "state.sqlite")
    assert [job.id for job in reopened.jobs(HOST)] == ["pending"]


async def test_jobs_can_be_used_before_the_scheduler_starts(
        make_scheduler: Callable[..., Awaitable[BotScheduler]], tmp_path: Path) -> None:
    """Bots handle envelopes (and run on_start) before the runtime starts firing jobs."""
    path = tmp_path / "state.sqlite"
    first = await make_scheduler(store_path=path)
    first.start()
    kept_at = datetime.now(UTC) + timedelta(seconds=0.5)
    first.schedule(HOST, remind, at=kept_at, id="kept", room="lobby")
    first.schedule(HOST, remind, delay=5, id="dropped")
    await first.shutdown(1)

    second = await make_scheduler(store_path=path)
    host = RecordingHost()
    second.add_host(host, [])
    # Not started: the stored jobs are seen and can be cancelled; new ones get a run time.
    assert [(job.id, job.room) for job in second.jobs(HOST)] == [
        ("kept", "lobby"), ("dropped", None)]
    assert second.jobs(HOST, "kept")[0].run_at == kept_at
    assert second.cancel(HOST, "dropped") is True
    second.schedule(HOST, remind, delay=0.1, id="new")
    assert {job.id for job in second.jobs(HOST)} == {"kept", "new"}
    assert not second.running
    await asyncio.sleep(0.7)
    assert host.fires == []  # nothing fires before start()
    second.start()
    assert second.running
    await until(lambda: len(host.fires) == 2)
    await asyncio.sleep(0.2)
    assert sorted(f.job_id for f in host.fires) == ["kept", "new"]


async def test_static_jobs_count_from_start_when_the_store_was_opened_early(
        scheduler: BotScheduler) -> None:
    host = RecordingHost()
    scheduler.add_host(host, [ScheduleSpec("tick", IntervalTrigger(seconds=1, timezone=UTC),
                                           text="tick")])
    assert scheduler.jobs(HOST) == []  # opens the job stores, firing paused
    await asyncio.sleep(1.3)  # the first fire time passes before start
    started = datetime.now(UTC)
    scheduler.start()
    await until(lambda: len(host.fires) == 1)
    # Its next time is reckoned at start, as when static jobs are declared at start: no fire
    # for a time before start (which the paused scheduler would have kept and run late).
    assert host.fires[0].run_time >= started


async def test_jobs_scheduled_after_firing_stopped_are_stored(
        make_scheduler: Callable[..., Awaitable[BotScheduler]], tmp_path: Path) -> None:
    """Lanes finish their envelopes after the runtime stopped firing jobs."""
    path = tmp_path / "state.sqlite"
    first = await make_scheduler(store_path=path)
    host = RecordingHost()
    started_with(first, host)
    await first.stop_firing(1)
    assert not first.running
    first.schedule(HOST, remind, delay=0.1, id="during-drain")
    await asyncio.sleep(0.3)
    assert host.fires == []  # stored, not fired
    await first.shutdown(1)

    second = await make_scheduler(store_path=path)
    started_with(second, host)
    await until(lambda: len(host.fires) == 1)
    assert host.fires[0].job_id == "during-drain"


async def test_stored_jobs_survive_a_restart(
        make_scheduler: Callable[..., Awaitable[BotScheduler]], tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    first = await make_scheduler(store_path=path)
    host = RecordingHost()
    started_with(first, host)
    soon = datetime.now(UTC) + timedelta(seconds=0.4)
    later = datetime.now(UTC) + timedelta(hours=1)
    first.schedule(HOST, remind, at=soon, id="soon", room="lobby", kwargs={"text": "hi"})
    first.schedule(HOST, remind, at=later, id="later", room="hall")
    await first.shutdown(1)  # down before "soon" is due
    assert host.fires == []

    second = await make_scheduler(store_path=path)
    started_with(second, host)
    await until(lambda: len(host.fires) == 1)
    await asyncio.sleep(0.2)
    (fire,) = host.fires
    assert (fire.job_id, fire.run_time, fire.room, fire.kwargs, fire.target) == (
        "soon", soon, "lobby", {"text": "hi"}, TARGET)
    assert [(job.id, job.run_at, job.room) for job in second.jobs(HOST)] == [
        ("later", later, "hall")]


async def test_a_memory_scheduler_forgets_its_jobs(
        make_scheduler: Callable[..., Awaitable[BotScheduler]]) -> None:
    first = await make_scheduler()
    first.schedule(HOST, remind, delay=60, id="x")
    await first.shutdown(0)
    assert (await make_scheduler()).jobs(HOST) == []


# --- Bot decorators ---------------------------------------------------------------------------


async def job(ctx: Context) -> None:
    pass


@pytest.mark.parametrize("interval", [{}, {"seconds": 0}, {"minutes": -1},
                                      {"seconds": 30, "minutes": -1}])
def test_every_needs_a_positive_interval(interval: dict[str, float]) -> None:
    bot = Bot("clock")
    with pytest.raises(PluginError, match=r"bot clock: @bot.every needs a positive interval"):
        bot.every(**interval)
    assert bot.schedules == []


def test_every_adds_up_its_units_and_takes_one_room_as_a_string() -> None:
    bot = Bot("clock")
    bot.every(hours=1, minutes=1, seconds=30, rooms="lobby")(job)
    (spec,) = bot.schedules
    assert isinstance(spec.trigger, IntervalTrigger)
    assert spec.trigger.interval == timedelta(seconds=3690)
    assert (spec.key, spec.rooms, spec.fn, spec.text) == ("job", ("lobby",), job, None)


@pytest.mark.parametrize(("expression", "timezone"), [
    ("61 * * * *", "UTC"),
    ("* * *", "UTC"),
    ("0 18 * * *", "Mars/Olympus"),
])
def test_cron_refuses_bad_expressions_and_timezones_naming_the_bot(expression: str,
                                                                   timezone: str) -> None:
    bot = Bot("clock")
    with pytest.raises(PluginError) as info:
        bot.cron(expression, timezone=timezone)
    assert str(info.value).startswith(
        f"bot clock: invalid cron expression {expression!r} or timezone {timezone!r}: ")


def test_cron_reads_its_timezone() -> None:
    bot = Bot("clock")
    bot.cron("0 18 * * mon-fri", timezone="Europe/Berlin", rooms=["b", "a"])(job)
    (spec,) = bot.schedules
    assert isinstance(spec.trigger, CronTrigger)
    assert str(spec.trigger.timezone) == "Europe/Berlin"
    assert spec.rooms == ("a", "b")


def test_the_same_handler_cannot_be_scheduled_twice() -> None:
    bot = Bot("clock")
    bot.every(minutes=5)(job)
    with pytest.raises(PluginError, match="bot clock: job is scheduled twice"):
        bot.cron("0 * * * *")(job)
    assert len(bot.schedules) == 1


def test_a_scheduled_handler_must_take_the_context() -> None:
    bot = Bot("clock")

    def no_context() -> None:
        pass

    with pytest.raises(PluginError, match="bot clock: every 60s job"):
        bot.every(minutes=1)(no_context)


# --- static_schedules -------------------------------------------------------------------------

CONFIG = """\
xshathra:
  project_id: proj_1
  realtime_url: ws://localhost:3001/realtime/connection/websocket
  api_url: http://localhost:3001/api/realtime
  server_api_key: not-a-real-key
bots:
  - name: clock
    user_id: bot_clock
    rooms: [lobby, hall, vip]
    schedules:
      - {cron: "0 18 * * *", timezone: Europe/Berlin, room: hall, text: Daily}
      - {every: 30m, rooms: [lobby, vip], text: Half-hourly}
      - {every: 1h, text: Everywhere}
"""


def test_static_schedules_fill_in_rooms_and_turn_yaml_entries_into_texts() -> None:
    config = parse_config(textwrap.dedent(CONFIG), source="bots.yaml", environ={})
    bot = Bot("clock")
    bot.every(minutes=1)(job)
    bot.every(minutes=2, rooms=["vip"])(vip_only)
    specs = static_schedules(LoadedBot(config.bots[0], bot, None))
    assert [(s.key, s.rooms, s.fn, s.text) for s in specs] == [
        ("job", ("lobby", "hall", "vip"), job, None),
        ("vip_only", ("vip",), vip_only, None),
        ("schedules[0]", ("hall",), None, "Daily"),
        ("schedules[1]", ("lobby", "vip"), None, "Half-hourly"),
        ("schedules[2]", ("lobby", "hall", "vip"), None, "Everywhere"),
    ]
    assert specs[0].trigger is bot.schedules[0].trigger
    assert isinstance(specs[2].trigger, CronTrigger)
    assert str(specs[2].trigger.timezone) == "Europe/Berlin"
    assert isinstance(specs[3].trigger, IntervalTrigger)
    assert specs[3].trigger.interval == timedelta(minutes=30)
    assert bot.schedules[0].rooms == ()  # the bot's own list is left alone


# --- Context ----------------------------------------------------------------------------------


class NoApi:
    async def publish(self, channel: str, data: Any, **options: Any) -> Any:
        raise AssertionError("nothing is published here")

    async def presence(self, channel: str) -> Any:
        raise AssertionError

    async def history(self, channel: str, **options: Any) -> Any:
        raise AssertionError


def services(scheduler: BotScheduler | None) -> BotServices:
    return BotServices(name=HOST, user_id="bot_user", project_id="proj_1", bot=Bot(HOST),
                       settings=None, api=NoApi(), channels={}, scheduler=scheduler)


@pytest.mark.parametrize("use", [
    lambda ctx: ctx.schedule(remind, delay=1),
    lambda ctx: ctx.cancel("x"),
    lambda ctx: ctx.jobs(),
])
def test_scheduling_without_a_scheduler_says_why(use: Callable[[Context], Any]) -> None:
    ctx = Context(services(None), room="lobby")
    with pytest.raises(BotkitError, match="scheduling needs the runtime's scheduler, which is "
                                          "not running"):
        use(ctx)


def test_state_without_a_store_raises() -> None:
    with pytest.raises(BotkitError, match="this bot has no state store"):
        _ = Context(services(None)).state


async def test_ctx_schedule_defaults_to_the_contexts_room(scheduler: BotScheduler) -> None:
    host = RecordingHost()
    started_with(scheduler, host)
    in_lobby = Context(services(scheduler), room="lobby")
    assert in_lobby.schedule(remind, delay=60, id="here", text="a") == "here"
    in_lobby.schedule(remind, delay=61, id="there", room="hall")
    Context(services(scheduler)).schedule(remind, delay=62, id="nowhere")
    assert [(job.id, job.room) for job in in_lobby.jobs()] == [
        ("here", "lobby"), ("there", "hall"), ("nowhere", None)]
    assert [job.id for job in in_lobby.jobs("th")] == ["there"]
    assert in_lobby.cancel("there") is True
    assert in_lobby.cancel("there") is False
    in_lobby.schedule(remind, delay=0.05, id="now", text="hi")
    await until(lambda: len(host.fires) == 1)
    assert (host.fires[0].job_id, host.fires[0].room, host.fires[0].kwargs) == (
        "now", "lobby", {"text": "hi"})


def test_ctx_schedule_refuses_what_could_not_be_stored(scheduler: BotScheduler) -> None:
    ctx = Context(services(scheduler), room="lobby")
    with pytest.raises(PluginError):
        ctx.schedule(lambda c: None, delay=1)
    with pytest.raises(StateError):
        ctx.schedule(remind, delay=1, when=datetime.now(UTC))

