"""Ordered lanes: one bounded queue and one long-lived worker per (bot, room).

A room's envelopes are handled one after another, in the order they arrived, while other rooms
run in parallel. A full lane makes its producer wait (the realtime reader, and through it the
socket): backpressure instead of unbounded memory; or the producer declines the item and reads
it back later (runtime/overflow.py: a room of a bot with other rooms). No task is created per
message.

The queue is a deque with the few waits a lane needs (its worker for an item, producers for
room, ``drain`` for the end of the work), not an ``asyncio.Queue``: that one made five calls
per item and holds four deques (with an Event), which every room of every bot pays for, even idle
(bench/ S1 and S4).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Lane"]

_T = TypeVar("_T")


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Lane(Generic[_T]):
    def __init__(self, name: str, handle: Callable[[_T], Awaitable[None]], *,
                 maxsize: int) -> None:
        self.name = name
        self._handle = handle
        self._maxsize = maxsize
        self._items: deque[_T] = deque()
        self._unfinished = 0  # queued, or taken and not yet handled
        self._worker: asyncio.Task[None] | None = None
        self._getter: asyncio.Future[None] | None = None  # the worker, waiting for an item
        self._putters: list[asyncio.Future[None]] = []  # producers, waiting for room (few)
        self._drainers: list[asyncio.Future[None]] = []  # drain(), waiting for the end

    def start(self, group: asyncio.TaskGroup) -> None:
        self._worker = group.create_task(self._run(), name=f"lane {self.name}")

    @property
    def pending(self) -> int:
        return len(self._items)

    def offer(self, item: _T) -> bool:
        """Queue ``item`` if the lane has room now; False (nothing queued) when it is full."""
        if len(self._items) >= self._maxsize:
            return False
        self._items.append(item)
        self._unfinished += 1
        _wake(self._getter)
        return True

    def push(self, item: _T) -> None:
        """Queue ``item`` even when the lane is full. Only for the few control items a room
        gets per (re)subscribe (its epoch, a gap, a presence resync): bounded by reconnects,
        and never worth making the connection's reader wait for."""
        self._items.append(item)
        self._unfinished += 1
        _wake(self._getter)

    def clear(self) -> int:
        """Drop every queued item unhandled (the room went to another replica, which recovers
        them from the stored position); the number dropped. An item being handled finishes."""
        dropped = len(self._items)
        self._items.clear()
        self._unfinished -= dropped
        while self._putters and len(self._items) < self._maxsize:
            before = len(self._putters)
            self._wake_putter()
            if len(self._putters) == before:
                break
        if not self._unfinished:
            drainers, self._drainers = self._drainers, []
            for waiter in drainers:
                _wake(waiter)
        return dropped

    async def put(self, item: _T) -> None:
        """Queue ``item``, waiting (in turn with other producers) while the lane is full."""
        while len(self._items) >= self._maxsize:
            waiter = asyncio.get_running_loop().create_future()
            self._putters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if len(self._items) < self._maxsize:
                    self._wake_putter()  # the room we were woken for goes to the next one
                raise
        self.offer(item)

    def _wake_putter(self) -> None:
        putters = self._putters
        while putters:
            waiter = putters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _run(self) -> None:
        items = self._items
        handle = self._handle
        loop = asyncio.get_running_loop()
        while True:
            if not items:
                self._getter = loop.create_future()
                try:
                    await self._getter
                finally:
                    self._getter = None
                continue
            item = items.popleft()
            if self._putters:
                self._wake_putter()
            try:
                # The handler isolates its own errors; a lane only ends by cancellation.
                await handle(item)
            finally:
                self._unfinished -= 1
                if not self._unfinished:
                    drainers, self._drainers = self._drainers, []
                    for waiter in drainers:
                        _wake(waiter)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued has been handled; False if time ran out."""
        if not self._unfinished:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._drainers.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            return False
        finally:
            if waiter in self._drainers:
                self._drainers.remove(waiter)
        return True

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            # wait() does not re-raise the worker's CancelledError; one aimed at us still does.
            await asyncio.wait([worker])
