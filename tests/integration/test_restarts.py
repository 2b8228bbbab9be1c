"""Zero-loss restarts (issue 11), with real ``botkit run`` processes and real signals, on both
servers: what was sent while the bot was down is answered once, in order, when it starts again;
what is older than ``catch_up.max_age`` is skipped; a position the server no longer knows is a
gap, told once; the welcome bot greets who joined meanwhile, and only them.

Every test stops the bot with SIGTERM (``--grace 2s``) or SIGKILL, talks to the room while it is
down, and starts it again on the same state file.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.envelope import chat_message, envelope_to_dict, utc_now
from botkit.tokens import chat_channel
from botkit.ulid import new_ulid
from tests.support.botkit_run import BotkitRun, Replies, botkit_run, with_top_level
from tests.support.humans import human
from tests.support.runtime_support import bots_yaml, new_project, running

REPLAYS = """\
- name: replays
  plugin: tests.plugins.replays
  user_id: bot_replays
  rooms: [lobby]
"""
ANNOUNCER = """\
- name: announcer
  plugin: bots.announcer
  user_id: bot_announcer
  rooms: [arena]
  catch_up: {max_age: 1h}
"""
GAPS = """\
- name: gaps
  plugin: tests.plugins.gaps
  user_id: bot_gaps
  rooms: [lobby]
"""
WELCOME = """\
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
  rooms: [lobby]
