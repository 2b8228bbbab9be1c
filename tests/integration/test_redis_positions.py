"""Stream positions in Redis with fencing tokens (issue 12): a replica that lost a room's lease
writes with a stale token, and Redis refuses it, so a position never moves backwards. Without a
fence (a single process, SQLite or memory) positions are written as before."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from botkit.config import ClusterConfig
from botkit.protocol.types import StreamPosition
from botkit.runtime.positions import NAMESPACE, Positions
from botkit.runtime.presence import RoomPresence
from botkit.state.memory import MemoryStateStore
from botkit.state.redis import RedisStateStore, open_redis
from botkit.ulid import new_ulid
from tests.support.redis_server import LocalRedis


@pytest.fixture
async def client(redis_server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    opened = open_redis(ClusterConfig.model_validate({"redis_url": redis_server.url}),
                        timeout=3.0)
    try:
        yield opened
    finally:
        await opened.aclose()


def replica(store: object, fences: dict[str, int | None]) -> Positions:
    positions = Positions(store, "dice", ["lobby", "side"],  # type: ignore[arg-type]
                          {"lobby": RoomPresence(), "side": RoomPresence()},
                          fence=fences.get)
    for cursor in positions.cursors.values():
        cursor.epoch = "e1"
    return positions


async def test_a_stale_lease_holder_cannot_move_a_position_back(
        client: aioredis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    project = f"p{new_ulid().lower()}"
    async with RedisStateStore(client, project) as store_a, \
            RedisStateStore(client, project) as store_b:
        old_fences: dict[str, int | None] = {"lobby": 1, "side": 1}
        old = replica(store_a, old_fences)  # held both rooms with token 1, then paused
        new = replica(store_b, {"lobby": 2, "side": None})  # took the lobby over: token 2
        old.cursors["lobby"].offset = 5
        await old.flush()
        new.cursors["lobby"].offset = 9
        await new.flush()
        old.cursors["lobby"].offset = 7  # the paused replica wakes up and flushes
        old.cursors["side"].offset = 3  # a room it still holds is written as usual
        with caplog.at_level(logging.WARNING, "botkit.runtime"):
            await old.flush()
            old.cursors["lobby"].offset = 8
            await old.flush()  # refused again, and not logged again
        rows = await Positions(store_b, "dice", ["lobby", "side"],
                               {"lobby": RoomPresence(), "side": RoomPresence()}).load()
        assert rows["lobby"].position == StreamPosition(9, "e1")
        assert rows["side"].position == StreamPosition(3, "e1")
        refusals = [r for r in caplog.records if "fencing token 1 is stale" in r.getMessage()]
        assert len(refusals) == 1
        assert "room lobby" in refusals[0].getMessage()
        # Holding the lease again (a newer token), it writes again.
        old_fences["lobby"] = 3
        await old.flush()
        assert (await store_b.get(NAMESPACE, "dice:lobby"))["offset"] == 8
        assert await client.get(f"botkit:{project}:fence:{NAMESPACE}:dice:lobby") == "3"


async def test_a_fence_is_ignored_by_a_store_without_fencing() -> None:
    async with MemoryStateStore() as store:
        positions = replica(store, {"lobby": 5})
        positions.cursors["lobby"].offset = 4
        await positions.flush()
        assert (await store.get(NAMESPACE, "dice:lobby"))["offset"] == 4
