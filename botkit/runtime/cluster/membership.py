"""Which replicas are alive: each round, one Lua script puts this replica in the sorted set
``replicas`` with its expiry (by the Redis server's clock) as the score, removes whoever expired,
and counts the rest; and refreshes ``replicas:{replica_id}`` (PX lease_ttl), the units it holds,
for ``botkit status``. A replica that stops refreshing drops out of the count after lease_ttl,
and the others' shares grow to cover its units. (A sorted set, not a SCAN of the keys: the
state store's keys share the database, and a round must not walk them all.)"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botkit.runtime.cluster.keys import ClusterKeys, Unit

__all__ = ["Membership", "read_cluster"]


_BEAT = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local known = redis.call('zscore', KEYS[1], ARGV[1])
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('set', KEYS[2], ARGV[3], 'PX', ARGV[2])
if known then return {redis.call('zcard', KEYS[1]), 1} end
return {redis.call('zcard', KEYS[1]), 0}
"""


class Membership:
    def __init__(self, redis: Any, keys: ClusterKeys, replica_id: str, ttl: float) -> None:
        self._redis = redis
        self._keys = keys
        self._replica_id = replica_id
        self._key = keys.replica(replica_id)
        self._ttl_ms = max(1, int(ttl * 1000))
        self._beat = redis.register_script(_BEAT)

    async def beat(self, held: Iterable[Unit]) -> tuple[int, bool]:
        """Refresh this replica's heartbeat: the number of live replicas (this one included),
        and whether the heartbeat was still there (False at the first beat, after a stall
        past lease_ttl, or after Redis restarted and lost it)."""
        value = json.dumps(sorted(str(unit) for unit in held))
        count, known = await self._beat(keys=[self._keys.members(), self._key],
                                        args=[self._replica_id, self._ttl_ms, value])
        return max(1, int(count)), bool(known)

    async def leave(self) -> None:
        await self._redis.zrem(self._keys.members(), self._replica_id)
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
