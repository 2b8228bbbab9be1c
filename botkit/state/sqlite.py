"""The SQLite backend of ``ctx.state``: a table of the bots' state file, reached through the
file's worker thread (:mod:`botkit.state.worker`), never from the event loop."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

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
from botkit.state.worker import DEFAULT_TIMEOUT, SQLiteFile

__all__ = ["SQLiteStateStore"]

T = TypeVar("T")
P = ParamSpec("P")

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
    if row is not None and expired(row[1], now):
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
        live = row is not None and not expired(row[1], now)
        value = add(key, row[0] if live else None, amount)
        expires = row[1] if live else expiry(ttl, now)
        db.execute(_UPSERT, (namespace, key, json.dumps(value), expires))
    return value


def _prepare(db: sqlite3.Connection, now: float) -> None:
    db.execute(_SCHEMA)
    db.execute(_PURGE, (now,))


class SQLiteStateStore(StoreBase):
    """The store in a SQLite file (WAL mode, shared with other tables such as the scheduler's).

    Opening it takes the file's process lock (StateInUseError while another process runs on
    the file). Every call runs on the file's worker thread and fails with StateTimeoutError,
    naming the file, when the file stays locked longer than ``timeout`` seconds."""

    def __init__(self, path: str | Path, *, clock: Clock = time.time,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._clock = clock
        self._file: SQLiteFile | None = None

    async def open(self) -> None:
        if self._file is not None:
            return
        file = await SQLiteFile.open(self.path, timeout=self.timeout)
        try:
            await file.call(_prepare, self._clock())
        except BaseException:
            file.close_soon()
            raise
        self._file = file

    async def aclose(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            await file.release()

    async def _run(self, work: Callable[Concatenate[sqlite3.Connection, P], T],
                   *args: P.args, **kwargs: P.kwargs) -> T:
        """``work(connection, ...)`` on the file's worker thread."""
        if self._file is None:
            raise StateError(f"the state store {self.path} is not open; use 'async with' or "
                             "open()")
        return await self._file.call(work, *args, **kwargs)

    async def get(self, namespace: str, key: str, default: JsonValue = None) -> JsonValue:
        text = await self._run(_read, check_key(namespace, "namespace"), check_key(key),
                               self._clock())
        return default if text is None else decode(key, text)

    async def set(self, namespace: str, key: str, value: JsonValue, *,
                  ttl: float | None = None) -> None:
        namespace, key = check_key(namespace, "namespace"), check_key(key)
        row = (namespace, key, encode(key, value), expiry(ttl, self._clock()))
        await self._run(_write, row)

    async def delete(self, namespace: str, key: str) -> bool:
        return await self._run(_delete, check_key(namespace, "namespace"), check_key(key),
                               self._clock())

    async def incr(self, namespace: str, key: str, amount: int = 1, *,
                   ttl: float | None = None) -> int:
        now = self._clock()
        expiry(ttl, now)  # a bad ttl fails even when the counter exists
        return await self._run(_incr, check_key(namespace, "namespace"), check_key(key),
                               check_amount(amount), ttl, now)

    async def keys(self, namespace: str, prefix: str = "") -> list[str]:
        return await self._run(_keys, check_key(namespace, "namespace"),
                               check_key(prefix, "prefix", empty=True), self._clock())
