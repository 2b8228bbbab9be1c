"""The memory backend of ``ctx.state``: for tests and for bots that need nothing kept."""

from __future__ import annotations

import json
import time

from botkit.errors import StateError
from botkit.state.base import (
    Clock,
    JsonValue,
    StoreBase,
    add,
    check_amount,
    check_key,
    decode,
    encode,
    expired,
    expiry,
)

__all__ = ["MemoryStateStore"]


class MemoryStateStore(StoreBase):
    """The whole store in a dict, for tests. Values are kept as JSON text, which makes every read
    a fresh copy: a caller can't change stored state by mutating what it set or got."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._data: dict[str, dict[str, tuple[str, float | None]]] = {}
        self._open = False

    async def open(self) -> None:
        now = self._clock()
        for rows in self._data.values():
            for key in [key for key, (_, expires) in rows.items() if expired(expires, now)]:
                del rows[key]
        self._open = True

    async def aclose(self) -> None:
        self._open = False  # the data stays: reopening this object finds it again

    def _rows(self, namespace: str) -> dict[str, tuple[str, float | None]]:
        if not self._open:
            raise StateError("the memory state store is not open; use 'async with' or open()")
        return self._data.setdefault(check_key(namespace, "namespace"), {})

    def _live(self, namespace: str, key: str, now: float) -> str | None:
        rows = self._rows(namespace)
        row = rows.get(check_key(key))
        if row is not None and expired(row[1], now):
            del rows[key]
            return None
        return None if row is None else row[0]

    # No awaits inside the operations: each runs whole on the loop, so incr is atomic as is.
    async def get(self, namespace: str, key: str, default: JsonValue = None) -> JsonValue:
        text = self._live(namespace, key, self._clock())
        return default if text is None else decode(key, text)

    async def set(self, namespace: str, key: str, value: JsonValue, *,
                  ttl: float | None = None) -> None:
        rows, key = self._rows(namespace), check_key(key)
        rows[key] = (encode(key, value), expiry(ttl, self._clock()))

    async def delete(self, namespace: str, key: str) -> bool:
        found = self._live(namespace, key, self._clock()) is not None
        self._rows(namespace).pop(key, None)
        return found

    async def incr(self, namespace: str, key: str, amount: int = 1, *,
                   ttl: float | None = None) -> int:
        now, amount = self._clock(), check_amount(amount)
        expires = expiry(ttl, now)
        text = self._live(namespace, key, now)
        value = add(key, text, amount)
        if text is not None:
            expires = self._rows(namespace)[key][1]
        self._rows(namespace)[key] = (json.dumps(value), expires)
        return value

    async def keys(self, namespace: str, prefix: str = "") -> list[str]:
        now, prefix = self._clock(), check_key(prefix, "prefix", empty=True)
        return sorted(key for key, (_, expires) in self._rows(namespace).items()
                      if key.startswith(prefix) and not expired(expires, now))
