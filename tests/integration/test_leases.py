"""Leases on a real Redis (issue 12): one holder per unit, fences that only grow, renewals that
fail once the lease is someone else's, and a local deadline that ends a lease before Redis
would give it away."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

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
    first = await a.acquire(UNIT)
    assert first is not None
    assert await b.acquire(UNIT) is None  # held
    assert await b.free([UNIT]) == []
    await a.release(UNIT)
    assert not a.holds(UNIT)
    assert await b.free([UNIT]) == [UNIT]
    assert await b.acquire(UNIT) == first + 1
    assert b.holds(UNIT)


async def test_fences_keep_growing_across_a_redis_restart_that_lost_the_counters(
        make_redis: Callable[[], LocalRedis]) -> None:
    server = make_redis()
    redis = aioredis.from_url(server.url, socket_timeout=2.0)
    try:
        a, b = books(redis, ttl=5.0)
        first = await a.acquire(UNIT)
        assert first is not None
        server.stop()
        server.start()  # empty: no persistence
        await asyncio.sleep(0.01)  # a millisecond passes
        await a.release(UNIT)
        with contextlib.suppress(RedisConnectionError):
            await redis.ping()  # the pool's old connection fails once
        second = await b.acquire(UNIT)
        assert second is not None
        assert second > first
    finally:
        await redis.aclose()


async def test_a_holder_takes_back_a_lease_redis_lost_and_keeps_its_fence(
        client: aioredis.Redis) -> None:
    a, b = books(client, ttl=5.0)
    fence = await a.acquire(UNIT)
    assert fence is not None
    await client.delete(a._keys.lease(UNIT), a._keys.fence(UNIT))  # as a Redis restart does
    assert await a.renew() == []
    assert a.holds(UNIT)
    assert await client.get(a._keys.lease(UNIT)) == f"a:{fence}".encode()
    assert await b.acquire(UNIT) is None
    await a.release(UNIT)
    later = await b.acquire(UNIT)
    assert later is not None
    assert later > fence


async def test_a_lease_that_expired_and_was_taken_is_not_renewed(
        client: aioredis.Redis) -> None:
    a, b = books(client, ttl=1.0)
    fence = await a.acquire(UNIT)
    assert fence is not None
    assert await a.renew() == []  # still ours
    await asyncio.sleep(1.2)  # expired in Redis: a missed its renewals
    assert await b.acquire(UNIT) == fence + 1
    assert await a.renew() == [UNIT]
    assert not a.holds(UNIT)
    # a's release cannot delete b's lease (check-and-DEL).
    a.fences[UNIT] = fence
    await a.release(UNIT)
    assert await client.get(b._keys.lease(UNIT)) == f"b:{fence + 1}".encode()


async def test_a_lease_ends_locally_before_redis_lets_another_replica_take_it(
        client: aioredis.Redis) -> None:
    a, b = books(client, ttl=1.0)
    assert await a.acquire(UNIT) is not None
    await asyncio.sleep(SAFETY * 1.0 + 0.05)  # no renewal: the local deadline passed
    assert not a.holds(UNIT)
    assert a.overdue() == [UNIT]
    # ...while Redis still has it: nobody else could have taken it yet.
    assert await b.acquire(UNIT) is None


async def test_a_lease_past_its_local_deadline_is_given_up_not_silently_renewed(
        client: aioredis.Redis) -> None:
    # Found by bench S12: while holds() said no, the room's lane skipped what came; a renewal
    # that then made it say yes again resumed the room past what was skipped (never answered).
    a, b = books(client, ttl=1.0)
    assert await a.acquire(UNIT) is not None
    await asyncio.sleep(SAFETY * 1.0 + 0.05)  # a round came late: the local deadline passed
    assert await a.renew() == [UNIT]
    assert not a.holds(UNIT)
    # Given back at once: the unit is taken again (from its stored position) at a next round.
    assert await b.acquire(UNIT) is not None


async def test_membership_counts_live_replicas_and_forgets_one_that_stops_beating(
        client: aioredis.Redis) -> None:
    from botkit.runtime.cluster.membership import Membership, read_cluster

    keys = ClusterKeys(f"proj_{secrets.token_hex(4)}")
    a = Membership(client, keys, "a", 0.5)
    b = Membership(client, keys, "b", 0.5)
    assert await a.beat([UNIT]) == (1, False)  # first beat: not known yet
    assert await b.beat([]) == (2, False)
    assert await a.beat([UNIT]) == (2, True)
    replicas, _ = await read_cluster(client, keys)
    assert replicas == {"a": [str(UNIT)], "b": []}
    await asyncio.sleep(0.6)  # b stopped beating: expired
    assert await a.beat([UNIT]) == (1, False)  # a's own beat expired too (it slept past it)
    await b.leave()
    assert await a.beat([UNIT]) == (1, True)
