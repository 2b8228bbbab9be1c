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
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, Self, TypeAlias, TypeVar

from botkit.config import BotsConfig, StateConfig
from botkit.errors import StateError

__all__ = ["MAX_KEY_LENGTH", "BotState", "JsonValue", "MemoryStateStore", "SQLiteStateStore",
           "StateStore", "open_state_store"]

# Any, not a recursive union: dict and list are invariant, so a dict[str, int] would not be
# accepted where a dict[str, JSON] is expected. Values are checked at run time instead.
JsonValue: TypeAlias = Any
Clock: TypeAlias = Callable[[], float]
T = TypeVar("T")
P = ParamSpec("P")

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


# --- checks shared by both backends -----------------------------------------------------------


def _check_key(key: object, what: str = "key", *, empty: bool = False) -> str:
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


def _expiry(ttl: float | None, now: float) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not (
            math.isfinite(ttl) and ttl > 0):
        raise StateError(f"ttl must be a finite number of seconds > 0, or None; got {ttl!r}")
    return now + ttl


def _expired(expires_at: float | None, now: float) -> bool:
    return expires_at is not None and expires_at <= now


def _encode(key: str, value: JsonValue) -> str:
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


def _decode(key: str, text: str) -> JsonValue:
    try:
        return json.loads(text)
    except ValueError as exc:  # only a hand-edited file can hold this
        raise StateError(f"state key {key!r} holds text that is not JSON") from exc


def _add(key: str, stored: str | None, amount: int) -> int:
    """The counter after ``incr``: the stored value (absent counts as 0) plus ``amount``."""
    if stored is None:
        return amount
    current = _decode(key, stored)
    if isinstance(current, bool) or not isinstance(current, int):
        raise StateError(f"state key {key!r} holds a {type(current).__name__}, not an integer; "
                         "incr() counts only integers")
    return current + amount


