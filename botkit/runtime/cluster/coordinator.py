"""One replica's part of the cluster: a loop that, every ``lease_ttl / 3``, refreshes its
heartbeat, renews its leases, drops what it could not renew in time, gives back one surplus unit
and takes free units up to its share (leases.py, membership.py, balance.py).

The runtime hands it two callbacks: ``take(unit, fence)`` subscribes the room from its stored
position, ``lose(unit, hand_over)`` unsubscribes it and drops what its lane still holds (with
``hand_over`` the lease is still ours, and the room's position is written first). Each change
is logged, one line each.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from botkit.runtime.cluster.balance import share, surplus, to_take
from botkit.runtime.cluster.keys import ClusterKeys, Unit
from botkit.runtime.cluster.leases import LeaseBook
from botkit.runtime.cluster.membership import Membership

__all__ = ["Coordinator"]

log = logging.getLogger("botkit.runtime")

Take = Callable[[Unit, int], Awaitable[None]]
Lose = Callable[[Unit, bool], Awaitable[None]]


class Coordinator:
    def __init__(self, redis: Any, project: str, replica_id: str, ttl: float,
                 units: Sequence[Unit], take: Take, lose: Lose) -> None:
        self._redis = redis
        keys = ClusterKeys(project)
        self.replica_id = replica_id
        self.ttl = ttl
        self.round = ttl / 3
        self.book = LeaseBook(redis, keys, replica_id, ttl)
        self._membership = Membership(redis, keys, replica_id, ttl)
        # Each replica tries the free units in its own order: two starting together collide less.
        self._order = list(units)
        random.Random(replica_id).shuffle(self._order)
        self._take = take
        self._lose = lose
        self._held: list[Unit] = []  # in order of acquisition: the surplus given back is the last
        self._resets: set[str] = set()
        self._failing = False
        self._beats = 0
        self._hold_off_until = 0.0
        self._taken = asyncio.Event()  # set (and replaced) each time a unit is taken
        self._taking = True
        self.first_round = asyncio.Event()
        """Set once the first round is over: this replica holds its first share, if free."""
        self.replicas = 1

    def holds(self, bot: str, room: str) -> bool:
        return self.book.holds(Unit(bot, room))

    async def wait_holds(self, unit: Unit, timeout: float) -> bool:
        """Whether this replica holds ``unit`` now or takes it within ``timeout`` (a job due
        as its room fails over to this replica waits for the lease rather than being lost)."""
        deadline = time.monotonic() + timeout
        while not self.book.holds(unit):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            taken = self._taken
            try:
                async with asyncio.timeout(remaining):
                    await taken.wait()
            except TimeoutError:
                return self.book.holds(unit)
        return True

    def stop_taking(self) -> None:
        """The runtime is stopping: its bots are closing their connections, so a unit taken
        now could not be served (each take would wait out its timeout, one after the other,
        past the stop's grace). Take none from now on; the held ones go back at the end."""
        self._taking = False

    def reset(self, bot: str) -> None:
        """The bot's runner was replaced: its rooms are given back at the next round (and
        taken again, by this replica or another, like any free unit)."""
        self._resets.add(bot)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve the units until ``stop``; then give every lease back at once."""
        try:
            while not stop.is_set():
                await self._round()
                self.first_round.set()
                try:
                    async with asyncio.timeout(self.round):
                        await stop.wait()
                except TimeoutError:
                    pass
        finally:
            await self._leave()

    async def _bounded(self, step: Awaitable[Any]) -> Any:
        async with asyncio.timeout(self.round):
            return await step

    async def _round(self) -> None:
        try:
            self.replicas, known = await self._bounded(self._membership.beat(self._held))
            self._beats += 1
            if not known and self._beats > 1:
                # Redis lost our heartbeat (a restart without persistence, or we stalled past
                # the lease): the other holders' leases may be missing too, and they take
                # theirs back at their next renewal. Taking "free" units now would take them
                # from under their holders, so wait a lease first.
                self._hold_off_until = time.monotonic() + self.ttl
                log.warning("replica %s: Redis lost its heartbeat; taking no free unit for "
                            "%.1fs", self.replica_id, self.ttl)
            await self._renew()
        except (OSError, TimeoutError, _redis_error()) as exc:
            if not self._failing:
                log.error("replica %s: cannot reach Redis (%s); serving its units until their "
                          "leases run out", self.replica_id, exc or type(exc).__name__)
            self._failing = True
        else:
            if self._failing:
                log.info("replica %s: Redis is back", self.replica_id)
            self._failing = False
        for unit in self.book.overdue():
            await self._drop(unit, "its lease could not be renewed in time")
        if self._failing:
            return
        try:
            await self._give_back()
            await self._take_free()
        except (OSError, TimeoutError, _redis_error()) as exc:
            log.warning("replica %s: balancing failed this round: %s", self.replica_id,
                        exc or type(exc).__name__)

    async def _renew(self) -> None:
        for unit in await self._bounded(self.book.renew()):
            await self._drop(unit, "its lease went to another replica or ran out")

    async def _give_back(self) -> None:
        for unit in [unit for unit in self._held if unit.bot in self._resets]:
            self._held.remove(unit)
            await self._bounded(self.book.release(unit))
        self._resets.clear()
        target = share(len(self._order), self.replicas)
        extra = surplus(self._held, target)
        if extra is not None:
            self._held.remove(extra)
            await self._lose(extra, True)
            await self._bounded(self.book.release(extra))
            log.info("replica %s hands over %s (%d replicas, share %d)", self.replica_id, extra,
                     self.replicas, target)

    async def _take_free(self) -> None:
        target = share(len(self._order), self.replicas)
        if (not self._taking or len(self._held) >= target
                or time.monotonic() < self._hold_off_until):
            return
        candidates = [unit for unit in self._order if unit not in self._held]
        free = await self._bounded(self.book.free(candidates))
        # Within a round's time (the rest at the next rounds): the leases already held are
        # renewed only between rounds, and many takes in a row, each up to a lease long when
        # the room cannot be served, would let them run out. The first round renews instead
        # and goes on: "serving" means this replica holds its share (a room never stored
        # starts from the live stream).
        deadline = time.monotonic() + self.round
        for unit in to_take(free, len(self._held), target):
            if not self._taking:
                break
            if time.monotonic() > deadline:
                if self.first_round.is_set():
                    break
                await self._renew()
                self.replicas, _ = await self._bounded(self._membership.beat(self._held))
                deadline = time.monotonic() + self.round
            fence = await self._bounded(self.book.acquire(unit))
            if fence is None:
                continue  # another replica was quicker
            self._held.append(unit)
            try:
                async with asyncio.timeout(self.ttl):
                    await self._take(unit, fence)
            except Exception as exc:  # a room we cannot serve goes to another replica
                # While stopping, the bots closing under a take is expected, not an error.
                log.log(logging.ERROR if self._taking else logging.INFO,
                        "replica %s cannot serve %s: %s; giving it back", self.replica_id,
                        unit, exc or type(exc).__name__)
                self._held.remove(unit)
                await self._bounded(self.book.release(unit))
                continue
            log.info("replica %s takes %s (fence %d)", self.replica_id, unit, fence)
            taken, self._taken = self._taken, asyncio.Event()
            taken.set()

    async def _drop(self, unit: Unit, why: str) -> None:
        if unit in self._held:
            self._held.remove(unit)
        log.warning("replica %s loses %s: %s", self.replica_id, unit, why)
        try:
            await self._lose(unit, False)
        finally:
            # Only now: until the room's positions stop being written, they carry its fence
            # (and a write after another replica took the room is refused, not unfenced).
            self.book.forget(unit)

    async def _leave(self) -> None:
        """Give every lease back (the runners have stopped and written their positions), so
        that the other replicas take the rooms at their next round."""
        held, self._held = self._held, []
        try:
            async with asyncio.timeout(self.round):
                for unit in held:
                    await self.book.release(unit)
                await self._membership.leave()
        except (OSError, TimeoutError, _redis_error()) as exc:
            log.warning("replica %s: could not give its leases back (%s); they expire within "
                        "%.1fs", self.replica_id, exc or type(exc).__name__, self.ttl)
        else:
            if held:
                log.info("replica %s gave back %d unit(s)", self.replica_id, len(held))


def _redis_error() -> type[Exception]:
    from redis.exceptions import RedisError
    return RedisError
