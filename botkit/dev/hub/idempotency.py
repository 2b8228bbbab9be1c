"""The server API's ``idempotency_key``: a publish with a key seen in the last 5 minutes (per
channel) is not published again, and its first result is returned instead.

Every entry lives the same TTL, so insertion order is expiry order and a FIFO is enough. The
cache is bounded: past ``max_entries`` the oldest keys are forgotten early, which can only turn
a deduplication into a second publication, never lose one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from botkit.dev.hub.streams import Position

__all__ = ["IDEMPOTENCY_TTL", "IdempotencyCache"]

IDEMPOTENCY_TTL = 300.0
"""Centrifugo's ``defaultIdempotentResultExpireSeconds``."""


class IdempotencyCache:
    def __init__(self, clock: Callable[[], float], *, ttl: float = IDEMPOTENCY_TTL,
                 max_entries: int = 100_000) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max_entries = max_entries
        # (channel, key) -> (expires at, position; None when the channel keeps no history)
        self._entries: OrderedDict[tuple[str, str], tuple[float, Position | None]] = (
            OrderedDict())

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> None:
        while self._entries:
            expires_at, _ = next(iter(self._entries.values()))
            if expires_at > now and len(self._entries) <= self._max_entries:
                return
            self._entries.popitem(last=False)

    def get(self, channel: str, key: str) -> tuple[bool, Position | None]:
        """(found, first result)."""
        self._evict(self._clock())
        entry = self._entries.get((channel, key))
        if entry is None:
            return False, None
        return True, entry[1]

    def put(self, channel: str, key: str, position: Position | None) -> None:
        now = self._clock()
        self._entries[(channel, key)] = (now + self._ttl, position)
        self._entries.move_to_end((channel, key))
        self._evict(now)
