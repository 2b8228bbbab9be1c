"""What every ``ctx.state`` backend shares: the :class:`StateStore` protocol, the ``async with``
base class and the checks of keys, values, expiries and counters. Both backends run the same
checks, so a test on the memory backend refuses what production would refuse."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Protocol, Self, TypeAlias, runtime_checkable

from botkit.errors import StateError

__all__ = ["MAX_KEY_LENGTH", "Clock", "FencedStateStore", "JsonValue", "StateStore",
           "StoreBase", "add", "check_amount", "check_key", "decode", "encode", "expired", "expiry"]

# Any, not a recursive union: dict and list are invariant, so a dict[str, int] would not be
# accepted where a dict[str, JSON] is expected. Values are checked at run time instead.
JsonValue: TypeAlias = Any
Clock: TypeAlias = Callable[[], float]

MAX_KEY_LENGTH = 256


class StateStore(Protocol):
    """A backend: namespaced keys with JSON values. Open it (``async with`` or ``open()``)
    before use; every operation raises StateError when it is not open."""

    async def open(self) -> None: ...
    async def aclose(self) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc_info: object) -> None: ...
    async def get(self, namespace: str, key: str, default: JsonValue = None) -> JsonValue: ...
    async def set(self, namespace: str, key: str, value: JsonValue, *,
                  ttl: float | None = None) -> None: ...
    async def delete(self, namespace: str, key: str) -> bool: ...
    async def incr(self, namespace: str, key: str, amount: int = 1, *,
                   ttl: float | None = None) -> int: ...
    async def keys(self, namespace: str, prefix: str = "") -> list[str]: ...


@runtime_checkable
class FencedStateStore(StateStore, Protocol):
    """A backend shared by replicas, which can refuse a stale writer's write.

    ``set_fenced`` sets ``key`` (no expiry) unless a higher fencing token than ``fence`` was
    written for it before, and says whether it wrote. A lease holder's token is higher than
    every earlier holder's, so a replica that lost the lease can't undo the new holder's
    writes (the Redis backend; SQLite has one process, and needs no fence)."""

    async def set_fenced(self, namespace: str, key: str, value: JsonValue,
                         fence: int) -> bool: ...


# --- checks shared by both backends -----------------------------------------------------------


def check_key(key: object, what: str = "key", *, empty: bool = False) -> str:
    if not isinstance(key, str):
        raise StateError(f"state {what} must be a string, got a {type(key).__name__}")
    if len(key) > MAX_KEY_LENGTH or not (key or empty):
        raise StateError(f"state {what} must have 1 to {MAX_KEY_LENGTH} characters, got "
                         f"{len(key)}" + (f": {key[:40]!r}..." if key else ""))
    try:
        key.encode("utf-8")  # lone surrogates can't be stored in a TEXT column
    except UnicodeEncodeError:
        raise StateError(f"state {what} {key!r} is not valid Unicode text") from None
    return key


def expiry(ttl: float | None, now: float) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not (
            math.isfinite(ttl) and ttl > 0):
        raise StateError(f"ttl must be a finite number of seconds > 0, or None; got {ttl!r}")
    return now + ttl


def expired(expires_at: float | None, now: float) -> bool:
    return expires_at is not None and expires_at <= now


def encode(key: str, value: JsonValue) -> str:
    """``value`` as JSON text; StateError naming ``key`` if it is not a JSON value."""
    try:
        _check_json(value, "the value")
    except RecursionError:
        raise StateError(f"state key {key!r}: the value is nested too deeply or contains "
                         "itself") from None
    except TypeError as exc:
        raise StateError(f"state key {key!r}: {exc}; store only dict (with str keys), list, "
                         "str, int, float, bool or None") from None
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _check_json(value: object, where: str) -> None:
    # Stricter than json.dumps, which would quietly turn tuples into lists and 1 into "1" as a
    # dict key: a value read back must equal the value set.
    if value is None or isinstance(value, str | int):  # bool is an int
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}, which JSON can't hold")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise TypeError(f"{where} has a non-string key {name!r}")
            _check_json(item, f"{where}[{name!r}]")
    else:
        raise TypeError(f"{where} is of type {type(value).__name__}, not a JSON value")


def decode(key: str, text: str) -> JsonValue:
    try:
        return json.loads(text)
    except ValueError as exc:  # only a hand-edited file can hold this
        raise StateError(f"state key {key!r} holds text that is not JSON") from exc


def add(key: str, stored: str | None, amount: int) -> int:
    """The counter after ``incr``: the stored value (absent counts as 0) plus ``amount``."""
    if stored is None:
        return amount
    current = decode(key, stored)
    if isinstance(current, bool) or not isinstance(current, int):
        raise StateError(f"state key {key!r} holds a {type(current).__name__}, not an integer; "
                         "incr() counts only integers")
    return current + amount


def check_amount(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise StateError(f"incr() amount must be an int, got {amount!r}")
    return amount


class StoreBase:
    """``async with`` for every backend."""

    async def open(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
