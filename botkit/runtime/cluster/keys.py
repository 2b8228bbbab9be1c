"""Where the replicas of one project meet in Redis: the names of their keys.

Everything of a project lives under ``botkit:{project}:``, beside the shared state store's keys
(one Redis, or a Sentinel-managed primary; not a Redis Cluster, where a lease and its fence
counter could sit on different nodes):

* ``replicas``: the live replicas, a sorted set scored by each one's expiry (membership.py);
* ``replicas:{replica_id}``: a replica's heartbeat (PX lease_ttl), its value the units it holds;
* ``lease:{bot}/{room}``: the lease of one unit, ``{replica_id}:{fence}`` (PX lease_ttl);
* ``fence:{bot}/{room}``: the unit's fence counter, INCR at each acquisition (never expires).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClusterKeys", "Unit"]


@dataclass(frozen=True, slots=True, order=True)
class Unit:
    """What one replica serves at a time: one room of one bot."""

    bot: str
    room: str

    def __str__(self) -> str:
        return f"{self.bot}/{self.room}"

    @classmethod
    def parse(cls, text: str) -> Unit:
        bot, _, room = text.partition("/")
        return cls(bot, room)


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    project: str

    @property
    def prefix(self) -> str:
        return f"botkit:{self.project}:"

    def members(self) -> str:
        return f"{self.prefix}replicas"

    def replica(self, replica_id: str) -> str:
        return f"{self.prefix}replicas:{replica_id}"

    def replicas_pattern(self) -> str:
        return f"{self.prefix}replicas:*"

    def lease(self, unit: Unit) -> str:
        return f"{self.prefix}lease:{unit}"

    def leases_pattern(self) -> str:
        return f"{self.prefix}lease:*"

    def fence(self, unit: Unit) -> str:
        return f"{self.prefix}fence:{unit}"

    def unit_of_lease(self, key: str) -> Unit:
        return Unit.parse(key[len(self.prefix) + len("lease:"):])
