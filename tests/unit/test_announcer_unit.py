"""The match announcer at unit level: its handlers called with a Context whose publisher records
what is sent, on a real BotScheduler (memory store). Pure tests: no server.

Importing the plugin registers its match envelope types for the whole process; other tests use
those type names as unregistered examples, so the plugin is imported by a fixture that puts the
registry back (and forgets the module, so that a later import registers them again).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from apscheduler.util import ref_to_obj

import botkit.envelope
import bots
from botkit import Context
from botkit.context import BotServices
from botkit.envelope import utc_now
from botkit.jobs.scheduler import BotScheduler
from botkit.ulid import new_ulid

NAME = "announcer"
ARENA = "chat:proj_1:arena"
PLUGIN = "bots.announcer"


@pytest.fixture(scope="module")
def announcer() -> Iterator[ModuleType]:
    if PLUGIN in sys.modules:  # already imported (and registered) by someone else
        yield sys.modules[PLUGIN]
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botkit.envelope, "_registry", botkit.envelope._registry.copy())
        try:
            yield importlib.import_module(PLUGIN)
        finally:
            sys.modules.pop(PLUGIN, None)
            if hasattr(bots, "announcer"):
                delattr(bots, "announcer")


@dataclass
class RecordingPublisher:
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def publish(self, channel: str, data: Any, *, idempotency_key: str | None = None,
                      tags: Mapping[str, str] | None = None,
                      skip_history: bool = False) -> None:
        self.sent.append((channel, data))

    async def presence(self, channel: str) -> Any:
        raise AssertionError("the announcer never asks for presence")

    async def history(self, channel: str, **options: Any) -> Any:
        raise AssertionError("the announcer never reads history")

    def texts(self, channel: str = ARENA) -> list[str]:
        return [data["text"] for sent_to, data in self.sent if sent_to == channel]


@dataclass
class JobRunner:
    """The JobHost: runs a fire's stored function with a Context in the job's room, as the
    runtime does."""

    services: BotServices
    name: str = NAME

    async def run_job(self, job_id: str, run_time: datetime, target: str, room: str | None,
                      kwargs: Mapping[str, Any]) -> None:
        ctx = Context(self.services, room=room, cause=f"job:{job_id}@{run_time.isoformat()}")
        await ref_to_obj(target)(ctx, **kwargs)


def envelope_fields(room: str = "arena") -> dict[str, Any]:
    return {"id": new_ulid(), "room_id": room, "sender_id": "game_server", "sent_at": utc_now()}


@dataclass
class Harness:
    plugin: ModuleType
    services: BotServices
    publisher: RecordingPublisher
    scheduler: BotScheduler

    def ctx(self, event: Any = None, room: str = "arena") -> Context:
        return Context(self.services, event, room)

    def job_ids(self, prefix: str = "match:") -> list[str]:
        return [job.id for job in self.scheduler.jobs(NAME, prefix)]

    async def schedule(self, match_id: str, title: str, starts_at: datetime,
                       room: str = "arena") -> None:
        event = self.plugin.MatchScheduled(**envelope_fields(room), match_id=match_id,
                                           title=title, starts_at=starts_at)
        await self.plugin.scheduled(self.ctx(event, room), event)

    async def handle(self, handler: str, model: str, **fields: Any) -> None:
        event = getattr(self.plugin, model)(**envelope_fields(), **fields)
        await getattr(self.plugin, handler)(self.ctx(event), event)


@pytest.fixture
async def make_harness(announcer: ModuleType) -> AsyncIterator[Callable[..., Harness]]:
    made: list[BotScheduler] = []

    def make(**settings: Any) -> Harness:
        scheduler = BotScheduler(store_path=None)
        made.append(scheduler)
        publisher = RecordingPublisher()
        services = BotServices(
            name=NAME, user_id="bot_announcer", project_id="proj_1", bot=announcer.bot,
            settings=announcer.AnnouncerSettings(**settings), api=publisher,
            channels={"arena": ARENA}, scheduler=scheduler)
        scheduler.add_host(JobRunner(services), [])
        scheduler.start()
        return Harness(announcer, services, publisher, scheduler)

    try:
        yield make
    finally:
        for scheduler in made:
            await scheduler.shutdown(0)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition still false after {timeout} s")
        await asyncio.sleep(0.01)


# --- planning ---------------------------------------------------------------------------------


async def test_one_job_per_offset_plus_the_start(make_harness: Callable[..., Harness],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    harness = make_harness()  # offsets 5 minutes and 1 minute
    starts_at = datetime.now(UTC) + timedelta(hours=1)
    with caplog.at_level(logging.INFO, logger="botkit.bot"):
        await harness.schedule("m1", "Final", starts_at)
    jobs = harness.scheduler.jobs(NAME)
    assert [(job.id, job.run_at, job.room) for job in jobs] == [
        ("match:arena:m1:300", starts_at - timedelta(minutes=5), "arena"),
        ("match:arena:m1:60", starts_at - timedelta(minutes=1), "arena"),
        ("match:arena:m1:start", starts_at, "arena"),
    ]
    assert "match m1: 3 announcement(s) planned" in caplog.messages
    assert harness.publisher.sent == []  # nothing is said when scheduling


async def test_offsets_already_past_are_skipped(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness()
    soon = datetime.now(UTC) + timedelta(seconds=90)  # 5 minutes before is already past
    await harness.schedule("m1", "Final", soon)
    assert harness.job_ids() == ["match:arena:m1:60", "match:arena:m1:start"]


async def test_a_match_that_already_started_plans_nothing(
        make_harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture) -> None:
    harness = make_harness()
    past = datetime.now(UTC) - timedelta(seconds=1)
    with caplog.at_level(logging.INFO, logger="botkit.bot"):
        await harness.schedule("m1", "Final", past)
    assert harness.job_ids() == []
    assert "match m1: 0 announcement(s) planned" in caplog.messages


async def test_repeated_offsets_plan_one_job(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(offsets=["1m", 60, "5m"])
    starts_at = datetime.now(UTC) + timedelta(hours=1)
    await harness.schedule("m1", "Final", starts_at)
    assert harness.job_ids() == ["match:arena:m1:300", "match:arena:m1:60",
                                 "match:arena:m1:start"]


async def test_announcements_are_said_in_order_in_the_match_room(
        make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(offsets=[0.6, 0.3])
    starts_at = datetime.now(UTC) + timedelta(seconds=1)
    await harness.schedule("m1", "Final", starts_at)
    await until(lambda: len(harness.publisher.sent) == 3)
    assert harness.publisher.texts() == [
        "⏰ Final starts in 0.6 seconds",
        "⏰ Final starts in 0.3 seconds",
        "▶️ Final is starting now!",
    ]
    assert {data["senderId"] for _, data in harness.publisher.sent} == {"bot_announcer"}
    assert harness.job_ids() == []


async def test_custom_texts_are_used(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(offsets=["0.2s"], before="{title} in {when}", start="{title} now")
    starts_at = datetime.now(UTC) + timedelta(seconds=0.4)
    await harness.schedule("m1", "Cup", starts_at)
    await until(lambda: len(harness.publisher.sent) == 2)
    assert harness.publisher.texts() == ["Cup in 0.2 seconds", "Cup now"]


# --- replacing and cancelling -----------------------------------------------------------------


async def test_a_resent_schedule_replaces_the_pending_jobs(
        make_harness: Callable[..., Harness]) -> None:
    harness = make_harness()
    now = datetime.now(UTC)
    await harness.schedule("m1", "Old", now + timedelta(hours=1))
    new_start = now + timedelta(seconds=90)
    await harness.schedule("m1", "New", new_start)
    # The old 5-minute announcement is gone too, not only the ids planned again.
    assert [(job.id, job.run_at) for job in harness.scheduler.jobs(NAME)] == [
        ("match:arena:m1:60", new_start - timedelta(minutes=1)),
        ("match:arena:m1:start", new_start),
    ]


async def test_a_resent_schedule_announces_only_the_new_texts(
        make_harness: Callable[..., Harness]) -> None:
    harness = make_harness(offsets=[0.5])
    now = datetime.now(UTC)
    await harness.schedule("m1", "Old", now + timedelta(seconds=0.8))
    await harness.schedule("m1", "New", now + timedelta(seconds=1.2))
    await until(lambda: len(harness.publisher.sent) == 2)
    await asyncio.sleep(0.5)
    assert harness.publisher.texts() == ["⏰ New starts in 0.5 seconds", "▶️ New is starting now!"]


async def test_cancelling_removes_the_matchs_jobs_and_says_so(
        make_harness: Callable[..., Harness]) -> None:
    harness = make_harness()
    later = datetime.now(UTC) + timedelta(hours=1)
    await harness.schedule("m1", "Final", later)
    await harness.schedule("m2", "Semi", later)
    await harness.schedule("m1", "Elsewhere", later, room="hall")

    await harness.handle("cancelled", "MatchCancelled", match_id="m1")
    assert harness.job_ids("match:arena:m1:") == []
    assert len(harness.job_ids("match:arena:m2:")) == 3  # another match
    assert len(harness.job_ids("match:hall:m1:")) == 3  # the same id in another room
    assert [channel for channel, _ in harness.publisher.sent] == [ARENA]
    assert harness.publisher.texts() == ["❌ Match m1 is cancelled."]


async def test_cancelling_a_match_with_nothing_pending_says_nothing(
        make_harness: Callable[..., Harness]) -> None:
    harness = make_harness()
    await harness.handle("cancelled", "MatchCancelled", match_id="m9")
    assert harness.publisher.sent == []


# --- texts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [
    (1, "1 second"),
    (2, "2 seconds"),
    (0.5, "0.5 seconds"),
    (60, "1 minute"),
    (300, "5 minutes"),
    (90, "90 seconds"),
    (3600, "1 hour"),
    (7200, "2 hours"),
    (5400, "90 minutes"),
])
def test_describe_pluralizes(announcer: ModuleType, seconds: float, text: str) -> None:
    assert announcer._describe(seconds) == text


async def test_score_started_and_ended_texts(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness()
    await harness.handle("started", "MatchStarted", match_id="m1", title="Cup")
    await harness.handle("started", "MatchStarted", match_id="m2")
    await harness.handle("score", "MatchScore", match_id="m1", scores={"Blue": 2, "Red": 1})
    await harness.handle("ended", "MatchEnded", match_id="m1", winner="Blue",
                         scores={"Red": 1, "Blue": 3})
    await harness.handle("ended", "MatchEnded", match_id="m2", scores={"A": 2, "B": 2})
    await harness.handle("ended", "MatchEnded", match_id="m3", winner="Solo")
    await harness.handle("ended", "MatchEnded", match_id="m4")
    assert harness.publisher.texts() == [
        "🏁 Cup has started!",
        "🏁 m2 has started!",
        "📊 Blue 2 · Red 1",
        "🏆 Blue wins 3-1",
        "🤝 Match m2 ended in a draw 2-2",
        "🏆 Solo wins",
        "🤝 Match m4 ended in a draw",
    ]
