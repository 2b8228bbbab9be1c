"""Leases on a real Redis (issue 12): one holder per unit, fences that only grow, renewals that
fail once the lease is someone else's, and a local deadline that ends a lease before Redis
would give it away."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from botkit.runtime.cluster import ClusterKeys, LeaseBook, Unit
from botkit.runtime.cluster.leases import SAFETY
from tests.support.redis_server import LocalRedis

UNIT = Unit("echo", "lobby")


@pytest.fixture
async def client(redis_server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(redis_server.url, socket_timeout=2.0)
    try:
        yield redis
    finally:
        await redis.aclose()


def books(client: aioredis.Redis, ttl: float = 1.0) -> tuple[LeaseBook, LeaseBook]:
    keys = ClusterKeys(f"proj_{secrets.token_hex(4)}")
    return LeaseBook(client, keys, "a", ttl), LeaseBook(client, keys, "b", ttl)


async def test_one_holder_at_a_time_and_each_acquisition_a_larger_fence(
        client: aioredis.Redis) -> None:
    a, b = books(client)
    assert await a.acquire(UNIT) == 1
    assert await b.acquire(UNIT) is None  # held
    assert await b.free([UNIT]) == []
    await a.release(UNIT)
    assert not a.holds(UNIT)
    assert await b.free([UNIT]) == [UNIT]
    assert await b.acquire(UNIT) == 2
    assert b.holds(UNIT)


async def test_a_lease_that_expired_and_was_taken_is_not_renewed(
        client: aioredis.Redis) -> None:
    a, b = books(client, ttl=1.0)
    assert await a.acquire(UNIT) == 1
    assert await a.renew() == []  # still ours
    await asyncio.sleep(1.2)  # expired in Redis: a missed its renewals
    assert await b.acquire(UNIT) == 2
    assert await a.renew() == [UNIT]
    assert not a.holds(UNIT)
    # a's release cannot delete b's lease (check-and-DEL).
    a.fences[UNIT] = 1
    await a.release(UNIT)
    assert await client.get(b._keys.lease(UNIT)) == b"b:2"


async def test_a_lease_ends_locally_before_redis_lets_another_replica_take_it(
        client: aioredis.Redis) -> None:
    a, b = books(client, ttl=1.0)
    assert await a.acquire(UNIT) == 1
    await asyncio.sleep(SAFETY * 1.0 + 0.05)  # no renewal: the local deadline passed
    assert not a.holds(UNIT)
    assert a.overdue() == [UNIT]
    # ...while Redis still has it: nobody else could have taken it yet.
    assert await b.acquire(UNIT) is None
