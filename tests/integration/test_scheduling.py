"""Timed jobs, persistent state and the match announcer against the real server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.dev.localserver import LocalCentrifugo
from botkit.envelope import format_timestamp
from botkit.tokens import chat_channel
from botkit.ulid import new_ulid
from tests.support.humans import Human, human
from tests.support.runtime_support import bots_yaml, new_project, running

pytestmark = pytest.mark.server

TIMED = """\
- name: timed
  plugin: tests.plugins.timed
  user_id: bot_timed
  rooms: [lobby]
"""


def announcer(offsets: str = "[2s]") -> str:
    return f"""\
- name: announcer
  plugin: bots.announcer
  user_id: bot_announcer
  rooms: [arena]
  settings: {{offsets: {offsets}, before: "{{title}} in {{when}}", start: "{{title}} now"}}
"""


async def history_texts(server: LocalCentrifugo, channel: str, sender: str) -> list[str]:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.api_url}/history",
                                   json={"channel": channel, "limit": 300},
                                   headers={"X-API-Key": server.api_key})
    publications = response.json()["result"]["publications"]
    return [p["data"]["text"] for p in publications if p["data"].get("senderId") == sender]


async def game_server(server: LocalCentrifugo, project: str, event_type: str,
                      **fields: Any) -> None:
    """The game server publishes a match event through the server API."""
    envelope = {"type": event_type, "id": new_ulid(), "roomId": "arena",
                "senderId": "game_server", "sentAt": format_timestamp(datetime.now(UTC)),
                **fields}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.api_url}/publish",
                                   json={"channel": chat_channel(project, "arena"),
                                         "data": envelope},
                                   headers={"X-API-Key": server.api_key})
    assert "error" not in response.json()


async def texts_until(person: Human, bot_user: str, wanted: set[str], *,
                      timeout: float = 5.0) -> list[str]:
    """What ``bot_user`` says (ticks aside) until every text of ``wanted`` was said once."""
    said: list[str] = []
    async with asyncio.timeout(timeout):
        while not wanted <= set(said):
            (reply,) = await person.replies_from(bot_user, 1, timeout=timeout)
            if reply["text"] != "tick":
                said.append(reply["text"])
    said += [r["text"] for r in await person.quiet_from(bot_user, 0.5) if r["text"] != "tick"]
    return said


def in_seconds(seconds: float) -> str:
    return format_timestamp(datetime.now(UTC) + timedelta(seconds=seconds))


async def test_yaml_interval_announces_the_expected_number_of_times(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    daily = """\
- name: daily
  user_id: bot_daily
  rooms: [lobby]
  schedules:
    - {every: 1s, text: "Daily tournament soon"}
