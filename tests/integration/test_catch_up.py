"""Zero-loss restarts (issue 11) against both servers: a bot that stops and starts again handles
what was published meanwhile, in order, each once (recovered by the server, or paged from
history past its recovery limit), skips what is older than ``catch_up.max_age``, reports a
stream the server lost as one gap, and greets only who joined while it was down."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from botkit.envelope import chat_message, envelope_to_dict, format_timestamp
from botkit.serverapi.client import ServerApi
from botkit.tokens import chat_channel
from botkit.ulid import new_ulid
from tests.plugins import catchup
from tests.support.humans import Human, human
from tests.support.runtime_support import bots_yaml, new_project, running

pytestmark = pytest.mark.server

CATCHUP = """\
- name: catchup
  plugin: tests.plugins.catchup
  user_id: bot_catchup
  rooms: [lobby]
"""


def _yaml(server: Any, bots: str, project: str, state: Path, top: str = "") -> str:
    text = bots_yaml(server, bots, project_id=project, state_path=str(state))
    return text.replace("bots:\n", f"{top}bots:\n", 1) if top else text


async def _warm_up(person: Human) -> None:
    """One command answered live: the bot is subscribed and its position is known."""
    await person.say("/echo warmup")
    (reply,) = await person.replies_from("bot_catchup", 1)
    assert reply["text"] == "warmup live"


async def _missed(person: Human, count: int) -> list[str]:
    return [await person.say(f"/echo {n}") for n in range(count)]


async def test_commands_sent_while_stopped_are_answered_once_in_order_after_start(
        centrifugo: Any, tmp_path: Path) -> None:
    project = new_project()
    yaml_text = _yaml(centrifugo, CATCHUP, project, tmp_path / "state.sqlite")
    async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
        async with running(centrifugo, yaml_text):
            await _warm_up(ivy)
        sent = await _missed(ivy, 20)
        async with running(centrifugo, yaml_text) as runtime:
            replies = await ivy.replies_from("bot_catchup", 20, timeout=20)
            assert [r["text"] for r in replies] == [f"{n} replayed" for n in range(20)]
            assert [r["replyTo"] for r in replies] == sent
            await ivy.say("/echo after")
            (live,) = await ivy.replies_from("bot_catchup", 1)
            assert live["text"] == "after live"
            assert await ivy.quiet_from("bot_catchup", 1.0) == []
            stats = runtime.runners["catchup"].stats
            assert (stats.gaps, stats.skipped_old) == (0, 0)


async def test_more_than_the_recovery_limit_is_paged_from_history(
        make_centrifugo: Any, tmp_path: Path) -> None:
    # 350 > recovery_max_publication_limit (300): the server answers recovered: false, and
    # the bot reads the rest from history, still in order and each once.
    server = make_centrifugo(history_size=1000)
    project = new_project()
    yaml_text = _yaml(server, CATCHUP, project, tmp_path / "state.sqlite")
    async with human(server, project, "lobby", "user_jay") as jay:
        async with running(server, yaml_text):
            await _warm_up(jay)
        sent = await _missed(jay, 350)
        async with running(server, yaml_text) as runtime:
            replies = await jay.replies_from("bot_catchup", 350, timeout=60)
            assert [r["text"] for r in replies] == [f"{n} replayed" for n in range(350)]
            assert [r["replyTo"] for r in replies] == sent
            assert await jay.quiet_from("bot_catchup", 1.0) == []
            assert runtime.runners["catchup"].stats.gaps == 0


async def test_catch_up_disabled_starts_from_the_live_stream(
        centrifugo: Any, tmp_path: Path) -> None:
    project = new_project()
    yaml_text = _yaml(centrifugo, CATCHUP, project, tmp_path / "state.sqlite",
                      top="catch_up: {enabled: false}\n")
    async with human(centrifugo, project, "lobby", "user_kim") as kim:
        async with running(centrifugo, yaml_text):
            await _warm_up(kim)
        await _missed(kim, 3)
        async with running(centrifugo, yaml_text):
            await kim.say("/echo now")
            (reply,) = await kim.replies_from("bot_catchup", 1)
            assert reply["text"] == "now live"
            assert await kim.quiet_from("bot_catchup", 0.5) == []


ANNOUNCER = """\
- name: commands
  plugin: bots.commands
  user_id: bot_commands
  rooms: [lobby]
