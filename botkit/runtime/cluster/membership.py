"""Which replicas are alive: each refreshes ``replicas:{replica_id}`` (PX lease_ttl) every round,
its value the units it holds (for ``botkit status``). A replica that stops refreshing drops out
of the count after lease_ttl, and the others' shares grow to cover its units."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botkit.runtime.cluster.keys import ClusterKeys, Unit

__all__ = ["Membership", "read_cluster"]


class Membership:
    def __init__(self, redis: Any, keys: ClusterKeys, replica_id: str, ttl: float) -> None:
        self._redis = redis
        self._keys = keys
        self._key = keys.replica(replica_id)
        self._ttl_ms = max(1, int(ttl * 1000))

    async def beat(self, held: Iterable[Unit]) -> tuple[int, bool]:
        """Refresh this replica's heartbeat: the number of live replicas (this one included),
        and whether the heartbeat was still there (False at the first beat, after a stall
        past lease_ttl, or after Redis restarted and lost it)."""
        value = json.dumps(sorted(str(unit) for unit in held))
        previous = await self._redis.set(self._key, value, px=self._ttl_ms, get=True)
        count = 0
        async for _ in self._redis.scan_iter(match=self._keys.replicas_pattern(), count=100):
            count += 1
        return max(1, count), previous is not None

    async def leave(self) -> None:
        await self._redis.delete(self._key)


async def read_cluster(redis: Any, keys: ClusterKeys
                       ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """What ``botkit status`` shows: each live replica's units (as it last said), and each
    leased unit's holder as ``replica_id:fence`` (from the leases themselves)."""
    replicas: dict[str, list[str]] = {}
    async for key in redis.scan_iter(match=keys.replicas_pattern(), count=100):
        name = key.decode() if isinstance(key, bytes) else str(key)
        raw = await redis.get(name)
        if raw is None:
            continue
        try:
            units = json.loads(raw)
        except ValueError:
            units = []
        replicas[name[len(keys.replica("")):]] = [str(unit) for unit in units]
    leases: dict[str, str] = {}
    async for key in redis.scan_iter(match=keys.leases_pattern(), count=100):
        name = key.decode() if isinstance(key, bytes) else str(key)
        raw = await redis.get(name)
        if raw is not None:
            holder = raw.decode() if isinstance(raw, bytes) else str(raw)
            leases[str(keys.unit_of_lease(name))] = holder
    return replicas, leases
