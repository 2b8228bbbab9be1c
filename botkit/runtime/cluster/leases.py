"""Leases on units (bot, room) in Redis: who serves a room, and for how long.

Only Redis primitives, no consensus of our own:

* **acquire**: one Lua script, so that nothing runs between its steps: if the lease key is
  absent, INCR the unit's fence counter and ``SET lease {replica_id}:{fence} PX lease_ttl`` (the
  ``SET NX PX`` of the textbook, with the fence taken in the same step). The fence only grows:
  whatever a later owner writes carries a larger one. A missing counter starts at the Redis
  server's time in milliseconds, so the fences keep growing across a Redis restart that lost
  the counters (a unit is not taken a thousand times a second).
* **renew**: check-and-PEXPIRE (the value must still be ours, fence included), for every held
  lease in one pipeline, every ``lease_ttl / 3``. A lease key that is *missing* (Redis restarted
  and lost it, or it expired while nobody took it) is set again with our value in the same
  script, and the fence counter raised to our fence: nobody else holds the unit, so taking it
  back is as safe as a fresh acquisition, and a Redis restart shorter than the lease does not
  move any room.
* **release**: check-and-DEL, at SIGTERM and when a replica hands a surplus unit over; the next
  replica takes the unit at its next round instead of after ``lease_ttl``.

Failure modes, and why they do no harm:

* *A replica dies (SIGKILL, power)*: its leases expire after at most ``lease_ttl``; the other
  replicas take them at their next round and recover each room from its stored position.
* *A replica stalls (SIGSTOP, a long GC, a swapped-out VM) or loses Redis*: it counts a lease as
  valid until ``renewed_at + lease_ttl * SAFETY`` by its own monotonic clock, measured from
  *before* the renew was sent, so it stops handling the room before Redis lets another replica
  take it (clocks drift little over seconds; SAFETY leaves 20%). After a stall the process may
  still run a handler it had begun: its replies carry the same idempotency keys as the new
  owner's, and the server absorbs the second; its position writes carry an older fence and are
  refused (fenced writes of the store), so no position moves backwards.
* *Redis restarts (without persistence)*: the leases, the fence counters and the stored
  positions are gone. A replica whose renewal reaches the new Redis before its local deadline
  takes its leases back (see renew) and goes on serving its rooms from its cursors, rewriting
  their positions as they move. A restart longer than that: the replicas stop serving at their
  deadlines, and the rooms are taken again at the next round, from the live stream when no
  position survived (what was sent meanwhile is not answered: run Redis with AOF for that).
  Nothing is answered twice either way.
* *A network partition*: the side without Redis stops serving at its local deadlines; the side
  with Redis takes over after ``lease_ttl``. Rooms are silent for up to ``lease_ttl`` plus a
  round; nothing is answered twice beyond what idempotency keys absorb.
"""

from __future__ import annotations

import time
from typing import Any

from botkit.runtime.cluster.keys import ClusterKeys, Unit

__all__ = ["SAFETY", "LeaseBook"]

SAFETY = 0.8
"""Share of lease_ttl a replica trusts a lease for after sending its renewal."""

_ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return false end
if redis.call('exists', KEYS[2]) == 0 then
  local now = redis.call('time')
  redis.call('set', KEYS[2], now[1] * 1000 + math.floor(now[2] / 1000))
end
local fence = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
return fence
"""
_RENEW = """
local value = redis.call('get', KEYS[1])
if value == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
if value then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
if (tonumber(redis.call('get', KEYS[2])) or 0) < tonumber(ARGV[3]) then
  redis.call('set', KEYS[2], ARGV[3])
end
return 1
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LeaseBook:
    """The leases this replica holds, with their fences and local deadlines."""

    def __init__(self, redis: Any, keys: ClusterKeys, replica_id: str, ttl: float) -> None:
        self._redis = redis
        self._keys = keys
        self.replica_id = replica_id
        self.ttl = ttl
        self._ttl_ms = max(1, int(ttl * 1000))
        self.fences: dict[Unit, int] = {}
        self.valid_until: dict[Unit, float] = {}
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def holds(self, unit: Unit) -> bool:
        """Held, and its local deadline not passed (the hot path: a dict lookup and a clock)."""
        until = self.valid_until.get(unit)
        return until is not None and time.monotonic() < until

    def _value(self, unit: Unit) -> str:
        return f"{self.replica_id}:{self.fences[unit]}"

    async def free(self, units: list[Unit]) -> list[Unit]:
        """Which of ``units`` nobody holds (one MGET)."""
        if not units:
            return []
        values = await self._redis.mget([self._keys.lease(unit) for unit in units])
        return [unit for unit, value in zip(units, values, strict=True) if value is None]

    async def acquire(self, unit: Unit) -> int | None:
        """The fence of a lease just taken on ``unit``, or None if another replica holds it."""
        sent = time.monotonic()
        fence = await self._acquire(keys=[self._keys.lease(unit), self._keys.fence(unit)],
                                    args=[self.replica_id, self._ttl_ms])
        if fence is None:
            return None
        self.fences[unit] = int(fence)
        self.valid_until[unit] = sent + self.ttl * SAFETY
        return int(fence)

    async def renew(self) -> list[Unit]:
        """Renew every held lease in one round trip; the units whose lease is no longer ours
        (no longer held here, but their fences kept until :meth:`forget`, so that a position
        written meanwhile is still fenced, and refused).

        A lease whose local deadline passed (before the renewal, or while it was on its way)
        is not renewed but lost too, and given back: while :meth:`holds` said no, its room's
        lane skipped what came, and only a new take recovers that from the stored position."""
        units = list(self.fences)
        if not units:
            return []
        sent = time.monotonic()
        lapsed = [unit for unit in units if self.valid_until.get(unit, 0.0) <= sent]
        live = [unit for unit in units if self.valid_until.get(unit, 0.0) > sent]
        results = []
        if live:
            async with self._redis.pipeline(transaction=False) as pipe:
                for unit in live:
                    await self._renew(keys=[self._keys.lease(unit), self._keys.fence(unit)],
                                      args=[self._value(unit), self._ttl_ms,
                                            self.fences[unit]], client=pipe)
                results = await pipe.execute()
        done = time.monotonic()
        lost = []
        for unit, renewed in zip(live, results, strict=True):
            if renewed == 1 and self.valid_until[unit] > done:
                self.valid_until[unit] = sent + self.ttl * SAFETY
            else:
                if renewed == 1:
                    lapsed.append(unit)
                lost.append(unit)
                self.valid_until[unit] = 0.0
        for unit in lapsed:  # still ours in Redis: free for the next round to take again
            self.valid_until[unit] = 0.0
            await self._release(keys=[self._keys.lease(unit)], args=[self._value(unit)])
        return lapsed + [unit for unit in lost if unit not in lapsed]

    def overdue(self) -> list[Unit]:
        """Held units whose local deadline passed (renewals failed or came too late)."""
        now = time.monotonic()
        return [unit for unit, until in self.valid_until.items() if now >= until]

    def forget(self, unit: Unit) -> None:
        self.fences.pop(unit, None)
        self.valid_until.pop(unit, None)

    async def release(self, unit: Unit) -> None:
        """Give ``unit`` back at once (check-and-DEL); forgotten here whatever Redis says."""
        if unit not in self.fences:
            return
        value = self._value(unit)
        self.forget(unit)
        await self._release(keys=[self._keys.lease(unit)], args=[value])
