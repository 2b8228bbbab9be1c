"""The coordinator's rounds on a real Redis (issue 12), with take/lose callbacks standing in
for the bots. Found by bench S12 (100 rooms): a round that takes many units stays within its
time, or (the first round) renews what it took so far; a stopping runtime takes no unit (a
replica stopped while its peer handed it 50 rooms tried each for a whole lease, one after the
other, and outlived its stop's grace)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from botkit.runtime.cluster import Coordinator, Unit
from tests.support.redis_server import LocalRedis

TTL = 0.6
UNITS = [Unit("echo", f"room{index:02d}") for index in range(12)]


@pytest.fixture
async def client(redis_server: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(redis_server.url, socket_timeout=2.0)
    try:
        yield redis
    finally:
        await redis.aclose()


class Rooms:
    """The bots' side: which units were taken, and whether serving one hangs."""

    def __init__(self) -> None:
        self.taken: list[Unit] = []
        self.lost: list[Unit] = []
        self.first = asyncio.Event()
        self.hang = False
        self.slow = 0.0

    async def take(self, unit: Unit, fence: int) -> None:
        self.taken.append(unit)
        self.first.set()
        if self.hang:
            await asyncio.sleep(10 * TTL)  # a room that cannot be served (the bot is closing)
        await asyncio.sleep(self.slow)

    async def lose(self, unit: Unit, hand_over: bool) -> None:
        self.lost.append(unit)


async def first_round(coordinator: Coordinator, stop: asyncio.Event) -> asyncio.Task[None]:
    task = asyncio.create_task(coordinator.run(stop))
    async with asyncio.timeout(10):
        await coordinator.first_round.wait()
    return task


async def test_units_that_cannot_be_served_take_a_round_not_a_lease_each(
        client: aioredis.Redis) -> None:
    project = f"proj_{secrets.token_hex(4)}"
    rooms = Rooms()
    stop = asyncio.Event()
    # Another replica holds every unit; then it leaves, and this one takes them all.
    other = Coordinator(client, project, "other", TTL, UNITS, Rooms().take, Rooms().lose)
    other_stop = asyncio.Event()
    other_task = await first_round(other, other_stop)
    coordinator = Coordinator(client, project, "a", TTL, UNITS, rooms.take, rooms.lose)
    task = await first_round(coordinator, stop)
    assert rooms.taken == []
    rooms.hang = True
    other_stop.set()
    await other_task
    async with asyncio.timeout(10):
        await rooms.first.wait()
    stop.set()
    began = time.monotonic()
    async with asyncio.timeout(30):
        await task
    # Before: one take after the other, a lease each (12 x 0.6 s); now the round ends after
    # its time and one last take.
    assert time.monotonic() - began < TTL / 3 + TTL + 0.5, time.monotonic() - began
    assert len(rooms.taken) <= 3, rooms.taken


async def test_a_stopping_runtime_takes_no_unit(client: aioredis.Redis) -> None:
    project = f"proj_{secrets.token_hex(4)}"
    rooms = Rooms()
    stop = asyncio.Event()
    other = Coordinator(client, project, "other", TTL, UNITS, Rooms().take, Rooms().lose)
    other_stop = asyncio.Event()
    other_task = await first_round(other, other_stop)
    coordinator = Coordinator(client, project, "a", TTL, UNITS, rooms.take, rooms.lose)
    task = await first_round(coordinator, stop)
    coordinator.stop_taking()
    other_stop.set()  # every unit is free from now on
    await other_task
    await asyncio.sleep(3 * TTL)  # several rounds
    stop.set()
    async with asyncio.timeout(10):
        await task
    assert rooms.taken == []


async def test_a_long_first_round_keeps_the_leases_it_took_on_the_way(
        client: aioredis.Redis) -> None:
    # 12 takes of 0.1 s each: 1.2 s, past the lease (0.6 s). Before, the first units' local
    # deadlines passed during the round (their rooms skipped what came), until the next round.
    rooms = Rooms()
    rooms.slow = 0.1
    coordinator = Coordinator(client, f"proj_{secrets.token_hex(4)}", "a", TTL, UNITS,
                              rooms.take, rooms.lose)
    lapses: set[Unit] = set()
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            lapses.update(unit for unit in rooms.taken[:-1]
                          if not coordinator.holds(unit.bot, unit.room))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    task = await first_round(coordinator, stop)
    await asyncio.sleep(2 * TTL)  # and a few rounds more
    stop.set()
    async with asyncio.timeout(10):
        await asyncio.gather(task, watcher)
    assert sorted(rooms.taken) == sorted(UNITS)  # each once
    assert rooms.lost == []
    assert not lapses, sorted(lapses)
