"""The Redis state store against a real Redis: the contract the memory and SQLite stores pass
(the same test functions, imported), expiry by Redis's own clock, fenced writes, a Redis
restart in mid-use, and a password that never shows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from botkit.config import ClusterConfig
from botkit.errors import BotkitError, StateError
from botkit.state.base import FencedStateStore
from botkit.state.redis import RedisStateStore, open_redis
from botkit.state.store import BotState, StateStore
from botkit.ulid import new_ulid
from tests.support.redis_server import LocalRedis
from tests.unit.test_state import (  # the shared contract, run here on Redis
    NS,
    test_a_non_json_value_is_refused_naming_the_key,
    test_a_stored_none_is_not_the_default,
    test_bad_keys_are_refused,
    test_bad_ttls_are_refused,
    test_concurrent_incr_loses_nothing,
    test_get_set_delete_and_keys,
    test_incr_counts_from_zero_and_adds,
    test_incr_refuses_a_non_integer_amount,
    test_incr_refuses_a_non_integer_value,
    test_keys_by_prefix_are_sorted_and_literal,
    test_namespaces_are_isolated,
    test_nested_json_round_trips,
    test_stored_values_are_copies,
    test_the_longest_key_is_accepted,
)

__all__ = [
    "test_a_non_json_value_is_refused_naming_the_key",
    "test_a_stored_none_is_not_the_default",
    "test_bad_keys_are_refused",
    "test_bad_ttls_are_refused",
    "test_concurrent_incr_loses_nothing",
    "test_get_set_delete_and_keys",
    "test_incr_counts_from_zero_and_adds",
    "test_incr_refuses_a_non_integer_amount",
    "test_incr_refuses_a_non_integer_value",
    "test_keys_by_prefix_are_sorted_and_literal",
    "test_namespaces_are_isolated",
    "test_nested_json_round_trips",
    "test_stored_values_are_copies",
    "test_the_longest_key_is_accepted",
]


def cluster(url: str) -> ClusterConfig:
    return ClusterConfig.model_validate({"redis_url": url, "replica_id": "test-1"})


def project() -> str:
    return f"p{new_ulid().lower()}"  # each test its own keys on the shared Redis


@pytest.fixture
async def client(redis_server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    opened = open_redis(cluster(redis_server.url), timeout=3.0)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
async def store(client: aioredis.Redis) -> AsyncIterator[StateStore]:
    async with RedisStateStore(client, project(), timeout=3.0) as opened:
        yield opened


async def test_keys_live_under_the_project_and_namespace(client: aioredis.Redis) -> None:
    project_id = project()
    async with RedisStateStore(client, project_id) as store:
        await store.set("dice", "rolls:a", {"n": 1})
        await store.set("a:b", "c", 1)  # a namespace with a colon can't reach into "a"
        await store.set("a", "b:c", 2)
        assert await client.get(f"botkit:{project_id}:state:dice:rolls:a") == '{"n":1}'
        assert await store.keys("a") == ["b:c"]
        assert await store.keys("a:b") == ["c"]
        assert await store.get("a:b", "c") == 1
    async with RedisStateStore(client, project()) as other:
        assert await other.get("dice", "rolls:a") is None


async def test_expiry_is_redis_own(store: StateStore) -> None:
    await store.set(NS, "cooldown", True, ttl=0.3)
    await store.set(NS, "k", 1, ttl=0.3)
    await store.set(NS, "k", 2)  # set without ttl: never expires
    assert await store.incr(NS, "window", ttl=0.3) == 1
    assert await store.incr(NS, "window", ttl=60) == 2  # keeps the first expiry
    assert await store.keys(NS) == ["cooldown", "k", "window"]
    await asyncio.sleep(0.45)
    assert await store.get(NS, "cooldown", "absent") == "absent"
    assert await store.delete(NS, "cooldown") is False
    assert await store.keys(NS) == ["k"]
    assert await store.incr(NS, "window") == 1  # started again, without ttl
    assert await store.get(NS, "k") == 2


async def test_a_huge_counter_keeps_its_expiry(store: StateStore,
                                               client: aioredis.Redis) -> None:
    assert await store.incr(NS, "big", 2**70, ttl=60) == 2**70
    assert await store.incr(NS, "big") == 2**70 + 1
    assert isinstance(store, RedisStateStore)
    assert 0 < await client.pttl(store._key(NS, "big")) <= 60_000


async def test_a_store_must_be_open(client: aioredis.Redis) -> None:
    store = RedisStateStore(client, project())
    with pytest.raises(StateError, match="not open"):
        await store.get(NS, "k")
    async with store:
        await store.set(NS, "k", 1)
    with pytest.raises(StateError, match="not open"):
        await store.set(NS, "k", 2)
    async with store:
        assert await store.get(NS, "k") == 1


async def test_fenced_writes_refuse_a_lower_fence(store: StateStore) -> None:
    assert isinstance(store, FencedStateStore)
    assert await store.set_fenced(NS, "pos", {"offset": 5}, 7) is True
    assert await store.set_fenced(NS, "pos", {"offset": 3}, 6) is False  # a stale holder
    assert await store.get(NS, "pos") == {"offset": 5}
    assert await store.set_fenced(NS, "pos", {"offset": 6}, 7) is True  # the same holder
    assert await store.set_fenced(NS, "pos", {"offset": 9}, 8) is True  # a newer one
    assert await store.set_fenced(NS, "pos", {"offset": 8}, 7) is False
    assert await store.get(NS, "pos") == {"offset": 9}
    await store.delete(NS, "pos")  # the fence outlives the value
    assert await store.set_fenced(NS, "pos", {"offset": 1}, 7) is False
    assert await store.set_fenced(NS, "other", 1, 0) is True
    for bad in (-1, 1.0, True, 2**53):
        with pytest.raises(StateError, match="fencing token"):
            await store.set_fenced(NS, "pos", 1, bad)


async def test_concurrent_fenced_writes_end_with_the_highest(store: StateStore) -> None:
    assert isinstance(store, RedisStateStore)
    fences = list(range(50))
    results = await asyncio.gather(*(store.set_fenced(NS, "pos", fence, fence)
                                     for fence in reversed(fences)))
    assert results[0] is True
    assert await store.get(NS, "pos") == 49


async def test_a_redis_restart_fails_calls_then_works_again(
        make_redis: Callable[[], LocalRedis]) -> None:
    server = make_redis()
    client = open_redis(cluster(server.url), timeout=2.0)
    try:
        async with RedisStateStore(client, project(), timeout=2.0) as store:
            state = BotState(store, "dice")
            assert await state.incr("rolls") == 1
            server.stop()
            with pytest.raises(BotkitError, match=r"cluster\.redis_url") as failed:
                await state.incr("rolls")
            assert isinstance(failed.value, StateError)
            assert "127.0.0.1" in str(failed.value)
            server.start()
            # Nothing persisted (the test Redis keeps nothing): counting starts again.
            assert await state.incr("rolls") == 1
            assert await state.get("rolls") == 1
    finally:
        await client.aclose()


async def test_an_unreachable_redis_fails_at_open_naming_the_setting(
        make_redis: Callable[[], LocalRedis]) -> None:
    server = make_redis()
    server.stop()
    client = open_redis(cluster(server.url.replace("://", "://bot:hunter2-secret@")),
                        timeout=1.0)
    try:
        with pytest.raises(StateError, match=r"cluster\.redis_url") as failed:
            await RedisStateStore(client, project(), timeout=1.0).open()
        assert "hunter2-secret" not in str(failed.value)
    finally:
        await client.aclose()


async def test_the_password_never_shows(make_redis: Callable[[], LocalRedis],
                                        caplog: pytest.LogCaptureFixture) -> None:
    server = make_redis()
    secret = "s3cret-redis-pass"
    admin = aioredis.Redis.from_url(server.url)
    try:
        await admin.config_set("requirepass", secret)
    finally:
        await admin.aclose()
    caplog.set_level(logging.DEBUG)
    good = open_redis(cluster(server.url.replace("://", f"://:{secret}@")), timeout=2.0)
    bad = open_redis(cluster(server.url.replace("://", f"://:wrong-{secret}@")), timeout=2.0)
    try:
        async with RedisStateStore(good, project()) as store:
            await store.set(NS, "k", 1)
            assert await store.get(NS, "k") == 1
            assert secret not in repr(store)
        with pytest.raises(StateError, match=r"cluster\.redis_url") as failed:
            await RedisStateStore(bad, project()).open()
        shown: list[Any] = [str(failed.value), repr(failed.value), caplog.text]
        assert all(secret not in text for text in shown)
        assert f"127.0.0.1:{server.port}" in str(failed.value)
    finally:
        await good.aclose()
        await bad.aclose()
