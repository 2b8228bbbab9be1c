"""The harness tells the truth: one script played through the harness and against the real
server gives the same replies and the same counters."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.runtime.core import BotStats
from botkit.testing import BotHarness
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project, running

pytestmark = pytest.mark.server

COMMANDS = """\
- name: commands
  plugin: bots.commands
  user_id: bot_commands
  rooms: [lobby]
"""
ALICE = "user_alice"


def envelope(n: int, text: str, sender: str = ALICE) -> dict[str, Any]:
    return {"type": "chat.message", "id": f"01JTESTSCRIPT{n:013d}", "roomId": "lobby",
            "senderId": sender, "text": text, "sentAt": "2026-03-24T12:00:00.000Z"}


# What alice's client publishes, in order: commands, a spoof, garbage, plain talk.
SCRIPT: list[Any] = [
    envelope(1, "/ping"),
    envelope(2, "/ping", sender="user_admin"),
    {"not": "an envelope"},
    {"type": "chat.message", "text": "no id, no sender"},
    envelope(3, "/roll 2x"),
    envelope(4, "/roll 0d6"),
    envelope(5, "hello, anyone?"),
    envelope(6, "/help"),
    envelope(7, "/who"),
    envelope(8, "/ping"),
]


def seen(data: dict[str, Any]) -> tuple[Any, ...]:
    """A reply without what differs from one run to the next (its own id and time)."""
    return (data["type"], data["roomId"], data["senderId"], data.get("text"),
            data.get("replyTo"))


COUNTERS = ("received", "handled", "invalid", "spoofed", "own", "from_bots",
            "handler_errors", "handler_timeouts")


def counters(stats: BotStats) -> dict[str, int]:
    values = dataclasses.asdict(stats)
    return {name: values[name] for name in COUNTERS}


async def test_the_harness_and_the_server_see_the_same_bot(
        centrifugo: LocalCentrifugo) -> None:
    async with BotHarness.load("bots.commands", user_id="bot_commands") as h:
        await h.join(ALICE)
        for data in SCRIPT:
            await h.publish(data, as_user=ALICE, raw=True)
    expected = [seen(reply.data) for reply in h.published]
    assert [text for _type, _room, _sender, text, _to in expected][:3] == [
        "pong", "Usage: /roll [dice] (dice look like NdM, e.g. 2d6)",
        "Usage: /roll [dice] (roll 1 to 100 dice of 2 to 1000 sides)"]

    project = new_project()
    async with running(centrifugo, bots_yaml(centrifugo, COMMANDS, project_id=project)) as rt:
        async with human(centrifugo, project, "lobby", ALICE) as alice:
            for data in SCRIPT:
                await alice.publish(data)
            replies = await alice.replies_from("bot_commands", len(expected))
            assert [seen(reply) for reply in replies] == expected
            assert await alice.quiet_from("bot_commands", 1.0) == []
            # The bot's last replies come back to it after alice has seen them: let it count.
            stats = rt.runners["commands"].stats
            for _ in range(100):
                if counters(stats) == counters(h.stats):
                    break
                await asyncio.sleep(0.05)
    assert counters(stats) == counters(h.stats)
