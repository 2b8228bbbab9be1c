"""The test harness for bot authors (``botkit.testing``) and its pytest fixture: no server.

Each test drives a bot the way the runtime would and checks what the runtime would do — the
harness runs the runtime's own BotCore, so these are also tests of that core."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from botkit import Bot, Context, UserJoined
from botkit.envelope import chat_message
from botkit.errors import BotkitError, ConfigError
from botkit.testing import BotHarness
from botkit.testing.pytest_plugin import HarnessFactory, _harnesses
from tests.plugins import features, lifecycle

NOON = datetime(2026, 3, 24, 12, 0, tzinfo=UTC)


# -- replies and records ---------------------------------------------------------------------


async def test_say_returns_the_replies_it_caused() -> None:
    async with BotHarness.load("bots.commands") as h:
        replies = await h.say("/ping", user="alice")
        assert replies.texts == ["pong"]
        (pong,) = replies
        assert replies.cause is not None
        assert pong.reply_to == replies.cause.id
        assert (pong.room, pong.type) == ("lobby", "chat.message")
        assert pong.envelope.sender_id == "bot_commands"
        assert pong.data["replyTo"] == replies.cause.id
        assert pong.idempotency_key == f"commands:{replies.cause.id}:1"
        assert (await h.say("/ping")).text == "pong"
        assert h.texts == ["pong", "pong"]
        assert h.last_reply is h.replies[-1]


async def test_records_clear_and_assertion_helpers() -> None:
    async with BotHarness.load("bots.commands", rooms=["lobby", "cellar"]) as h:
        await h.say("/ping", room="cellar")
        assert h.assert_replied("pong", room="cellar").room == "cellar"
        assert h.assert_replied(re.compile(r"^po")).text == "pong"
        said = r"did not reply 'pong' in lobby; it said:\n  cellar: 'pong'"
        with pytest.raises(AssertionError, match=said):
            h.assert_replied("pong", room="lobby")
        with pytest.raises(AssertionError, match="replied"):
            h.assert_no_reply()
        h.clear()
        assert (h.published, h.replies, h.texts) == ([], [], [])
        h.assert_no_reply()
        with pytest.raises(AssertionError, match="has not replied"):
            _ = h.last_reply
        with pytest.raises(AssertionError, match="exactly one reply, got 0"):
            _ = (await h.say("no command here")).text
        assert h.stats.received == 3  # two messages, and the bot's own reply coming back


async def test_a_step_in_a_room_the_bot_is_not_in_is_refused() -> None:
    async with BotHarness.load("bots.commands") as h:
        with pytest.raises(BotkitError, match=r"not in room 'nowhere'; its rooms are \['lobby'\]"):
            await h.say("/ping", room="nowhere")


async def test_settings_are_validated_like_the_runtime_does() -> None:
    with pytest.raises(ConfigError, match="cooldown_seconds"):
        BotHarness.load("bots.welcome", settings={"cooldown_seconds": -1})
    with pytest.raises(ConfigError, match="colldown"):
        BotHarness.load("bots.welcome", settings={"colldown": 1})
    with pytest.raises(ConfigError, match=r"^BotHarness: rooms\.1: room id 'a b' may contain"):
        BotHarness.load("bots.welcome", rooms=["lobby", "a b"])


# -- the runtime's handling, through the harness ---------------------------------------------


async def test_routing_middleware_threads_filters_and_history() -> None:
    features.blocked_ran.clear()
    async with BotHarness(features.bot, rooms=["lobby", "ops"], user="bob") as h:
        assert (await h.say("/blocked now")).texts == ["stopped by the middleware"]
        assert features.blocked_ran == []
        assert (await h.say("/sync it works")).text == "sync it works (thread)"
        assert (await h.say("/secret")).texts == []
        assert (await h.say("/secret", user="user_vip")).text == "secret for user_vip"
        assert (await h.say("ops-only here")).texts == []
        assert (await h.say("ops-only here", room="ops")).text == "ops matched in ops"
        relayed = await h.say("/relay ops hello")
        assert [(r.room, r.text) for r in relayed] == [("ops", "hello"), ("lobby",
                                                                         "relayed to ops")]
        # Argument conversion and the usage line are the router's.
        assert (await h.say("/history many")).text == (
            "Usage: /history [limit] (limit should be a whole number, got 'many')")
        h.set_history("ops", ["one", "two"])
        assert (await h.say("/history 3", room="ops")).text == "one | two | /history 3"


async def test_the_handlers_of_one_message_share_a_context() -> None:
    # Each reply has its own idempotency key; with a context per handler, two would collide
    # and the server (the harness's too) would drop the second as a repeat.
    async with BotHarness(features.bot) as h:
        replies = await h.say("double")
        assert replies.texts == ["first answer", "second answer", "third answer"]
        assert len({r.idempotency_key for r in replies}) == 3
        assert h.server.absorbed == 0


async def test_a_repeated_idempotency_key_is_absorbed_like_on_the_server() -> None:
    bot = Bot("repeater")

    @bot.command("twice")
    async def twice(ctx: Context) -> None:
        data = {"type": "chat.message", "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "roomId": "lobby",
                "senderId": ctx.user_id, "text": "once", "sentAt": "2026-03-24T12:00:00.000Z"}
        for _ in range(2):
            await ctx.services.api.publish(ctx.channel or "", data, idempotency_key="same")

    async with BotHarness(bot) as h:
        assert (await h.say("/twice")).texts == ["once"]
        assert h.server.absorbed == 1


async def test_timeouts_and_errors_are_isolated_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    async with BotHarness(features.bot, limits={"handler_timeout": "50ms"}) as h:
        assert (await h.say("/sleep 5")).texts == []
        assert (await h.say("/inner-timeout")).texts == []
        assert (await h.say("/sleep 0")).text == "woke after 0.0"
        assert (h.stats.handler_timeouts, h.stats.handler_errors) == (1, 1)
        with pytest.raises(AssertionError, match=r"failed 1 time\(s\) and timed out 1"):
            h.assert_replied("woke after 5.0")
    assert "handler sleep timed out after 0.1s" in caplog.text


async def test_spoofed_invalid_own_and_other_bots_envelopes_are_dropped() -> None:
    async with BotHarness.load("bots.commands", other_bots=["bot_other"]) as h:
        spoof = chat_message(room_id="lobby", sender_id="user_admin", text="/ping")
        assert (await h.publish(spoof, as_user="eve")).texts == []
        assert (await h.publish({"type": "chat.message", "text": "/ping"}, as_user="eve",
                                attested_user="mallory")).texts == []
        assert (await h.publish({"not": "an envelope"}, raw=True)).texts == []
        assert (await h.say("x" * 5000)).texts == []
        assert (await h.say("/ping", user="bot_commands")).texts == []
        assert (await h.say("/ping", user="bot_other")).texts == []
        # Published through the server API, nobody is attested: any sender is taken as is.
        assert (await h.publish(spoof)).texts == ["pong"]
        assert (await h.publish({"type": "chat.message", "text": "/ping"},
                                as_user="eve")).texts == ["pong"]
        stats = h.stats
        assert (stats.spoofed, stats.invalid, stats.from_bots) == (2, 2, 1)
        assert stats.own == 1 + 2  # a message as the bot, and its two replies coming back
        assert stats.handled == 2


async def test_publish_fills_in_what_an_envelope_lacks() -> None:
    bot = Bot("seer")
    seen: list[UserJoined] = []

    @bot.on("user.joined")
    async def record(ctx: Context, event: UserJoined) -> None:
        seen.append(event)

    async with BotHarness(bot, now=NOON, user="carol") as h:
        await h.publish({"type": "user.joined", "name": "Carol"})
        (event,) = seen
        assert (event.sender_id, event.user_id, event.room_id) == ("carol", "carol", "lobby")
        assert event.sent_at == NOON
        assert len(event.id) == 26


# -- presence ----------------------------------------------------------------------------------


async def test_joins_and_leaves_count_connections_like_the_runtime() -> None:
    settings = {"greeting": "hey {user}!", "farewell": "so long {user}"}
    async with BotHarness.load("tests.plugins.greeter", settings=settings) as h:
        assert (await h.join("ann")).texts == ["hey ann!"]
        assert (await h.join("ann", client="phone")).texts == []
        assert (await h.leave("ann", client="phone")).texts == []
        assert (await h.leave("ann")).texts == ["so long ann"]
        with pytest.raises(BotkitError, match="ann has no connection in room 'lobby'"):
            await h.leave("ann")
        assert (await h.join("bot_greeter")).texts == []  # the bot's own join


async def test_set_presence_is_what_ctx_presence_reads_and_needs_no_greeting() -> None:
    async with BotHarness.load("tests.plugins.greeter") as h:
        h.set_presence("lobby", ["bob", "alice"])
        assert h.replies == []
        assert (await h.leave("bob")).texts == ["bye bob"]
    async with BotHarness.load("bots.commands") as h:
        await h.join("dora")
        # Who speaks is not made present: presence is who joined, or was set.
        assert (await h.say("/who")).text == "In this room: bot_commands, dora"
        h.set_presence(None, ["erin"])
        assert (await h.say("/who", user="erin")).text == "In this room: bot_commands, erin"


async def test_presence_before_the_start_is_taken_as_is() -> None:
    h = BotHarness.load("tests.plugins.greeter")
    h.set_presence("lobby", ["fay"])
    async with h:
        assert h.replies == []
        assert (await h.leave("fay")).texts == ["bye fay"]


# -- hooks, state and time ---------------------------------------------------------------------


async def test_start_and_stop_hooks_run_with_async_with() -> None:
    lifecycle.events.clear()
    h = BotHarness.load("tests.plugins.lifecycle")
    async with h:
        assert h.texts == ["hello from on_start"]
        assert lifecycle.events == ["start room=None event=None", "sync start in thread"]
        assert h.last_reply.reply_to is None
    assert lifecycle.events[-1] == "stop"
    assert h.texts[-1] == "goodbye from on_stop"
    with pytest.raises(BotkitError, match="closed"):
        await h.say("/ping")


async def test_the_first_step_starts_the_bot() -> None:
    lifecycle.events.clear()
    h = BotHarness.load("tests.plugins.lifecycle")
    assert (await h.say("/ping")).texts == ["pong"]
    assert h.texts == ["hello from on_start", "pong"]
    await h.aclose()
    assert lifecycle.events[-1] == "stop"


async def test_state_is_inspectable_and_expires_with_the_clock() -> None:
    async with BotHarness.load("bots.welcome", settings={"cooldown_seconds": 60}) as h:
        await h.join("gus")
        assert await h.state.get("greeted:lobby:gus") is True
        await h.advance(seconds=59)
        assert await h.state.keys() == ["greeted:lobby:gus"]
        await h.advance(seconds=1)
        assert await h.state.keys() == []


async def test_ctx_now_is_the_harness_clock() -> None:
    bot = Bot("teller")

    @bot.command("time")
    async def tell(ctx: Context) -> str:
        return ctx.now().isoformat()

    async with BotHarness(bot, now=NOON) as h:
        assert (await h.say("/time")).text == "2026-03-24T12:00:00+00:00"
        await h.advance(hours=1, minutes=30)
        assert h.now == NOON + timedelta(hours=1, minutes=30)
        reply = (await h.say("/time"))[0]
        assert reply.text == "2026-03-24T13:30:00+00:00"
        assert reply.envelope.sent_at == h.now
        with pytest.raises(ValueError, match="only moves forward"):
            await h.advance_to(NOON)


async def test_interval_jobs_fire_in_order_with_their_scheduled_times() -> None:
    async with BotHarness.load("tests.plugins.timed", now=NOON) as h:
        assert (await h.advance(seconds=0.999)).texts == []
        ticks = await h.advance(seconds=1.001)
        assert ticks.texts == ["tick", "tick"]
        assert [t.idempotency_key for t in ticks] == [
            "timed:job:static:tick:lobby@20260324T120001.000:1",
            "timed:job:static:tick:lobby@20260324T120002.000:1"]
        assert (h.stats.jobs_run, h.stats.job_errors) == (2, 2)  # the failing job is counted


async def test_scheduled_jobs_fire_at_their_time_and_can_be_listed() -> None:
    async with BotHarness.load("tests.plugins.timed", now=NOON) as h:
        assert (await h.say("/later 90 late")).text == "in 90s"
        assert (await h.say("/later 30 early")).text == "in 30s"
        assert [(job.id, job.run_at) for job in h.jobs("later:")] == [
            ("later:early", NOON + timedelta(seconds=30)),
            ("later:late", NOON + timedelta(seconds=90))]
        h.clear()
        await h.advance(minutes=2)
        assert [text for text in h.texts if text != "tick"] == ["early", "late"]
        assert h.jobs() == []


async def test_cron_jobs_and_code_free_schedules_from_bots_yaml(tmp_path: Path) -> None:
    config = tmp_path / "bots.yaml"
    config.write_text(textwrap.dedent("""\
        xshathra:
          project_id: proj_local
          realtime_url: ws://localhost:3001/realtime/connection/websocket
          api_url: http://localhost:3001/api/realtime
          server_api_key: ${XSHATHRA_SERVER_API_KEY}
        bots:
          - name: daily
            user_id: bot_daily
            rooms: [lobby, arena]
            schedules:
              - {cron: "0 18 * * *", room: arena, text: "Tournament in 1 hour"}
          - name: commands
            plugin: bots.commands
            user_id: bot_commands
        """), encoding="utf-8")
    start = datetime(2026, 3, 24, 17, 0, tzinfo=UTC)
    async with BotHarness.from_config(config, "daily", now=start, environ={}) as h:
        assert (await h.advance(minutes=59)).texts == []
        (fire,) = await h.advance(minutes=1)
        assert (fire.room, fire.text) == ("arena", "Tournament in 1 hour")
        assert fire.idempotency_key == "daily:job:static:schedules[0]:arena@20260324T180000.000:1"
        assert (await h.advance(days=1)).texts == ["Tournament in 1 hour"]
        assert (await h.say("hi", user="bot_commands")).texts == []
        assert h.stats.from_bots == 1
    with pytest.raises(ConfigError, match="no bot named 'weekly'"):
        BotHarness.from_config(config, "weekly", environ={})


# -- the pytest plugin -------------------------------------------------------------------------


async def test_the_fixture_makes_started_harnesses(bot_harness: HarnessFactory) -> None:
    h = await bot_harness("bots.commands", user="hal")
    assert (await h.say("/ping")).text == "pong"
    made = BotHarness.load("tests.plugins.lifecycle")
    assert await bot_harness(made) is made
    assert made.texts == ["hello from on_start"]


async def test_the_fixture_closes_what_it_made() -> None:
    lifecycle.events.clear()
    fixture = _harnesses()
    make = await anext(fixture)
    h = await make("tests.plugins.lifecycle")
    assert lifecycle.events[-1] == "sync start in thread"
    with pytest.raises(StopAsyncIteration):
        await anext(fixture)  # the teardown, as pytest-asyncio runs it
    assert lifecycle.events[-1] == "stop"
    assert h.texts[-1] == "goodbye from on_stop"

