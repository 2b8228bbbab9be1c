"""One thread per SQLite file: every database call of this process to the state file runs there.

The state store (``ctx.state``) and the job store share the bots' state file. Both used to wait
for SQLite's file lock — up to the busy timeout — and the job store did it on the event loop,
where APScheduler calls it: while a backup tool or a second process held the write lock, every
bot of the process stood still. Here each file has one worker thread owning the process's only
connection to it:

* the event loop never waits on the file: callers await a future, bounded by a timeout, and a
  file that stays locked fails the call with StateTimeoutError naming the file;
* one thread serializes the calls without a lock (``incr`` needs none), keeps the connection on
  the thread that made it (sqlite3's same-thread check stays on) and does not compete with sync
  handlers for the default executor's threads;
* the users of a file share the worker (:meth:`SQLiteFile.open` counts them), so the process
  holds the file's :class:`~botkit.state.filelock.ProcessLock` once, from the first open to the
  last close.

A call whose caller gave up (timeout, cancellation) may still complete, like any write already
sent; a call still queued when its caller gives up is skipped.
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from botkit.errors import StateError, StateFileError, StateTimeoutError
from botkit.state.filelock import ProcessLock

__all__ = ["DEFAULT_TIMEOUT", "MAX_WAITING", "SQLiteFile"]

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_TIMEOUT = 5.0
"""How long one call may wait for another connection's lock on the file (SQLite's busy
timeout); a caller waits for its answer at most this plus _QUEUE_SLACK."""
_QUEUE_SLACK = 1.0
MAX_WAITING = 1000
"""Calls queued for one file at most; beyond, a call fails at once instead of growing a queue
behind a file that can't keep up."""
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class SQLiteFile:
    """The process's connection to one SQLite file, on the file's own worker thread."""

    _open_files: ClassVar[dict[Path, SQLiteFile]] = {}
    _closing: ClassVar[dict[Path, SQLiteFile]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, timeout: float, previous: SQLiteFile | None) -> None:
        self.path = path
        self.timeout = timeout
        self._previous = previous  # the last worker of this file, maybe still closing
        self._users = 0  # guarded by _registry_lock
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._count_lock = threading.Lock()
        self._waiting = 0  # guarded by _count_lock, as is _stopping
        self._stopping = False
        self._lock = ProcessLock(path)
        self._db: sqlite3.Connection | None = None  # touched only on the worker thread
        self._open_error: BaseException | None = None
        self._closed: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"botkit-state {path.name}")

    # -- users: open and release -----------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path, *, timeout: float = DEFAULT_TIMEOUT) -> SQLiteFile:
        """The file's worker, connected (a new one, or the one this process already has).
        StateInUseError if another process holds the file; StateError if it is unusable."""
        key = _key(path)
        with cls._registry_lock:
            file = cls._open_files.get(key)
            if file is None:
                file = cls._open_files[key] = cls(key, timeout, cls._closing.get(key))
                file._queue.put(file._connect)  # first in the queue: before any user's call
                file._thread.start()
            file._users += 1
        try:
            await file.call(_nothing)  # after the connect: fails the way it failed
        except BaseException:
            file.close_soon()
            raise
        return file

    def close_soon(self) -> bool:
        """Drop one user; the last one closes the connection and releases the process lock
        (on the worker thread, after the calls already queued). True for the last one."""
        with SQLiteFile._registry_lock:
            self._users -= 1
            if self._users > 0:
                return False
            if SQLiteFile._open_files.get(self.path) is self:
                del SQLiteFile._open_files[self.path]
            SQLiteFile._closing[self.path] = self  # the next worker waits for this one
        with self._count_lock:
            self._stopping = True
        self._queue.put(None)
        return True

    async def release(self) -> None:
        """:meth:`close_soon`, then wait (bounded) until the connection is closed, so that the
        file is free for another process when this returns."""
        if self.close_soon():
            closed = asyncio.wrap_future(self._closed)
            await asyncio.wait({closed}, timeout=self.timeout + _QUEUE_SLACK)

    # -- calls -----------------------------------------------------------------------------

    def submit(self, work: Callable[Concatenate[sqlite3.Connection, P], T],
               *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``work(connection, ...)`` for the worker thread; never blocks."""
        with self._count_lock:
            if self._stopping:
                raise StateError(f"the state file {self.path} is not open")
            if self._waiting >= MAX_WAITING:
                raise StateError(f"state file {self.path}: {self._waiting} calls already wait "
                                 "for it; it is locked or too slow")
            self._waiting += 1
        future: Future[T] = Future()
        self._queue.put(functools.partial(self._execute, future,
                                          functools.partial(work, **kwargs), args))
        return future

    async def call(self, work: Callable[Concatenate[sqlite3.Connection, P], T],
                   *args: P.args, **kwargs: P.kwargs) -> T:
        """``work(connection, ...)`` on the worker thread; StateTimeoutError when no answer
        comes in time."""
        return await self.wait(self.submit(work, *args, **kwargs))

    async def wait(self, future: Future[T]) -> T:
        """The result of a submitted call, awaited without blocking the loop, bounded."""
        waiter = asyncio.wrap_future(future)
        try:
            done, _ = await asyncio.wait({waiter}, timeout=self.timeout + _QUEUE_SLACK)
        except asyncio.CancelledError:
            waiter.cancel()  # still queued: skipped
            raise
        if not done:
            waiter.cancel()
            raise StateTimeoutError(
                f"state file {self.path}: no answer within {self.timeout + _QUEUE_SLACK:g} s; "
                "another connection may be holding its write lock")
        return waiter.result()

    # -- the worker thread -----------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                item()
        finally:
            self._disconnect()
            with SQLiteFile._registry_lock:
                if SQLiteFile._closing.get(self.path) is self:
                    del SQLiteFile._closing[self.path]
            self._closed.set_result(None)

    def _execute(self, future: Future[Any], work: Callable[..., Any],
                 args: tuple[Any, ...]) -> None:
        with self._count_lock:
            self._waiting -= 1
        if not future.set_running_or_notify_cancel():
            return  # its caller gave up while it waited
        try:
            result = work(self._connection(), *args)
        except sqlite3.Error as exc:
            future.set_exception(self._translate(exc))
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise self._open_error or StateError(f"the state file {self.path} is not open")
        return self._db

    def _translate(self, exc: sqlite3.Error) -> StateError:
        error: StateError
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _BUSY_CODES:
            error = StateTimeoutError(
                f"state file {self.path} stayed locked by another connection for "
                f"{self.timeout:g} s: {exc}")
        else:
            error = StateError(f"state file {self.path}: {exc}")
        error.__cause__ = exc
        return error

    def _connect(self) -> None:
        try:
            self._db = self._connected()
        except Exception as exc:
            self._open_error = exc

    def _connected(self) -> sqlite3.Connection:
        if self._previous is not None:
            # Its close must come first: until then it holds the process lock.
            try:
                self._previous._closed.result(timeout=self.timeout)
            except TimeoutError:
                raise StateTimeoutError(f"state file {self.path}: its previous connection "
                                        f"did not close within {self.timeout:g} s") from None
            self._previous = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
            _create_private(self.path)
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            self._lock.release()
            raise StateFileError(f"cannot open the state file {self.path}: {exc}") from exc
        try:
            # WAL: readers (another tool, a backup) never wait for our writes; NORMAL sync is
            # safe in WAL mode (a power cut may lose the last commits, never corrupt the file).
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # A write now, not at the first flush of positions or the first ctx.state.set():
            # a read-only file is a setup problem, to be reported before any bot starts.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute(f"PRAGMA user_version = {int(version)}")
        except sqlite3.Error as exc:
            db.close()
            self._lock.release()
            raise StateFileError(f"cannot use the state file {self.path}: {exc}") from exc
        return db

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        try:
            if db is not None:
                db.close()
        finally:
            self._lock.release()

    def __repr__(self) -> str:
        return f"<SQLiteFile {self.path}>"


def _key(path: str | Path) -> Path:
    """The registry key of a file: its absolute path (one worker, one lock per file). Only the
    working directory is read, no file: nothing that could block."""
    return Path(path).absolute()


def _nothing(db: sqlite3.Connection) -> None:
    """A call that only says whether the file is open."""


def _create_private(path: Path) -> None:
    """Create the state file readable and writable by its owner only: it holds what the bots
    keep, and whoever can write it decides which jobs run. (SQLite gives its -wal and -shm files
    the same mode.) An existing file keeps the mode its operator gave it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    os.close(fd)
