"""The runtime's side of ``cluster:``: one Redis connection per process, one coordinator for
every (bot, room) of the enabled bots, and the glue between its leases and the bots' runners
(a lease taken subscribes the room, a lease lost or handed over unsubscribes it).

Started once every bot is connected (each has no room yet); ended after the bots stopped and
wrote their positions, when it gives every lease back, so that on SIGTERM the other replicas
take the rooms at their next round instead of after ``lease_ttl``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from botkit.config import ClusterConfig
from botkit.errors import ConfigError
from botkit.runtime.cluster import Coordinator, Unit
from botkit.runtime.runner import BotRunner

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

    def fires(self, bot: str, room: str | None) -> bool:
        """Whether a job of ``bot`` (for ``room``, or for the bot as a whole) fires here: on
        the owner of its room, or of the bot's first room."""
        room = room if room is not None else self._first_room.get(bot)
        return room is not None and self.coordinator.holds(bot, room)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.coordinator.run(stop)
        finally:
            await self._redis.aclose()

    async def _take(self, unit: Unit, fence: int) -> None:
        runner = self._runners[unit.bot]
        await runner.ready.wait()
        runner.positions.fence = lambda room, bot=unit.bot: self.fence(bot, room)
        await runner.take(unit.room)

    async def _lose(self, unit: Unit, hand_over: bool) -> None:
        await self._runners[unit.bot].drop(unit.room, hand_over)
