"""bots.welcome: one greeting per user and room within the cooldown."""

from __future__ import annotations

from botkit.protocol.types import ClientInfo
from botkit.testing import BotHarness
from botkit.testing.pytest_plugin import HarnessFactory

HOUR = {"cooldown_seconds": 3600}


async def test_greets_each_user_once_per_room_within_the_cooldown(
        bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.welcome", settings=HOUR, rooms=["lobby", "room_abc123"])
    assert (await h.join("alice")).texts == ["Welcome, alice!"]
    assert (await h.join("alice", client="phone")).texts == []  # a second connection
    await h.leave("alice")
    assert (await h.join("alice")).texts == []  # back within the hour
    assert (await h.join("alice", room="room_abc123")).texts == ["Welcome, alice!"]
    assert (await h.join("bob")).texts == ["Welcome, bob!"]
    assert [reply.room for reply in h.replies] == ["lobby", "room_abc123", "lobby"]


async def test_the_cooldown_runs_out_with_the_clock(bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.welcome", settings=HOUR)
    await h.join("carol")
    await h.leave("carol")
    await h.advance(minutes=59, seconds=59)
    assert (await h.join("carol")).texts == []
    await h.leave("carol")
    await h.advance(seconds=1)
    assert (await h.join("carol")).texts == ["Welcome, carol!"]


async def test_without_a_cooldown_every_join_is_greeted(bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.welcome", settings={"cooldown_seconds": 0})
    for _ in range(3):
        assert (await h.join("dave")).texts == ["Welcome, dave!"]
        await h.leave("dave")
    assert await h.state.keys() == []


async def test_the_display_name_when_the_greeting_asks_for_it(
        bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.welcome", settings={"greeting": "Hi {name} ({user})!"})
    assert (await h.join("user_erin", name="Erin")).texts == ["Hi Erin (user_erin)!"]
    assert (await h.join("user_finn")).texts == ["Hi user_finn (user_finn)!"]


async def test_users_present_at_the_start_are_not_greeted() -> None:
    h = BotHarness.load("bots.welcome")
    h.set_presence("lobby", ["gail"])
    async with h:
        h.assert_no_reply()
        assert (await h.join("hugo")).texts == ["Welcome, hugo!"]


async def test_greets_by_display_name_by_default(bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.welcome")
    assert (await h.join("user_erin", name="Erin")).texts == ["Welcome, Erin!"]
    assert (await h.join("user_finn")).texts == ["Welcome, user_finn!"]  # no name: the id
    # A name that does not look like one is not repeated into the room.
    assert (await h.join("user_gil", name="see www.spam.example")).texts == [
        "Welcome, user_gil!"]


async def test_the_name_may_come_from_the_room_subscription(bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.welcome")
    h.clear()
    # A subscription token's info (chan_info) names the user when the connection's does not.
    await h.core.handle_join("lobby", ClientInfo(user="user_hal", client="c1",
                                                 chan_info={"name": "Hal"}))
    await h.core.handle_join("lobby", ClientInfo(user="user_ida", client="c2",
                                                 conn_info={"name": "Ida"},
                                                 chan_info={"name": "Other"}))
    assert h.texts == ["Welcome, Hal!", "Welcome, Ida!"]