def _check_amount(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise StateError(f"incr() amount must be an int, got {amount!r}")
    return amount


class _Store:
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


# --- memory -----------------------------------------------------------------------------------


class MemoryStateStore(_Store):
    """The whole store in a dict, for tests. Values are kept as JSON text, which makes every read
    a fresh copy: a caller can't change stored state by mutating what it set or got."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._data: dict[str, dict[str, tuple[str, float | None]]] = {}
        self._open = False

    async def open(self) -> None:
        now = self._clock()
        for rows in self._data.values():
            for key in [key for key, (_, expires) in rows.items() if _expired(expires, now)]:
                del rows[key]
        self._open = True

    async def aclose(self) -> None:
        self._open = False  # the data stays: reopening this object finds it again

    def _rows(self, namespace: str) -> dict[str, tuple[str, float | None]]:
        if not self._open:
            raise StateError("the memory state store is not open; use 'async with' or open()")
        return self._data.setdefault(_check_key(namespace, "namespace"), {})

    def _live(self, namespace: str, key: str, now: float) -> str | None:
        rows = self._rows(namespace)
        row = rows.get(_check_key(key))
        if row is not None and _expired(row[1], now):
            del rows[key]
            return None
        return None if row is None else row[0]

    # No awaits inside the operations: each runs whole on the loop, so incr is atomic as is.
    async def get(self, namespace: str, key: str, default: JsonValue = None) -> JsonValue:
        text = self._live(namespace, key, self._clock())
        return default if text is None else _decode(key, text)

    async def set(self, namespace: str, key: str, value: JsonValue, *,
                  ttl: float | None = None) -> None:
        rows, key = self._rows(namespace), _check_key(key)
        rows[key] = (_encode(key, value), _expiry(ttl, self._clock()))

    async def delete(self, namespace: str, key: str) -> bool:
        found = self._live(namespace, key, self._clock()) is not None
        self._rows(namespace).pop(key, None)
        return found

    async def incr(self, namespace: str, key: str, amount: int = 1, *,
                   ttl: float | None = None) -> int:
        now, amount = self._clock(), _check_amount(amount)
        expires = _expiry(ttl, now)
        text = self._live(namespace, key, now)
        value = _add(key, text, amount)
        if text is not None:
            expires = self._rows(namespace)[key][1]
        self._rows(namespace)[key] = (json.dumps(value), expires)
        return value

    async def keys(self, namespace: str, prefix: str = "") -> list[str]:
        now, prefix = self._clock(), _check_key(prefix, "prefix", empty=True)
        return sorted(key for key, (_, expires) in self._rows(namespace).items()
                      if key.startswith(prefix) and not _expired(expires, now))


# --- SQLite -----------------------------------------------------------------------------------

_SCHEMA = """CREATE TABLE IF NOT EXISTS botkit_state (
    namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL,
    PRIMARY KEY (namespace, key)) WITHOUT ROWID"""
_SELECT = "SELECT value, expires_at FROM botkit_state WHERE namespace = ? AND key = ?"
_UPSERT = """INSERT INTO botkit_state (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
    expires_at = excluded.expires_at"""
_DELETE = "DELETE FROM botkit_state WHERE namespace = ? AND key = ?"
_PURGE = "DELETE FROM botkit_state WHERE expires_at <= ?"
_KEYS = """SELECT key FROM botkit_state WHERE namespace = ? AND substr(key, 1, ?) = ?
    AND (expires_at IS NULL OR expires_at > ?) ORDER BY key"""


def _read(db: sqlite3.Connection, namespace: str, key: str, now: float) -> str | None:
    row = db.execute(_SELECT, (namespace, key)).fetchone()
    if row is not None and _expired(row[1], now):
        # The guard keeps a value that another connection has just set again.
        db.execute(_DELETE + " AND expires_at <= ?", (namespace, key, now))
        return None
    return None if row is None else str(row[0])


def _write(db: sqlite3.Connection, row: tuple[str, str, str, float | None]) -> None:
    db.execute(_UPSERT, row)  # one statement: atomic by itself in autocommit mode


def _keys(db: sqlite3.Connection, namespace: str, prefix: str, now: float) -> list[str]:
    rows = db.execute(_KEYS, (namespace, len(prefix), prefix, now)).fetchall()
    return [str(key) for (key,) in rows]


def _delete(db: sqlite3.Connection, namespace: str, key: str, now: float) -> bool:
    live = db.execute(_DELETE + " AND (expires_at IS NULL OR expires_at > ?)",
                      (namespace, key, now)).rowcount > 0
    if not live:
        db.execute(_DELETE, (namespace, key))  # an expired row: purge it, but report absent
    return live


def _incr(db: sqlite3.Connection, namespace: str, key: str, amount: int, ttl: float | None,
          now: float) -> int:
    # IMMEDIATE takes the write lock before the read, so another connection to the file (the
    # job store, a second process) can't change the counter between our read and our write.
    db.execute("BEGIN IMMEDIATE")
    with db:  # commits, or rolls back on any error (a non-integer value included)
        row = db.execute(_SELECT, (namespace, key)).fetchone()
        live = row is not None and not _expired(row[1], now)
        value = _add(key, row[0] if live else None, amount)
        expires = row[1] if live else _expiry(ttl, now)
        db.execute(_UPSERT, (namespace, key, json.dumps(value), expires))
    return value


class SQLiteStateStore(_Store):
    """The store in a SQLite file (WAL mode, shared with other tables such as the scheduler's).

    Every database call runs on one dedicated worker thread that owns the only connection. One
    thread serializes the calls without a lock (so incr needs no lock either), keeps the
    connection on the thread that made it (sqlite3's own same-thread check stays on), and does
    not compete with sync handlers for the default executor's threads. A call whose caller is
    cancelled may still complete, like any write already sent.
    """

    def __init__(self, path: str | Path, *, clock: Clock = time.time,
                 busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._clock = clock
        self._busy_timeout = busy_timeout  # how long to wait for another writer's lock
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None  # touched only on the worker thread

    async def open(self) -> None:
        if self._executor is not None:
            return
        executor = self._executor = ThreadPoolExecutor(1, thread_name_prefix="botkit-state")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._connect,
                                                             self._clock())
        except BaseException:
            self._executor = None
            executor.submit(self._disconnect)  # in case the connect ran after a cancellation
            executor.shutdown(wait=False)
            raise

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # The worker runs what is queued, then the close, then exits; if this await is
        # cancelled, the close still happens.
        closed = asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        executor.shutdown(wait=False)
        await closed

    def _connect(self, now: float) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the state store {self.path}: {exc}") from exc
        try:
            # WAL lets the job store read and write the same file alongside us; NORMAL sync is
            # safe in WAL mode (a power cut may lose the last commits, never corrupt the file).
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.execute(_PURGE, (now,))
        except sqlite3.Error as exc:
            db.close()
            raise StateError(f"cannot use the state store {self.path}: {exc}") from exc
        self._db = db

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    async def _run(self, work: Callable[Concatenate[sqlite3.Connection, P], T],
                   *args: P.args, **kwargs: P.kwargs) -> T:
        """``work(connection, ...)`` on the worker thread."""
        if self._executor is None:
            raise StateError(f"the state store {self.path} is not open; use 'async with' or "
                             "open()")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(self._call, work, *args, **kwargs))

    def _call(self, work: Callable[Concatenate[sqlite3.Connection, P], T],
              *args: P.args, **kwargs: P.kwargs) -> T:
        if self._db is None:  # the open failed, or was cancelled before it ran
            raise StateError(f"the state store {self.path} is not open")
        try:
            return work(self._db, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StateError(f"state store {self.path}: {exc}") from exc

    async def get(self, namespace: str, key: str, default: JsonValue = None) -> JsonValue:
        text = await self._run(_read, _check_key(namespace, "namespace"), _check_key(key),
                               self._clock())
        return default if text is None else _decode(key, text)

    async def set(self, namespace: str, key: str, value: JsonValue, *,
                  ttl: float | None = None) -> None:
        namespace, key = _check_key(namespace, "namespace"), _check_key(key)
        row = (namespace, key, _encode(key, value), _expiry(ttl, self._clock()))
        await self._run(_write, row)

    async def delete(self, namespace: str, key: str) -> bool:
        return await self._run(_delete, _check_key(namespace, "namespace"), _check_key(key),
                               self._clock())

    async def incr(self, namespace: str, key: str, amount: int = 1, *,
                   ttl: float | None = None) -> int:
        now = self._clock()
        _expiry(ttl, now)  # a bad ttl fails even when the counter exists
        return await self._run(_incr, _check_key(namespace, "namespace"), _check_key(key),
                               _check_amount(amount), ttl, now)

    async def keys(self, namespace: str, prefix: str = "") -> list[str]:
        return await self._run(_keys, _check_key(namespace, "namespace"),
                               _check_key(prefix, "prefix", empty=True), self._clock())


# --- the per-bot view -------------------------------------------------------------------------


class BotState:
    """One bot's view of a store (``ctx.state``): its keys, invisible to every other bot.

    ``incr`` is atomic; a missing or expired counter counts as 0. Its ``ttl`` applies when the
    counter starts, and increments keep that expiry: ``incr("rolls", ttl=60)`` counts within a
    60-second window. ``set`` replaces the value and the expiry (no ttl: never expires)."""

    __slots__ = ("_store", "namespace")

    def __init__(self, store: StateStore, namespace: str) -> None:
        self._store = store
        self.namespace = _check_key(namespace, "namespace")

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
