"""bots.announcer: announcements before and at a match's start, and the match's events.

The plugin registers its match envelope types for the whole process when imported, and other
tests use those type names as unregistered examples: the plugin is imported here with a private
copy of the registry, and forgotten afterwards (a later import registers them again).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import botkit.envelope
import bots
from botkit.envelope import format_timestamp
from botkit.testing import BotHarness, Replies
from botkit.testing.pytest_plugin import HarnessFactory

START = datetime(2026, 3, 24, 18, 0, tzinfo=UTC)
PLUGIN = "bots.announcer"


@pytest.fixture(scope="module", autouse=True)
def _private_envelope_types() -> Iterator[None]:
    if PLUGIN in sys.modules:  # imported (and registered) by someone else already
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botkit.envelope, "_registry", botkit.envelope._registry.copy())
        try:
            yield
        finally:
            sys.modules.pop(PLUGIN, None)
            if hasattr(bots, "announcer"):
                delattr(bots, "announcer")


@pytest.fixture
async def h(bot_harness: HarnessFactory) -> BotHarness:
    return await bot_harness("bots.announcer", rooms=["arena"], now=START)


async def event(h: BotHarness, type_: str, **fields: Any) -> Replies:
    """The game server publishes a match event through the server API."""
    return await h.publish({"type": type_, "senderId": "game_server", **fields})


async def schedule(h: BotHarness, title: str, minutes: float, match_id: str = "m1") -> Replies:
    starts_at = h.now + timedelta(minutes=minutes)
    return await event(h, "match.scheduled", matchId=match_id, title=title,
                       startsAt=format_timestamp(starts_at))


async def test_announces_five_minutes_one_minute_and_the_start(h: BotHarness) -> None:
    assert (await schedule(h, "Final", 10)).texts == []
    assert [job.id for job in h.jobs()] == [
        "match:arena:m1:300", "match:arena:m1:60", "match:arena:m1:start"]
    assert (await h.advance(minutes=4, seconds=59)).texts == []
    assert (await h.advance(seconds=1)).texts == ["⏰ Final starts in 5 minutes"]
    assert (await h.advance(minutes=4)).texts == ["⏰ Final starts in 1 minute"]
    (start,) = await h.advance(minutes=1)
    assert start.text == "▶️ Final is starting now!"
    assert start.room == "arena"
    assert start.idempotency_key == "announcer:job:match:arena:m1:start@20260324T181000.000:1"
    assert (await h.advance(hours=1)).texts == []
    assert h.jobs() == []
    assert h.stats.jobs_run == 3


async def test_offsets_come_from_the_settings(bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.announcer", rooms=["arena"], settings={
        "offsets": ["1h", "90s"], "before": "{title} in {when}", "start": "{title} now"})
    await schedule(h, "Cup", 120)
    assert (await h.advance(hours=2)).texts == [
        "Cup in 1 hour", "Cup in 90 seconds", "Cup now"]


async def test_offsets_already_past_are_skipped(h: BotHarness) -> None:
    await schedule(h, "Quick", 3)
    assert (await h.advance(minutes=3)).texts == [
        "⏰ Quick starts in 1 minute", "▶️ Quick is starting now!"]
    await schedule(h, "Late", -1, match_id="m2")
    assert h.jobs() == []


async def test_a_new_time_replaces_the_announcements(h: BotHarness) -> None:
    await schedule(h, "Final", 10)
    await h.advance(minutes=3)
    await schedule(h, "Final, delayed", 17)  # now at 18:20
    assert [job.run_at for job in h.jobs()] == [
        START + timedelta(minutes=15), START + timedelta(minutes=19),
        START + timedelta(minutes=20)]
    assert (await h.advance(minutes=17)).texts == [
        "⏰ Final, delayed starts in 5 minutes", "⏰ Final, delayed starts in 1 minute",
        "▶️ Final, delayed is starting now!"]


async def test_a_cancelled_match_is_not_announced(h: BotHarness) -> None:
    await schedule(h, "Final", 10)
    await schedule(h, "Other", 10, match_id="m2")
    assert (await event(h, "match.cancelled", matchId="m1")).texts == [
        "❌ Match m1 is cancelled."]
    assert (await h.advance(minutes=10)).texts == [
        "⏰ Other starts in 5 minutes", "⏰ Other starts in 1 minute",
        "▶️ Other is starting now!"]
    # Nothing left to cancel: nothing to say.
    assert (await event(h, "match.cancelled", matchId="m1")).texts == []


async def test_start_score_and_end_are_announced(h: BotHarness) -> None:
    assert (await event(h, "match.started", matchId="m1", title="Final")).texts == [
        "🏁 Final has started!"]
    assert (await event(h, "match.started", matchId="m2")).texts == ["🏁 m2 has started!"]
    assert (await event(h, "match.score", matchId="m1",
                        scores={"Blue": 2, "Red": 1})).texts == ["📊 Blue 2 · Red 1"]
    assert (await event(h, "match.ended", matchId="m1", winner="Blue",
                        scores={"Red": 1, "Blue": 3})).texts == ["🏆 Blue wins 3-1"]
    assert (await event(h, "match.ended", matchId="m2",
                        scores={"Blue": 2, "Red": 2})).texts == [
        "🤝 Match m2 ended in a draw 2-2"]


@pytest.mark.parametrize("fields", [
    {"type": "match.scheduled", "matchId": "m1", "title": "No start"},
    {"type": "match.scheduled", "matchId": "m1", "title": "Bad", "startsAt": "tomorrow"},
    {"type": "match.score", "matchId": "m1", "scores": {"Blue": -1}},
    {"type": "match.ended", "matchId": "", "winner": "Blue"},
])
async def test_an_invalid_match_event_is_dropped_and_counted(
        h: BotHarness, fields: dict[str, Any]) -> None:
    assert (await event(h, fields.pop("type"), **fields)).texts == []
    assert h.stats.invalid == 1
    assert h.stats.handled == 0
    assert h.jobs() == []
