"""The runtime's side of ``cluster:``: one Redis connection per process, one coordinator for
every (bot, room) of the enabled bots, and the glue between its leases and the bots' runners
(a lease taken subscribes the room, a lease lost or handed over unsubscribes it).

Started once every bot is connected (each has no room yet); ended after the bots stopped and
wrote their positions, when it gives every lease back, so that on SIGTERM the other replicas
take the rooms at their next round instead of after ``lease_ttl``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from botkit.config import ClusterConfig
from botkit.errors import ConfigError
from botkit.runtime.cluster import Coordinator, Unit
from botkit.runtime.runner import BotRunner

log = logging.getLogger("botkit.runtime")

__all__ = ["Replicas", "open_redis"]


def open_redis(cluster: ClusterConfig) -> Any:
    """A redis.asyncio client for ``cluster.redis_url`` (commands bounded by a third of the
    lease: a stalled Redis is noticed within the round)."""
    try:
        import redis.asyncio as aioredis
    except ImportError:  # pragma: no cover - the cluster extra is missing
        raise ConfigError("cluster: needs redis-py: pip install 'botkit[cluster]'") from None
    timeout = cluster.lease_ttl / 3
    return aioredis.from_url(cluster.redis_url.get_secret_value(), socket_timeout=timeout,
                             socket_connect_timeout=timeout)


class Replicas:
    def __init__(self, cluster: ClusterConfig, project: str,
                 runners: Mapping[str, BotRunner], rooms: Mapping[str, list[str]]) -> None:
        self.cluster = cluster
        self._runners = runners
        self._first_room = {bot: names[0] for bot, names in rooms.items() if names}
        self._redis = open_redis(cluster)
        units = [Unit(bot, room) for bot, names in rooms.items() for room in names]
        self.coordinator = Coordinator(self._redis, project, cluster.replica_id,
                                       cluster.lease_ttl, units, self._take, self._lose)

    def holds(self, bot: str, room: str) -> bool:
        return self.coordinator.holds(bot, room)

    def fence(self, bot: str, room: str) -> int | None:
        """The fencing token of the lease held on (bot, room), for the positions' writes."""
        return self.coordinator.book.fences.get(Unit(bot, room))

    async def fires(self, bot: str, room: str | None) -> bool:
        """Whether a job of ``bot`` (for ``room``, or for the bot as a whole) fires here: on
        the owner of its room, or of the bot's first room. A replica that does not hold it
        waits up to 1.5 leases for it (its owner may just have died: its lease runs out within
        one, and the next round takes it): the fire runs where the room went, not nowhere; a
        replica that does not get it lets the fire go (the owner ran it, and a fire that ran
        on both during a hand-over publishes with the same idempotency keys)."""
        room = room if room is not None else self._first_room.get(bot)
        if room is None:
            return False
        return await self.coordinator.wait_holds(Unit(bot, room),
                                                   1.5 * self.cluster.lease_ttl)

    async def run(self, stop: asyncio.Event) -> None:
        """Take leases once every bot is connected (each waits for its rooms), until ``stop``
        (set once the bots stopped and wrote their positions); then give them back."""
        first = asyncio.ensure_future(self._announce())
        try:
            ready: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(
                *(runner.ready.wait() for runner in self._runners.values())))
            stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                ready.add_done_callback(_retrieve)
                stopped.cancel()
            await self.coordinator.run(stop)
        finally:
            first.cancel()
            await asyncio.wait([first])
            await self._redis.aclose()

    async def _announce(self) -> None:
        # "serving" once the first round took this replica's share: what is sent from then
        # on is answered (a room never stored before starts from the live stream).
        await self.coordinator.first_round.wait()
        for bot, runner in self._runners.items():
            rooms = sum(self.coordinator.holds(bot, room) for room in runner.channels)
            log.info("bot %s serving %d room(s) as %s on replica %s", bot, rooms,
                     runner.config.user_id, self.cluster.replica_id)

    async def _take(self, unit: Unit, fence: int) -> None:
        runner = self._runners[unit.bot]
        await runner.ready.wait()
        runner.positions.fence = lambda room, bot=unit.bot: self.fence(bot, room)
        # A quarter lease at most: the coordinator renews the other leases in the same loop.
        await runner.take(unit.room, settle=0.25 * self.cluster.lease_ttl)

    async def _lose(self, unit: Unit, hand_over: bool) -> None:
        await self._runners[unit.bot].drop(unit.room, hand_over)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
