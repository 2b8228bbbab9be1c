"""Shard planning: which of a bot's connections takes which new rooms (runtime/shards.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from botkit.errors import SubscriptionError
from botkit.realtime import ClientEvent, ClientOptions, ConnectionState, ConnectionStateChanged
from botkit.realtime.flag import Flag
from botkit.runtime.shardplan import plan
from botkit.runtime.shards import ShardedClient, _limit_exceeded


def test_rooms_fill_one_connection_then_open_new_ones() -> None:
    assert plan([], 128, 500) == [128, 128, 128, 116]
    assert plan([], 128, 128) == [128]
    assert plan([], 128, 129) == [128, 1]
    assert plan([], 1, 3) == [1, 1, 1]
    assert plan([], 128, 0) == []


def test_open_connections_are_filled_first_lowest_first() -> None:
    # A replica that released rooms on its first connection fills that hole first.
    assert plan([120, 128, 50], 128, 10) == [8, 0, 2]
    assert plan([128, 128], 128, 1) == [0, 0, 1]
    assert plan([0], 128, 5) == [5]
    assert plan([3, 4], 128, 0) == [0, 0]


def test_a_connection_over_a_lowered_capacity_takes_nothing() -> None:
    # The capacity went down (the server refused more): no negative share.
    assert plan([128, 10], 100, 95) == [0, 90, 5]


def test_every_room_is_planned_once_and_no_connection_exceeds_the_capacity() -> None:
    for loads in ([], [5], [128, 0, 64], [99, 100, 101]):
        for rooms in (0, 1, 127, 1000):
            counts = plan(loads, 100, rooms)
            assert sum(counts) == rooms
            assert len(counts) >= len(loads)
            for index, count in enumerate(counts):
                load = loads[index] if index < len(loads) else 0
                assert count == 0 or load + count <= 100


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan([], 0, 5)


async def _nothing(event: ClientEvent) -> None:
    del event


async def _no_state(index: int, event: ConnectionStateChanged) -> None:
    del index, event


def _pool(per_connection: int) -> ShardedClient:
    return ShardedClient("ws://127.0.0.1:9/unused", lambda: "token", lambda channel: "token",
                         options=ClientOptions(), per_connection=per_connection,
                         on_event=_nothing, offer_event=lambda event: False,
                         on_state=_no_state, position_of=lambda channel: None,
                         on_moved=lambda channels: None, name="probe")


async def test_placement_puts_each_room_on_exactly_one_connection() -> None:
    pool = _pool(3)
    groups: dict[object, list[str]] = {}
    rooms = [f"chat:p:r{n}" for n in range(7)]
    pool._place(rooms, groups)  # type: ignore[arg-type]
    assert [sorted(shard.channels) for shard in pool.shards] == [
        rooms[0:3], rooms[3:6], rooms[6:7]]
    assert all(pool.shard_of(room) is pool.shards[n // 3] for n, room in enumerate(rooms))
    # Nothing is opened by planning: readiness counts the new ones as on their way.
    assert pool.state is ConnectionState.CONNECTING
    assert pool.connected == 0
    await pool.aclose()


async def test_a_limit_refusal_lowers_the_capacity_and_is_said_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "botkit.runtime")
    pool = _pool(5)
    groups: dict[object, list[str]] = {}
    rooms = [f"chat:p:r{n}" for n in range(10)]
    pool._place(rooms, groups)  # type: ignore[arg-type]
    first, second = pool.shards
    assert pool._learn(first, rooms[3:5])  # the server took 3 of 5
    assert pool.capacity == 3
    assert pool.shard_of(rooms[3]) is None
    assert len(first.channels) == 3
    assert pool._learn(second, rooms[8:10])
    said = [r for r in caplog.records if "at most 3 rooms per connection" in r.getMessage()]
    assert len(said) == 1, "the split is said once"
    # A connection that held nothing and was refused: nowhere to move, the caller reports it.
    lone = pool._shard(2)
    lone.channels.add("chat:p:x")
    assert not pool._learn(lone, ["chat:p:x"])
    await pool.aclose()


def test_per_connection_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _pool(0)


def test_only_the_limit_refusal_splits() -> None:
    assert _limit_exceeded(SubscriptionError("chat:p:r", 106, "limit exceeded"))
    assert not _limit_exceeded(SubscriptionError("chat:p:r", 103, "permission denied"))
    assert not _limit_exceeded(None)


async def test_wait_closed_hears_of_a_connection_opened_while_it_waits() -> None:
    # One future linked to every started connection's end (no task per connection, bench/
    # S4): a connection started after the wait began must end it as well; ``until`` ends it
    # without an error, and nothing stays linked afterwards.
    pool = _pool(1)
    first, second = pool._shard(0), pool._shard(1)
    pool._started(first)
    until = Flag()
    waiting = asyncio.create_task(pool.wait_closed(until=until))
    await asyncio.sleep(0)
    pool._started(second)  # opened meanwhile (a room moved, say)
    second.client.ended.set()  # and it ended (no task ran: nothing to raise)
    async with asyncio.timeout(2):
        await waiting
    assert first.client.ended._waiters is None
    assert pool._watchers == []
    # Stopped: ``until`` ends the wait.
    second.client.ended.clear()
    waiting = asyncio.create_task(pool.wait_closed(until=until))
    await asyncio.sleep(0)
    until.set()
    async with asyncio.timeout(2):
        await waiting
    assert until._waiters is None
