"""The attacker's view: a hostile room member, played by the official Centrifugo Python SDK,
against the runtime on the real server and on the hub.

The member may publish in the rooms (the seed's prototype mode), so the server attests only
who published; whatever else the JSON says is theirs. They forge a ``user.joined`` (to make the
welcome bot say their text), a ``match.ended`` (to have the announcer crown them) and a
``chat.message`` in someone else's name. The bots must say nothing for any of it, and their
counters must say why; a ``match.ended`` from the game server, through the server API with the
key, is still announced.
"""

from __future__ import annotations

import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.envelope import chat_message, envelope_to_dict, format_timestamp, utc_now
from botkit.serverapi.client import ServerApi
from botkit.tokens import chat_channel
from botkit.ulid import new_ulid
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project, running
from tests.support.waits import eventually

pytestmark = pytest.mark.server

BOTS = """\
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
  rooms: [lobby]
  settings: {greeting: "Welcome, {user}!", cooldown_seconds: 0}
- name: commands
  plugin: bots.commands
  user_id: bot_commands
  rooms: [lobby]
- name: announcer
  plugin: bots.announcer
  user_id: bot_announcer
  rooms: [arena]
"""
MALLORY = "user_mallory"
PAYLOAD = "everyone! Claim free coins at http://evil.example"


def envelope(type_: str, room: str, sender: str, **fields: object) -> dict[str, object]:
    return {"type": type_, "id": new_ulid(), "roomId": room, "senderId": sender,
            "sentAt": format_timestamp(utc_now()), **fields}


async def test_a_hostile_member_cannot_speak_through_the_bots(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, BOTS, project_id=project)) as rt,
        human(centrifugo, project, "lobby", MALLORY) as lobby,
        human(centrifugo, project, "arena", MALLORY) as arena,
    ):
        stats = {name: runner.stats for name, runner in rt.runners.items()}
        # Her own join is real (presence) and greeted; wait for it so it is not mistaken.
        (greeting,) = await lobby.replies_from("bot_welcome", 1)
        assert greeting["text"] == f"Welcome, {MALLORY}!"

        # 1. "Someone joined", in her own name (so the sender check passes), naming anyone.
        for index in range(3):
            await lobby.publish(envelope("user.joined", "lobby", MALLORY,
                                         userId=f"{PAYLOAD} #{index}"))
        # 2. The game's result, as if the game server had published it.
        await arena.publish(envelope("match.ended", "arena", MALLORY, matchId="m1",
                                     winner="Mallory", scores={"mallory": 10, "bob": 0}))
        # 3. A command in the admin's name.
        await lobby.publish(envelope_to_dict(chat_message(
            room_id="lobby", sender_id="user_admin", text="/ping")))

        # The game server's own result, through the server API: still announced.
        async with ServerApi(centrifugo.api_url, centrifugo.api_key) as api:
            await api.publish(chat_channel(project, "arena"), envelope(
                "match.ended", "arena", "game_server", matchId="m2", winner="Bob",
                scores={"bob": 3, "mallory": 1}))
        (announced,) = await arena.replies_from("bot_announcer", 1)
        assert announced["text"] == "🏆 Bob wins 3-1"

        # What the bots said meanwhile, and for a while after: nothing for her.
        await eventually(lambda: stats["welcome"].untrusted == 3, "welcome refused 3 joins")
        await eventually(lambda: stats["commands"].spoofed == 1, "commands refused the spoof")
        assert await lobby.quiet_from("bot_welcome", 1.0) == []
        assert await lobby.quiet_from("bot_commands", 0.2) == []
        assert await arena.quiet_from("bot_announcer", 0.5) == []

        # Why, per bot: the counters name each refusal.
        assert (stats["welcome"].untrusted, stats["welcome"].spoofed) == (3, 1)
        assert (stats["announcer"].untrusted, stats["announcer"].handled) == (1, 1)
        assert (stats["commands"].spoofed, stats["commands"].untrusted) == (1, 3)
        assert stats["commands"].handled == 0
