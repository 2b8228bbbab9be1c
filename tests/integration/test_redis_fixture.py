"""The replica tests' Redis is real: it answers, keeps keys, and a restart empties it."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis

from tests.support.redis_server import LocalRedis


async def test_redis_answers_and_forgets_on_restart(make_redis: Callable[[], LocalRedis]) -> None:
    server = make_redis()
    client = aioredis.Redis.from_url(server.url)
    try:
        assert await client.set("botkit:probe", "1", nx=True, px=5000)
        assert not await client.set("botkit:probe", "2", nx=True, px=5000)
        server.stop()
        server.start()
    finally:
        await client.aclose()
    # A restart drops every connection: a client must reconnect (and find nothing persisted).
    client = aioredis.Redis.from_url(server.url)
    try:
        assert await client.get("botkit:probe") is None
    finally:
        await client.aclose()
