"""``botkit run`` with ``cluster:`` (issue 12, the storage half): a real process against real
Centrifugo (and the hub) and a real Redis with a password. It answers, keeps its stream position
in Redis (not in a state file), and never shows the password."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from botkit.dev.localserver import LocalCentrifugo
from tests.support.botkit_run import Replies, botkit_run, with_top_level
from tests.support.humans import human
from tests.support.redis_server import LocalRedis
from tests.support.runtime_support import bots_yaml, new_project

REPLAYS = """\
- name: replays
  plugin: tests.plugins.replays
  user_id: bot_replays
  rooms: [lobby]
"""
PASSWORD = "redis-pass-9f2c41"


async def with_password(server: LocalRedis) -> str:
    """Require ``PASSWORD`` on ``server``; its URL with the password."""
    admin = aioredis.Redis.from_url(server.url)
    try:
        await admin.config_set("requirepass", PASSWORD)
    finally:
        await admin.aclose()
    return server.url.replace("://", f"://:{PASSWORD}@")


@pytest.mark.server
async def test_a_cluster_run_answers_and_keeps_its_position_in_redis(
        centrifugo: LocalCentrifugo, make_redis: Callable[[], LocalRedis],
        tmp_path: Path) -> None:
    url = await with_password(make_redis())
    project = new_project()
    state_file = tmp_path / "state.sqlite"
    text = bots_yaml(centrifugo, REPLAYS, project_id=project, state_path=str(state_file))
    config = tmp_path / "bots.yaml"
    config.write_text(with_top_level(text, "cluster:\n  redis_url: ${REDIS_URL}\n"
                                           "  replica_id: replica-a\n"))
    async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
        replies = Replies(ivy, "bot_replays")
        async with botkit_run(config, centrifugo.api_key,
                              extra_env={"REDIS_URL": url}) as run:
            await run.serving("replays")
            await ivy.say("/echo hello")
            await replies.until(lambda seen: "hello" in [r.get("text") for r in seen],
                                "the answer to /echo hello")
            assert await run.stop(signal.SIGTERM) == 0, run.log()
    assert PASSWORD not in run.log()
    assert not state_file.exists()  # with cluster: the state file is neither made nor locked
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        row = await client.get(f"botkit:{project}:state:botkit.positions:replays:lobby")
    finally:
        await client.aclose()
    assert row is not None, "no position in Redis"
    position = json.loads(row)
    assert isinstance(position["epoch"], str)
    # At least /echo hello (offset 1). Its answer (offset 2) may still be on its way back to the
    # bot when SIGTERM arrives: the person can see the answer before the bot's own socket does.
    assert position["offset"] >= 1


@pytest.mark.server
async def test_a_cluster_run_with_redis_down_fails_naming_the_setting(
        centrifugo: LocalCentrifugo, make_redis: Callable[[], LocalRedis],
        tmp_path: Path) -> None:
    server = make_redis()
    url = await with_password(server)
    server.stop()
    project = new_project()
    text = bots_yaml(centrifugo, REPLAYS, project_id=project,
                     state_path=str(tmp_path / "state.sqlite"))
    config = tmp_path / "bots.yaml"
    config.write_text(with_top_level(text, f"cluster:\n  redis_url: '{url}'\n"))
    async with botkit_run(config, centrifugo.api_key) as run:
        code = await run.stop(0)  # signal 0: just wait for it to end
    assert code != 0, run.log()
    assert "cluster.redis_url" in run.log()
    assert PASSWORD not in run.log()


TIMED = """\
- name: timed
  plugin: tests.plugins.timed
  user_id: bot_timed
  rooms: [lobby]
"""


@pytest.mark.server
async def test_a_cluster_run_keeps_scheduled_jobs_in_redis_for_the_next_run(
        centrifugo: LocalCentrifugo, redis_server: LocalRedis, tmp_path: Path) -> None:
    project = new_project()
    text = bots_yaml(centrifugo, TIMED, project_id=project)
    config = tmp_path / "bots.yaml"
    config.write_text(with_top_level(text, f"cluster: {{redis_url: '{redis_server.url}'}}\n"))
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
            replies = Replies(ivy, "bot_timed")
            async with botkit_run(config, centrifugo.api_key) as first:
                await first.serving("timed")
                await ivy.say("/later 4 kept")
                await replies.until(lambda seen: "in 4s" in [r.get("text") for r in seen],
                                    "the job scheduled")
                assert await first.stop(signal.SIGTERM) == 0, first.log()
            row = await client.hget(f"botkit:{project}:jobs", "timed:later:kept")
            assert row is not None, "the job is not in Redis"
            assert json.loads(row)["kwargs"]["text"] == "kept"
            # Another process on the same Redis (a replica, or this one restarted) loads it
            # and fires it.
            async with botkit_run(config, centrifugo.api_key) as second:
                await second.serving("timed")
                await replies.until(lambda seen: "kept" in [r.get("text") for r in seen],
                                    "the stored job fired by the second run", timeout=20)
                assert await second.stop(signal.SIGTERM) == 0, second.log()
            assert await client.hget(f"botkit:{project}:jobs", "timed:later:kept") is None
    finally:
        await client.aclose()


@pytest.mark.server
async def test_a_cluster_run_rides_out_a_redis_restart(
        centrifugo: LocalCentrifugo, make_redis: Callable[[], LocalRedis],
        tmp_path: Path) -> None:
    server = make_redis()
    url = await with_password(server)
    project = new_project()
    text = bots_yaml(centrifugo, REPLAYS, project_id=project)
    config = tmp_path / "bots.yaml"
    config.write_text(with_top_level(text, f"cluster: {{redis_url: '{url}'}}\n"))
    key = f"botkit:{project}:state:botkit.positions:replays:lobby"

    def said(word: str) -> Callable[[list[dict[str, object]]], bool]:
        return lambda seen: word in [reply.get("text") for reply in seen]

    async with human(centrifugo, project, "lobby", "user_ivy") as ivy:
        replies = Replies(ivy, "bot_replays")
        async with botkit_run(config, centrifugo.api_key) as run:
            await run.serving("replays")
            server.stop()
            # Redis down: the bot still answers; its position can't be stored (logged once).
            await ivy.say("/echo during")
            await replies.until(said("during"), "the answer while Redis is down")
            await run.wait_for("cannot store its rooms' positions")
            server.start()  # empty (nothing persisted), without a password: set it again
            await with_password(server)
            await ivy.say("/echo after")
            await replies.until(said("after"), "the answer after the restart")
            await run.wait_for("storing its rooms' positions again")
            assert await run.stop(signal.SIGTERM) == 0, run.log()
    assert PASSWORD not in run.log()
    assert run.count("cannot store its rooms' positions") == 1
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        row = await client.get(key)
    finally:
        await client.aclose()
    assert row is not None
    assert json.loads(row)["offset"] >= 4