"""
_PROBE = re.compile(r"(\S+) replayed=(True|False) age=(\S+)")


def write_config(tmp_path: Path, server: LocalCentrifugo, bots: str, *, project: str,
                 top: str = "") -> Path:
    """bots.yaml for ``server`` with ``bots``, state in ``tmp_path/state.sqlite``."""
    text = bots_yaml(server, bots, project_id=project,
                     state_path=str(tmp_path / "state.sqlite"))
    config = tmp_path / "bots.yaml"
    config.write_text(with_top_level(text, top) if top else text)
    return config


async def api_publish(server: LocalCentrifugo, project: str, room: str,
                      data: dict[str, Any]) -> None:
    """Publish ``data`` into ``room`` through the server API (as a game server would)."""
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.post(f"{server.api_url}/publish", headers={
            "X-API-Key": server.api_key}, json={"channel": chat_channel(project, room),
                                                 "data": data})
    assert answer.status_code == 200, answer.text
    assert "error" not in answer.json(), answer.text


def probes(replies: Replies) -> list[tuple[str, bool, str]]:
    """(word, ctx.replayed, ctx.age) of each /probe answer."""
    out = []
    for text in replies.texts():
        found = _PROBE.fullmatch(text)
        assert found is not None, text
        out.append((found.group(1), found.group(2) == "True", found.group(3)))
    return out


def has_all(expected: list[str]) -> Callable[[list[dict[str, Any]]], bool]:
    wanted = set(expected)
    return lambda seen: wanted <= {str(reply.get("text")).split(" ", 1)[0] for reply in seen}


# -- catch-up ----------------------------------------------------------------------------------

@pytest.mark.server
async def test_commands_sent_during_a_sigterm_restart_are_answered_once_in_order(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    config = write_config(tmp_path, centrifugo, REPLAYS, project=project)
    async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
        replies = Replies(ivy, "bot_replays")
        async with botkit_run(config, centrifugo.api_key) as first:
            await first.serving("replays")
            sent = [await ivy.say("/probe before")]
            await replies.count(1)
            assert await first.stop(signal.SIGTERM) == 0, first.log()
        down = [f"d{index:02d}" for index in range(20)]
        sent += [await ivy.say(f"/probe {word}") for word in down]
        async with botkit_run(config, centrifugo.api_key) as second:
            await second.serving("replays")
            await replies.until(has_all(down), "the 20 commands sent while it was down")
            sent.append(await ivy.say("/probe after"))
            await replies.until(has_all(["after"]), "the command sent after the restart")
            await replies.settle(1.0)  # a second answer to anything would show by now
            assert await second.stop(signal.SIGTERM) == 0, second.log()
    answered = probes(replies)
    assert [word for word, _, _ in answered] == ["before", *down, "after"]
    assert [reply.get("replyTo") for reply in replies.seen] == sent
    assert [replayed for _, replayed, _ in answered] == [False, *[True] * 20, False]
    # Each of them waited at least as long as the process took to start.
    assert all(age != "none" and float(age) > 0 for _, _, age in answered[1:-1]), answered


@pytest.mark.server
async def test_sigkill_during_a_stream_of_300_commands_loses_none_and_repeats_none(
        make_centrifugo: Callable[..., LocalCentrifugo], tmp_path: Path) -> None:
    # 300 commands and 300 answers in one room: the history must hold them all. (Recovery
    # returns at most 300 publications, recovery_max_publication_limit; the rest is paged
    # from history.)
    server = make_centrifugo(history_size=1000, history_ttl="600s")
    project = new_project()
    config = write_config(tmp_path, server, REPLAYS, project=project)
    expected = [f"c{index:03d}" for index in range(300)]
    sent: list[str] = []
    async with human(server, project, "lobby", "user_ivy") as ivy:
        replies = Replies(ivy, "bot_replays")
        # A bot that has run before: its position is stored (a clean stop writes it).
        async with botkit_run(config, server.api_key) as earlier:
            await earlier.serving("replays")
            sent.append(await ivy.say("/echo warm"))
            await replies.count(1)
            assert await earlier.stop(signal.SIGTERM) == 0, earlier.log()
        killed = BotkitRun(config, server.api_key)
        await killed.start()
        try:
            await killed.serving("replays")

            async def stream() -> None:
                for word in expected:
                    sent.append(await ivy.say(f"/echo {word}"))
                    await asyncio.sleep(0.005)

            async with asyncio.TaskGroup() as group:
                streaming = group.create_task(stream())
                await replies.count(1 + 100, timeout=30)
                assert await killed.stop(signal.SIGKILL) == -signal.SIGKILL
                answered_before_kill = len(replies.seen) - 1
                await streaming
        finally:
            await killed.close()
        assert answered_before_kill < 300
        async with botkit_run(config, server.api_key) as again:
            await replies.until(has_all(expected), "all 300 commands answered", timeout=45)
            await replies.settle(1.5)  # a replayed answer would come now
            assert await again.stop(signal.SIGTERM) == 0, again.log()
    texts = replies.texts()
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    assert repeated == [], f"answered twice: {repeated}"
    assert texts == ["warm", *expected]
    assert [reply.get("replyTo") for reply in replies.seen] == sent


@pytest.mark.server
async def test_a_crash_before_the_first_write_of_positions_loses_nothing(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    # A bot's first run, killed right after its first answer: before the first periodic
    # write of its positions, if the runtime writes them only once a second. What is sent
    # while it is down must still be answered at the next start (the crash may replay the
    # unflushed second, never lose what came after it).
    project = new_project()
    config = write_config(tmp_path, centrifugo, REPLAYS, project=project)
    async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
        replies = Replies(ivy, "bot_replays")
        first = BotkitRun(config, centrifugo.api_key)
        await first.start()
        try:
            await first.serving("replays")
            await ivy.say("/echo first")
            await replies.count(1)
            assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
        finally:
            await first.close()
        await ivy.say("/echo down")
        async with botkit_run(config, centrifugo.api_key) as second:
            await replies.until(has_all(["down"]), "the command sent while it was down")
            await replies.settle(1.0)  # "first" replayed would be dropped by the server
            assert await second.stop(signal.SIGTERM) == 0, second.log()
    assert replies.texts() == ["first", "down"]


# -- the age policy ----------------------------------------------------------------------------

async def _stale_while_down(server: LocalCentrifugo, project: str, ivy: Any) -> float:
    """While the bots are down: /echo stale (sent now), /echo ancient (sentAt 3 hours ago) and
    a match.ended through the server API. Returns when /echo stale was sent (monotonic)."""
    await ivy.say("/echo stale")
    stale_at = time.monotonic()
    ancient = chat_message(room_id="lobby", sender_id="user_ivy", text="/echo ancient",
                           sent_at=utc_now() - timedelta(hours=3))
    await ivy.publish(envelope_to_dict(ancient))
    await api_publish(server, project, "arena", {
        "type": "match.ended", "id": new_ulid(), "roomId": "arena", "senderId": "game_server",
        "sentAt": utc_now().isoformat().replace("+00:00", "Z"), "matchId": "m1",
        "winner": "red", "scores": {"red": 3, "blue": 1}})
    return stale_at


async def _score(server: LocalCentrifugo, project: str) -> None:
    await api_publish(server, project, "arena", {
        "type": "match.score", "id": new_ulid(), "roomId": "arena", "senderId": "game_server",
        "sentAt": utc_now().isoformat().replace("+00:00", "Z"), "matchId": "m1",
        "scores": {"red": 1, "blue": 0}})


@pytest.mark.server
async def test_commands_older_than_max_age_are_skipped_but_the_announcer_announces(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    # max_age 2s for every bot (top level), 1h for the announcer (its own).
    config = write_config(tmp_path, centrifugo, REPLAYS + ANNOUNCER, project=project,
                          top="catch_up: {max_age: 2s}")
    async with (human(centrifugo, project, "lobby", "user_ivy") as ivy,
                human(centrifugo, project, "arena", "user_gus") as gus):
        lobby, arena = Replies(ivy, "bot_replays"), Replies(gus, "bot_announcer")
        async with botkit_run(config, centrifugo.api_key) as first:
            await first.serving("replays", "announcer")
            await ivy.say("/echo warm")
            await _score(centrifugo, project)
            await lobby.count(1)
            await arena.count(1)
            assert await first.stop(signal.SIGTERM) == 0, first.log()
        stale_at = await _stale_while_down(centrifugo, project, ivy)
        await asyncio.sleep(max(0.0, stale_at + 2.5 - time.monotonic()))  # past max_age
        async with botkit_run(config, centrifugo.api_key) as second:
            await second.serving("replays", "announcer")
            await arena.count(2)
            await ivy.say("/echo live")
            await lobby.until(has_all(["live"]), "the live command answered")
            await lobby.settle(1.0)
            assert await second.stop(signal.SIGTERM) == 0, second.log()
    assert lobby.texts() == ["warm", "live"]  # neither stale one answered
    assert arena.texts() == ["📊 red 1 · blue 0", "🏆 red wins 3-1"]


@pytest.mark.server
async def test_skipped_envelopes_are_counted_in_the_bots_stats(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    # The same story in-process, where BotStats can be read: skipped_old counts the two
    # commands the bot did not answer, and nothing of the announcer's.
    project = new_project()
    text = with_top_level(bots_yaml(centrifugo, REPLAYS + ANNOUNCER, project_id=project,
                                    state_path=str(tmp_path / "state.sqlite")),
                          "catch_up: {max_age: 2s}")
    async with (human(centrifugo, project, "lobby", "user_ivy") as ivy,
                human(centrifugo, project, "arena", "user_gus") as gus):
        lobby, arena = Replies(ivy, "bot_replays"), Replies(gus, "bot_announcer")
        async with running(centrifugo, text, grace=2.0):
            await ivy.say("/echo warm")
            await _score(centrifugo, project)
            await lobby.count(1)
            await arena.count(1)
        stale_at = await _stale_while_down(centrifugo, project, ivy)
        await asyncio.sleep(max(0.0, stale_at + 2.5 - time.monotonic()))
        async with running(centrifugo, text, grace=2.0) as runtime:
            await arena.count(2)
            await ivy.say("/echo live")
            await lobby.until(has_all(["live"]), "the live command answered")
            stats = {name: runner.stats for name, runner in runtime.runners.items()}
    assert lobby.texts() == ["warm", "live"]
    assert stats["replays"].skipped_old == 2
    assert stats["announcer"].skipped_old == 0
    assert stats["replays"].gaps == 0
    assert stats["announcer"].gaps == 0


# -- gaps --------------------------------------------------------------------------------------

_GAP_WORDS = re.compile(r"gap|miss|lost|recover|epoch", re.IGNORECASE)
_RUNTIME_WARNING = re.compile(r"\S+ WARNING +botkit\.(?!bot\.)\S+: (.*)")


@pytest.mark.server
async def test_a_position_in_an_epoch_the_server_forgot_is_one_gap(
        make_centrifugo: Callable[..., LocalCentrifugo], tmp_path: Path) -> None:
    server = make_centrifugo()
    project = new_project()
    config = write_config(tmp_path, server, GAPS, project=project)
    async with human(server, project, "lobby", "user_ivy") as ivy:
        replies = Replies(ivy, "bot_gaps")
        async with botkit_run(config, server.api_key) as first:
            await first.serving("gaps")
            await ivy.say("/echo one")
            await replies.count(1)
            assert await first.stop(signal.SIGTERM) == 0, first.log()
    # Killed and started again: the memory engine's streams start over in a new epoch.
    await asyncio.to_thread(server.restart)
    async with human(server, project, "lobby", "user_jo") as jo:
        replies = Replies(jo, "bot_gaps")
        async with botkit_run(config, server.api_key) as second:
            await second.serving("gaps")
            await second.wait_for("on_gap called", timeout=15)
            await jo.say("/echo two")
            await replies.count(1)
            await replies.settle(1.0)
            assert await second.stop(signal.SIGTERM) == 0, second.log()
    assert replies.texts() == ["two"]  # live messages are answered after the gap
    log = second.log()
    hooks = [line for line in second.lines if "on_gap called" in line]
    assert len(hooks) == 1, log
    assert "room=lobby" in hooks[0], hooks[0]
    assert "reason=''" not in hooks[0], hooks[0]
    warnings = [found.group(1) for found in map(_RUNTIME_WARNING.match, second.lines)
                if found is not None and "lobby" in found.group(1)
                and _GAP_WORDS.search(found.group(1))]
    assert len(warnings) == 1, log
    assert "Traceback" not in log


# -- presence ----------------------------------------------------------------------------------

@pytest.mark.server
async def test_the_welcome_bot_greets_who_joined_while_it_was_down_and_only_them(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    config = write_config(tmp_path, centrifugo, WELCOME, project=project)
    first = BotkitRun(config, centrifugo.api_key)
    await first.start()
    try:
        await first.serving("welcome")
        # "serving" comes before the bot's first read of the room's presence is done, and a
        # join pushed while that read runs is taken for someone already there, not greeted
        # (a race of its own, not this test's subject): alice comes once it is over.
        await asyncio.sleep(1.0)
        async with human(centrifugo, project, "lobby", "user_alice") as alice:
            greetings = Replies(alice, "bot_welcome")
            await greetings.count(1)  # alice joined while it served
            assert await first.stop(signal.SIGTERM) == 0, first.log()
            async with (human(centrifugo, project, "lobby", "user_bob"),
                        botkit_run(config, centrifugo.api_key) as second):
                await second.serving("welcome")
                await greetings.count(2, timeout=10)
                await greetings.settle(2.5)  # past a presence update (2 s in the tests)
                assert await second.stop(signal.SIGTERM) == 0, second.log()
    finally:
        await first.close()
    # Bob joined while the bot was down: greeted once. Alice was greeted before: not again.
    assert greetings.texts() == ["Welcome, user_alice!", "Welcome, user_bob!"]