"""
    async with running(centrifugo, bots_yaml(centrifugo, daily, project_id=project)):
        await asyncio.sleep(3.5)
    texts = await history_texts(centrifugo, chat_channel(project, "lobby"), "bot_daily")
    assert texts == ["Daily tournament soon"] * 3


async def test_a_failing_job_does_not_stop_the_others(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with running(centrifugo, bots_yaml(centrifugo, TIMED, project_id=project)) as rt:
        await asyncio.sleep(2.6)
    texts = await history_texts(centrifugo, chat_channel(project, "lobby"), "bot_timed")
    assert texts == ["tick", "tick"]
    stats = rt.runners["timed"].stats
    assert stats.job_errors == 2
    assert stats.jobs_run == 2


async def test_match_announcements_in_order(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, announcer("[2s]"), project_id=project)),
        human(centrifugo, project, "arena", "user_player") as player,
    ):
        started = asyncio.get_running_loop().time()
        await game_server(centrifugo, project, "match.scheduled", matchId="m1",
                          title="Final", startsAt=in_seconds(4))
        first, second = await player.replies_from("bot_announcer", 2, timeout=8)
        elapsed = asyncio.get_running_loop().time() - started
        assert first["text"] == "Final in 2 seconds"
        assert second["text"] == "Final now"
        assert 3.5 <= elapsed <= 6
        await game_server(centrifugo, project, "match.score", matchId="m1",
                          scores={"Blue": 2, "Red": 1})
        await game_server(centrifugo, project, "match.ended", matchId="m1", winner="Blue",
                          scores={"Blue": 3, "Red": 1})
        score, end = await player.replies_from("bot_announcer", 2)
        assert score["text"] == "📊 Blue 2 · Red 1"
        assert end["text"] == "🏆 Blue wins 3-1"


async def test_rescheduled_match_announces_only_the_new_time(
        centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, announcer("[1s]"), project_id=project)),
        human(centrifugo, project, "arena", "user_player") as player,
    ):
        await game_server(centrifugo, project, "match.scheduled", matchId="m2",
                          title="Old", startsAt=in_seconds(2.5))
        await asyncio.sleep(0.3)
        await game_server(centrifugo, project, "match.scheduled", matchId="m2",
                          title="New", startsAt=in_seconds(4))
        first, second = await player.replies_from("bot_announcer", 2, timeout=8)
        assert [first["text"], second["text"]] == ["New in 1 second", "New now"]
        assert await player.quiet_from("bot_announcer", 1.0) == []


async def test_cancelled_match_is_not_announced(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, announcer("[1s]"), project_id=project)),
        human(centrifugo, project, "arena", "user_player") as player,
    ):
        await game_server(centrifugo, project, "match.scheduled", matchId="m3",
                          title="Friendly", startsAt=in_seconds(2))
        await game_server(centrifugo, project, "match.cancelled", matchId="m3")
        (notice,) = await player.replies_from("bot_announcer", 1)
        assert notice["text"] == "❌ Match m3 is cancelled."
        assert await player.quiet_from("bot_announcer", 2.5) == []


async def test_invalid_match_event_is_logged_not_crashed(centrifugo: LocalCentrifugo) -> None:
    project = new_project()
    async with (
        running(centrifugo, bots_yaml(centrifugo, announcer("[1s]"), project_id=project)) as rt,
        human(centrifugo, project, "arena", "user_player") as player,
    ):
        await game_server(centrifugo, project, "match.scheduled", matchId="m4",
                          title="No time")
        await game_server(centrifugo, project, "match.started", matchId="m4", title="Cup")
        (started,) = await player.replies_from("bot_announcer", 1)
        assert started["text"] == "🏁 Cup has started!"
    assert rt.runners["announcer"].stats.invalid == 1


async def test_restart_between_scheduling_and_start_announces_once(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    yaml_text = bots_yaml(centrifugo, announcer("[2s]"), project_id=project,
                          state_path=str(tmp_path / "state.sqlite"))
    async with human(centrifugo, project, "arena", "user_player") as player:
        async with running(centrifugo, yaml_text):
            await game_server(centrifugo, project, "match.scheduled", matchId="m5",
                              title="Semi", startsAt=in_seconds(4))
            await asyncio.sleep(0.5)
        # The daemon is down; the jobs wait in the state file.
        await asyncio.sleep(0.5)
        async with running(centrifugo, yaml_text):
            first, second = await player.replies_from("bot_announcer", 2, timeout=8)
            assert [first["text"], second["text"]] == ["Semi in 2 seconds", "Semi now"]
            assert await player.quiet_from("bot_announcer", 1.0) == []


async def test_job_missed_while_down_runs_once_within_grace(
        centrifugo: LocalCentrifugo, tmp_path: Path) -> None:
    project = new_project()
    yaml_text = bots_yaml(centrifugo, TIMED, project_id=project,
                          state_path=str(tmp_path / "state.sqlite"))
    async with human(centrifugo, project, "lobby", "user_zoe") as zoe:
        async with running(centrifugo, yaml_text):
            await zoe.say("/later 0.5 hello")
            await zoe.say("/later 0.7 forgotten")
            await asyncio.sleep(0.3)
        await asyncio.sleep(1.5)  # both fall due while the daemon is down
        async with running(centrifugo, yaml_text, misfire_grace=60):
            texts = await texts_until(zoe, "bot_timed", {"hello", "forgotten"})
            assert texts.count("hello") == texts.count("forgotten") == 1
    # Beyond the grace period a missed job is logged as missed, not run.
    async with human(centrifugo, project, "lobby", "user_zoe") as zoe:
        async with running(centrifugo, yaml_text):
            await zoe.say("/later 0.3 stale")
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.5)
        async with running(centrifugo, yaml_text, misfire_grace=1) as runtime:
            await asyncio.sleep(0.5)
            said = await zoe.quiet_from("bot_timed", 0.5)
            assert "stale" not in [r["text"] for r in said]
            assert runtime.scheduler is not None
            assert runtime.scheduler.missed == 1


async def test_welcome_cooldown_survives_a_restart(centrifugo: LocalCentrifugo,
                                                   tmp_path: Path) -> None:
    project = new_project()
    welcome = """\
- name: welcome
  plugin: bots.welcome
  user_id: bot_welcome
  rooms: [lobby]
  settings: {greeting: "Welcome, {user}!", cooldown_seconds: 3600}
"""
    yaml_text = bots_yaml(centrifugo, welcome, project_id=project,
                          state_path=str(tmp_path / "state.sqlite"))
    async with human(centrifugo, project, "lobby", "user_watcher") as watcher:
        async with running(centrifugo, yaml_text):
            async with human(centrifugo, project, "lobby", "user_kim"):
                greetings = await watcher.replies_from("bot_welcome", 1)
                assert [g["text"] for g in greetings] == ["Welcome, user_kim!"]
        async with running(centrifugo, yaml_text):
            async with human(centrifugo, project, "lobby", "user_kim"):
                assert await watcher.quiet_from("bot_welcome", 1.5) == []
