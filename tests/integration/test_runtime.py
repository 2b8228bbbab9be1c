"""The bot runtime against the real server, with users played by the official Python SDK."""

from __future__ import annotations

import asyncio

import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.realtime import ConnectionState
from tests.plugins import flaky
from tests.support.cuts import cut_when_connected
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project, running
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.server

COMMANDS = """\
- name: commands
  plugin: bots.commands
  user_id: bot_commands
  rooms: [lobby]
"""
WELCOME = """\
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
  rooms: [lobby]
  settings: {greeting: "Welcome, {user}!", cooldown_seconds: 3600}
"""
FLAKY = """\
- name: flaky
  plugin: tests.plugins.flaky
  user_id: bot_flaky
  rooms: [lobby]
"""


async def test_user_joining_is_greeted_once(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with running(centrifugo, bots_yaml(centrifugo, WELCOME, project_id=project)):
        async with human(centrifugo, project, "lobby", "user_alice") as alice:
            (greeting,) = await alice.replies_from("bot_welcome", 1)
            assert greeting["text"] == "Welcome, user_alice!"
            assert greeting["type"] == "chat.message"
            assert greeting["roomId"] == "lobby"
            # A second connection of the same user, and a rejoin, are not greeted again.
            async with human(centrifugo, project, "lobby", "user_alice"):
                pass
            async with human(centrifugo, project, "lobby", "user_alice"):
                assert await alice.quiet_from("bot_welcome", 1.5) == []


async def test_ping_gets_exactly_one_pong(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with running(centrifugo, bots_yaml(centrifugo, COMMANDS, project_id=project)):
        async with human(centrifugo, project, "lobby", "user_bob") as bob:
            sent_id = await bob.say("/ping")
            (pong,) = await bob.replies_from("bot_commands", 1)
            assert pong["text"] == "pong"
            assert pong["replyTo"] == sent_id
            assert pong["sentAt"].endswith("Z")
            assert len(pong["id"]) == 26
            assert await bob.quiet_from("bot_commands", 1.0) == []


async def test_two_hundred_commands_answered_in_order(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with running(centrifugo, bots_yaml(centrifugo, FLAKY, project_id=project)):
        async with human(centrifugo, project, "lobby", "user_carol") as carol:
            for n in range(200):
                await carol.say(f"/echo {n}")
            replies = await carol.replies_from("bot_flaky", 200, timeout=30)
            assert [r["text"] for r in replies] == [str(n) for n in range(200)]
            assert await carol.quiet_from("bot_flaky", 0.5) == []


async def test_failing_handler_and_bad_envelope_do_not_stop_the_bot(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    yaml_text = bots_yaml(centrifugo, FLAKY + COMMANDS, project_id=project)
    async with (
        running(centrifugo, yaml_text) as runtime,
        human(centrifugo, project, "lobby", "user_dave") as dave,
    ):
        await dave.say("/boom")
        await dave.say("/echo still here")
        (echo,) = await dave.replies_from("bot_flaky", 1)
        assert echo["text"] == "still here"
        await dave.publish({"type": "chat.message", "text": "no id or sender"})
        await dave.publish({"not": "an envelope"})
        await dave.say("x" * 5000)  # over the text limit
        await dave.say("/ping")
        (pong,) = await dave.replies_from("bot_commands", 1)
        assert pong["text"] == "pong"
    flaky_stats = runtime.runners["flaky"].stats
    assert flaky_stats.handler_errors == 1
    assert flaky_stats.invalid == 3
    assert runtime.runners["commands"].stats.invalid == 3


async def test_spoofed_sender_gets_no_reply(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, COMMANDS, project_id=project)) as rt,
        human(centrifugo, project, "lobby", "user_eve") as eve,
    ):
        await eve.say("/ping", sender_id="user_admin")
        assert await eve.quiet_from("bot_commands", 1.5) == []
        await eve.say("/ping")
        (pong,) = await eve.replies_from("bot_commands", 1)
        assert pong["text"] == "pong"
    assert rt.runners["commands"].stats.spoofed == 1


async def test_two_bots_do_not_answer_each_other(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    two_chatty = """\
- name: chatty_a
  plugin: tests.plugins.chatty
  user_id: bot_chatty_a
  rooms: [lobby]
- name: chatty_b
  plugin: tests.plugins.chatty
  user_id: bot_chatty_b
  rooms: [lobby]
"""
    async with (
        running(centrifugo, bots_yaml(centrifugo, two_chatty, project_id=project)) as rt,
        human(centrifugo, project, "lobby", "user_frank") as frank,
    ):
        await frank.say("hello bots")
        (a,) = await frank.replies_from("bot_chatty_a", 1)
        assert a["text"] == "/echo bot_chatty_a heard hello bots"
        await asyncio.sleep(1.5)
    assert rt.runners["chatty_a"].services.replies_sent == 1
    assert rt.runners["chatty_b"].services.replies_sent == 1
    # Each heard the other's reply and let it pass.
    assert rt.runners["chatty_a"].stats.from_bots >= 1
    assert rt.runners["chatty_b"].stats.from_bots >= 1


async def test_handler_sees_messages_in_order(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    flaky.seen.clear()
    async with (
        running(centrifugo, bots_yaml(centrifugo, FLAKY, project_id=project)),
        human(centrifugo, project, "lobby", "user_gina") as gina,
    ):
        for n in range(20):
            await gina.say(f"message {n}")
        await gina.say("/echo done")
        await gina.replies_from("bot_flaky", 1)
    assert flaky.seen == [f"message {n}" for n in range(20)]


async def test_connection_cut_mid_stream_answers_every_command_once(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with TcpProxy("127.0.0.1", centrifugo.port) as proxy:
        yaml_text = bots_yaml(centrifugo, FLAKY, project_id=project,
                              realtime_url=proxy.rewrite(centrifugo.ws_url))
        async with running(centrifugo, yaml_text) as runtime, \
                human(centrifugo, project, "lobby", "user_hank") as hank:
            client = runtime.runners["flaky"].client
            cutter = asyncio.ensure_future(cut_when_connected(
                proxy, lambda: client.state is ConnectionState.CONNECTED, times=3))
            for n in range(150):
                await hank.say(f"/echo {n}")
                await asyncio.sleep(0.004)
            assert await cutter == [1, 1, 1]
            replies = await hank.replies_from("bot_flaky", 150, timeout=30)
            assert [r["text"] for r in replies] == [str(n) for n in range(150)]
            assert await hank.quiet_from("bot_flaky", 1.0) == []
            assert client.reconnects == 3
