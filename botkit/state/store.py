"""``ctx.state``: a small persistent key-value store, one namespace per bot.

::

    async with open_state_store(config) as store:      # config: BotsConfig or its StateConfig
        state = BotState(store, "welcome")                 # what handlers see as ctx.state
        await state.set("greeted:alice", True, ttl=3600)
        await state.incr("rolls")

Values are JSON (dict, list, str, int, float, bool, None) and are checked when set, so a value the
file could not hold fails in the handler that set it, not in a later read. A key may expire after
``ttl`` seconds; an expired key reads as absent and its row is purged lazily (and when the store
opens). Expiry times are wall-clock timestamps, not monotonic ones, because they must survive a
restart. Both backends share every check, so a test on the memory backend refuses what
production would refuse.

The package, one module per concept: ``base`` (the protocol and the shared checks), ``memory``
and ``sqlite`` (the backends), ``worker`` (the SQLite file's thread), ``filelock`` (one process
per state file), ``redis`` (the replicas' backend, with ``cluster:``; imported only then, as
redis-py is an extra: :mod:`botkit.runtime.storage` opens it), and this module: the per-bot view
and the choice of the single-process backend.
"""

from __future__ import annotations

import time

from botkit.config import BotsConfig, StateConfig
from botkit.state.base import MAX_KEY_LENGTH, Clock, JsonValue, StateStore, check_key
from botkit.state.memory import MemoryStateStore
from botkit.state.sqlite import SQLiteStateStore

__all__ = ["MAX_KEY_LENGTH", "BotState", "JsonValue", "MemoryStateStore", "SQLiteStateStore",
           "StateStore", "open_state_store"]


class BotState:
    """One bot's view of a store (``ctx.state``): its keys, invisible to every other bot.

    ``incr`` is atomic; a missing or expired counter counts as 0. Its ``ttl`` applies when the
    counter starts, and increments keep that expiry: ``incr("rolls", ttl=60)`` counts within a
    60-second window. ``set`` replaces the value and the expiry (no ttl: never expires)."""

    __slots__ = ("_store", "namespace")

    def __init__(self, store: StateStore, namespace: str) -> None:
        self._store = store
        self.namespace = check_key(namespace, "namespace")

    async def get(self, key: str, default: JsonValue = None) -> JsonValue:
        return await self._store.get(self.namespace, key, default)

    async def set(self, key: str, value: JsonValue, *, ttl: float | None = None) -> None:
        await self._store.set(self.namespace, key, value, ttl=ttl)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was there (and not expired)."""
        return await self._store.delete(self.namespace, key)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        return await self._store.incr(self.namespace, key, amount, ttl=ttl)

    async def keys(self, prefix: str = "") -> list[str]:
        """The live keys starting with ``prefix``, sorted."""
        return await self._store.keys(self.namespace, prefix)


def open_state_store(config: BotsConfig | StateConfig, *,
                     clock: Clock = time.time) -> StateStore:
    """The store the ``state:`` section asks for, not yet open: ``async with`` it."""
    section = config.state if isinstance(config, BotsConfig) else config
    if section.backend == "memory":
        return MemoryStateStore(clock)
    return SQLiteStateStore(section.path, clock=clock)