- name: announcer
  plugin: bots.announcer
  user_id: bot_announcer
  rooms: [lobby]
  catch_up: {max_age: 1h}
"""


async def test_old_commands_are_skipped_but_an_announcer_with_a_long_max_age_announces(
        centrifugo: Any, tmp_path: Path) -> None:
    project = new_project()
    yaml_text = _yaml(centrifugo, ANNOUNCER, project, tmp_path / "state.sqlite")
    channel = chat_channel(project, "lobby")
    async with human(centrifugo, project, "lobby", "user_lee") as lee:
        async with running(centrifugo, yaml_text):
            await lee.say("/ping")
            await lee.replies_from("bot_commands", 1)
        # Sent 20 minutes ago by its sentAt: older than the commands bot's 10m default,
        # younger than the announcer's 1h.
        old = datetime.now(UTC) - timedelta(minutes=20)
        await lee.publish(envelope_to_dict(chat_message(
            room_id="lobby", sender_id="user_lee", text="/ping", sent_at=old)))
        async with ServerApi(centrifugo.api_url, centrifugo.api_key) as api:
            await api.publish(channel, {
                "type": "match.ended", "id": new_ulid(), "roomId": "lobby",
                "senderId": "game_server", "sentAt": format_timestamp(old),
                "matchId": "m1", "winner": "red", "scores": {"red": 3, "blue": 1}})
        async with running(centrifugo, yaml_text) as runtime:
            (announced,) = await lee.replies_from("bot_announcer", 1, timeout=10)
            assert announced["text"] == "🏆 red wins 3-1"
            assert await lee.quiet_from("bot_commands", 1.0) == []
            assert runtime.runners["commands"].stats.skipped_old == 1
            assert runtime.runners["announcer"].stats.skipped_old == 0


async def test_a_position_in_an_epoch_the_server_lost_is_one_gap(
        make_centrifugo: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = make_centrifugo()
    project = new_project()
    yaml_text = _yaml(server, CATCHUP, project, tmp_path / "state.sqlite")
    catchup.gaps.clear()
    async with human(server, project, "lobby", "user_max") as max_:
        async with running(server, yaml_text):
            await _warm_up(max_)
    await asyncio.to_thread(server.restart)  # killed: the memory engine forgets the stream
    caplog.set_level(logging.WARNING, "botkit.runtime.supervisor")
    async with human(server, project, "lobby", "user_max") as max_, \
            running(server, yaml_text) as runtime:
        await max_.say("/echo live")
        (reply,) = await max_.replies_from("bot_catchup", 1)
        assert reply["text"] == "live live"
        assert runtime.runners["catchup"].stats.gaps == 1
    assert [(room, gap.reason) for room, gap in catchup.gaps] == [("lobby", "new epoch")]
    assert catchup.gaps[0][1].since.offset >= 1
    warnings = [r.getMessage() for r in caplog.records if "may be lost" in r.getMessage()]
    assert len(warnings) == 1
    assert "room lobby" in warnings[0]


WELCOME = """\
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
  rooms: [lobby]
  settings: {greeting: "Welcome, {user}!", cooldown_seconds: 0}
"""


async def test_after_a_restart_only_who_joined_meanwhile_is_greeted(
        centrifugo: Any, tmp_path: Path) -> None:
    # No cooldown in state: the rule is the runtime's own. Who was present at the stop is
    # stored with the positions; at start the bot greets who is present now and was not then.
    project = new_project()
    yaml_text = _yaml(centrifugo, WELCOME, project, tmp_path / "state.sqlite")
    nia = Human(centrifugo, project, "lobby", "user_nia")
    try:
        async with running(centrifugo, yaml_text):
            await nia.enter()
            (greeting,) = await nia.replies_from("bot_welcome", 1)
            assert greeting["text"] == "Welcome, user_nia!"
            await asyncio.sleep(1.5)  # past a flush: the room's presence is stored
        async with human(centrifugo, project, "lobby", "user_oto"):
            async with running(centrifugo, yaml_text):
                (greeting,) = await nia.replies_from("bot_welcome", 1)
                assert greeting["text"] == "Welcome, user_oto!"
                assert await nia.quiet_from("bot_welcome", 1.5) == []
    finally:
        await nia.leave()
