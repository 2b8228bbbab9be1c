"""RedisJobStore against a real Redis: every replica's store sees the same stored jobs (at load,
and while running, as another replica adds, changes and removes them), and a Redis restart
delays writes without losing them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from botkit.config import ClusterConfig
from botkit.errors import StateError
from botkit.jobs.redis_store import RedisJobStore
from botkit.state.redis import open_redis
from botkit.ulid import new_ulid
from tests.support.redis_server import LocalRedis
from tests.support.waits import eventually
from tests.unit.test_jobstore import BASE, SCHEDULER, ids, make_job


def cluster(url: str) -> ClusterConfig:
    return ClusterConfig.model_validate({"redis_url": url, "replica_id": "test-1"})


@pytest.fixture
async def client(redis_server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    opened = open_redis(cluster(redis_server.url), timeout=3.0)
    try:
        yield opened
    finally:
        await opened.aclose()


async def open_store(client: aioredis.Redis, project: str, *,
                     refresh_interval: float = 0.0) -> RedisJobStore:
    store = RedisJobStore(client, project, timeout=3.0, refresh_interval=refresh_interval)
    await store.load()
    store.start(SCHEDULER, "dynamic")
    return store


async def close_store(store: RedisJobStore) -> None:
    store.shutdown()
    await store.aclose()


async def settled(store: RedisJobStore) -> None:
    """Until the store's writes are in Redis (bounded)."""
    await eventually(lambda: store._writing is None and not store._pending,
                     "the job store's writes done", timeout=5)


async def test_jobs_written_by_one_store_load_in_another(client: aioredis.Redis) -> None:
    project = f"p{new_ulid().lower()}"
    first = await open_store(client, project)
    try:
        first.add_job(make_job("kept", BASE, text="still here"))
        first.add_job(make_job("gone", BASE))
        first.remove_job("gone")
    finally:
        await close_store(first)
    row = await client.hget(f"botkit:{project}:jobs", "kept")
    assert row is not None
    assert json.loads(row)["kwargs"] == {"text": "still here"}
    second = await open_store(client, project)
    try:
        (job,) = second.get_all_jobs()
        assert (job.id, job.next_run_time, job.kwargs) == ("kept", BASE, {"text": "still here"})
    finally:
        await close_store(second)


async def test_running_stores_see_each_other_s_changes(client: aioredis.Redis) -> None:
    project = f"p{new_ulid().lower()}"
    one = await open_store(client, project)
    other = await open_store(client, project, refresh_interval=0.05)
    try:
        one.add_job(make_job("a", BASE, n=1))
        one.add_job(make_job("b", BASE + timedelta(seconds=1)))
        await settled(one)
        # The other's poller picks them up.
        await eventually(lambda: ids(other.get_all_jobs()) == ["a", "b"], "a and b seen")
        one.update_job(make_job("a", BASE + timedelta(seconds=5), n=2))
        one.remove_job("b")
        await settled(one)
        await eventually(lambda: ids(other.get_all_jobs()) == ["a"]
                         and other.lookup_job("a").kwargs == {"n": 2}, "a changed, b gone")
        assert other.get_next_run_time() == BASE + timedelta(seconds=5)
        # A change of the other's own, not yet written, is not undone by a refresh.
        other.add_job(make_job("mine", BASE))
        await one.refresh()
        await other.refresh()
        assert "mine" in ids(other.get_all_jobs())
        await settled(other)
        await one.refresh()
        assert ids(one.get_all_jobs()) == ["mine", "a"]  # in time order
    finally:
        await close_store(one)
        await close_store(other)


async def test_writes_wait_out_a_redis_restart(make_redis: Callable[[], LocalRedis]) -> None:
    server = make_redis()
    client = open_redis(cluster(server.url), timeout=1.0)
    project = f"p{new_ulid().lower()}"
    try:
        store = await open_store(client, project)
        try:
            server.stop()
            store.add_job(make_job("during", BASE))  # in memory now; Redis is down
            assert ids(store.get_all_jobs()) == ["during"]
            with pytest.raises(StateError, match=r"cluster\.redis_url"):
                await store.refresh()
            server.start()
            await asyncio.sleep(1.2)  # the retry (after 1 s) writes it
            await settled(store)
        finally:
            await close_store(store)
        assert await client.hkeys(f"botkit:{project}:jobs") == ["during"]
    finally:
        await client.aclose()


async def test_a_closed_store_refuses_calls(client: aioredis.Redis) -> None:
    store = await open_store(client, f"p{new_ulid().lower()}")
    await close_store(store)
    with pytest.raises(StateError, match="not open"):
        store.get_all_jobs()
    unloaded = RedisJobStore(client, "p1")
    with pytest.raises(StateError, match="not loaded"):
        unloaded.start(SCHEDULER, "dynamic")
