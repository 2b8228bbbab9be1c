"""Rooms never wait for each other (issue 16 item 5): a flood in one room of a bot must not
delay its other rooms. 5,000 commands in room A used to hold a ``/ping`` in room B for 6.2 s on
Centrifugo (132 s on the hub): A's full lane stopped the connection's only reader. Now A's
overflow is read back from A's history once its lane drains, and every command in A is still
answered once, in order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from botkit.envelope import chat_message, envelope_to_dict
from botkit.serverapi.client import ServerApi
from botkit.tokens import chat_channel
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project, running

pytestmark = pytest.mark.server

FLOOD = 5000
ECHO = """\
- name: flaky
  plugin: tests.plugins.flaky
  user_id: bot_flaky
  rooms: [room_a, room_b]
  limits: {room_rate: off}  # every one of the flood's commands is answered at once
"""


async def _flood(server: Any, project: str) -> list[str]:
    """FLOOD commands from user_ann into room A, as fast as the server takes them (batches
    of the server API, in order)."""
    messages = [chat_message(room_id="room_a", sender_id="user_ann", text=f"/echo {n}")
                for n in range(FLOOD)]
    channel = chat_channel(project, "room_a")
    async with ServerApi(server.api_url, server.api_key) as api:
        for start in range(0, FLOOD, 500):
            replies = await api.batch([
                {"publish": {"channel": channel, "data": envelope_to_dict(message)}}
                for message in messages[start:start + 500]])
            assert all("error" not in reply for reply in replies)
    return [message.id for message in messages]


async def test_a_flood_in_one_room_does_not_delay_another(make_centrifugo: Any) -> None:
    server = make_centrifugo(history_size=2 * FLOOD + 100)  # the commands and their replies
    project = new_project()
    async with running(server, bots_yaml(server, ECHO, project_id=project)) as runtime, \
            human(server, project, "room_a", "user_ann") as ann, \
            human(server, project, "room_b", "user_bea") as bea:
        sent = await _flood(server, project)
        stats = runtime.runners["flaky"].stats
        assert stats.handled < FLOOD  # room A is still busy with its backlog
        started = time.monotonic()
        await bea.say("/echo b")
        (reply,) = await bea.replies_from("bot_flaky", 1, timeout=10)
        latency = time.monotonic() - started
        assert reply["text"] == "b"
        assert latency < 0.5, f"room B waited {latency:.2f}s behind room A"
        replies = await ann.replies_from("bot_flaky", FLOOD, timeout=90)
        assert [r["text"] for r in replies] == [str(n) for n in range(FLOOD)]
        assert [r["replyTo"] for r in replies] == sent
        assert await ann.quiet_from("bot_flaky", 1.0) == []
        assert stats.overflowed > 0  # the isolation was exercised, not a fast lane
        assert stats.gaps == 0


GREETER = """\
- name: greeter
  plugin: tests.plugins.greeter
  user_id: bot_greeter
  rooms: [room_a, room_b]
  limits: {lane_queue_size: 5}
"""


async def test_a_join_during_an_overflow_is_greeted_once(make_centrifugo: Any) -> None:
    # A tiny lane overflows at once; a join dropped with the overflow is made up by the
    # presence resync after the read-back, one greeting either way.
    server = make_centrifugo(history_size=2 * FLOOD + 100)
    project = new_project()
    async with running(server, bots_yaml(server, GREETER, project_id=project)) as runtime:
        await _flood(server, project)
        async with human(server, project, "room_a", "user_pia") as pia:
            (greeting,) = await pia.replies_from("bot_greeter", 1, timeout=30)
            assert greeting["text"] == "hi user_pia"
            assert await pia.quiet_from("bot_greeter", 1.5) == []
        stats = runtime.runners["greeter"].stats
        assert stats.overflowed > 0
        assert stats.received >= FLOOD  # everything dropped was read back
        assert stats.gaps == 0


CATCHUP_TWO_ROOMS = """\
- name: catchup
  plugin: tests.plugins.catchup
  user_id: bot_catchup
  rooms: [room_a, room_b]
  # The room's history holds 20: a backlog of replies longer than that, published after the
  # live command, would push it out of the history before the overflowed lane reads it back.
  limits: {lane_queue_size: 5, room_rate: off, outbox_size: 5}
"""


async def test_an_overflow_history_no_longer_holds_is_one_gap_then_live(
        make_centrifugo: Any) -> None:
    from tests.plugins import catchup

    server = make_centrifugo(history_size=20)  # far less than the flood
    project = new_project()
    catchup.gaps.clear()
    catchup.gap_seen.clear()
    async with running(server, bots_yaml(server, CATCHUP_TWO_ROOMS, project_id=project)) as rt, \
            human(server, project, "room_a", "user_ann") as ann:
        await _flood(server, project)
        stats = rt.runners["catchup"].stats
        async with asyncio.timeout(30):
            await catchup.gap_seen.wait()
        assert stats.overflowed > 0
        assert {room for room, _ in catchup.gaps} == {"room_a"}
        assert {gap.reason for _, gap in catchup.gaps} <= {"trimmed", "expired"}
        assert stats.gaps >= 1
        # Then it carries on: a command sent after the flood is answered.
        await ann.say("/echo later")
        async with asyncio.timeout(20):
            while True:
                reply = (await ann.replies_from("bot_catchup", 1, timeout=20))[0]
                if reply["text"] == "later live":
                    break
