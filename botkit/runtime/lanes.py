"""Ordered lanes: one bounded queue and one worker per (bot, room), while the room is busy.

A room's envelopes are handled one after another, in the order they arrived, while other rooms
run in parallel. A full lane makes its producer wait (the realtime reader, and through it the
socket): backpressure instead of unbounded memory; or the producer declines the item and reads
it back later (runtime/overflow.py: a room of a bot with other rooms). No task is created per
message.

The worker lives while there is work: the first item of an idle lane starts it (in the task
group given to :meth:`Lane.start`, which owns it), and it ends once the lane has been empty for
a while, letting go of its task, its wait and the lane's deque. Hundreds of idle rooms then hold
no task each (bench/ S4), while a busy lane keeps one worker (and one timer that looks at it
every :data:`LINGER` seconds), however many messages it takes. A worker that had one or two
bursts of work (a start-up resync, an occasional message) ends after :data:`LINGER` to twice
that; one that had more (a room that talks) after :data:`BUSY_LOOKS` quiet looks in a row, so
that a room with a message every second or two does not start a task for each (bench/ S13).

The queue is a deque with the few waits a lane needs (its worker for an item, producers for
room, ``drain`` for the end of the work), not an ``asyncio.Queue``: that one made five calls
per item and holds four deques (with an Event), which every room of every bot pays for, even idle
(bench/ S1 and S4).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["BUSY_LOOKS", "LINGER", "Lane"]

_T = TypeVar("_T")

LINGER = 0.3
"""Seconds between two looks at a lane's worker: one found waiting for an item at two looks in a
row (so idle for LINGER to 2 x LINGER) ends, if it had at most two bursts of work."""
BUSY_LOOKS = 6
"""Looks in a row that must find a worker with more bursts behind it waiting (idle for about
BUSY_LOOKS x LINGER seconds) before it ends."""


_NONE: Any = ()
"""An idle lane's items: empty, and shared (``len`` and truth work; the first item replaces it
with a deque)."""


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Lane(Generic[_T]):
    __slots__ = ("_born", "_drainers", "_getter", "_group", "_handle", "_idles", "_items",
                 "_looked", "_maxsize", "_putters", "_quiet", "_timer", "_unfinished", "_worker",
                 "name")

    def __init__(self, name: str, handle: Callable[[_T], Awaitable[None]], *,
                 maxsize: int) -> None:
        self.name = name
        self._handle = handle
        self._maxsize = maxsize
        # An empty deque is ~760 bytes: an idle lane (no worker) holds a shared empty tuple.
        self._items: deque[_T] = _NONE
        self._unfinished = 0  # queued, or taken and not yet handled
        self._group: asyncio.TaskGroup | None = None  # owns the worker; None: not started
        self._worker: asyncio.Task[None] | None = None
        self._getter: asyncio.Future[None] | None = None  # the worker, waiting for an item
        self._putters: list[asyncio.Future[None]] = []  # producers, waiting for room (few)
        self._drainers: list[asyncio.Future[None]] = []  # drain(), waiting for the end
        self._timer: asyncio.TimerHandle | None = None  # the look at the worker (see LINGER)
        self._idles = 0  # how often the worker began waiting for an item
        self._looked = -1  # _idles at the last look
        self._born = 0  # _idles when the worker started
        self._quiet = 0  # looks in a row that found the worker waiting since the last one

    def start(self, group: asyncio.TaskGroup) -> None:
        """Let the lane run its worker in ``group`` (from now on, whenever it has work)."""
        self._group = group
        if self._items:
            self._spawn()

    @property
    def pending(self) -> int:
        return len(self._items)

    @property
    def working(self) -> bool:
        """Whether the lane has a worker now (it has none while idle)."""
        return self._worker is not None

    def offer(self, item: _T) -> bool:
        """Queue ``item`` if the lane has room now; False (nothing queued) when it is full."""
        items = self._items
        if len(items) >= self._maxsize:
            return False
        if items is _NONE:
            items = self._items = deque()
        items.append(item)
        self._unfinished += 1
        if self._getter is not None:
            _wake(self._getter)
        elif self._worker is None:
            self._spawn()
        return True

    def push(self, item: _T) -> None:
        """Queue ``item`` even when the lane is full. Only for the few control items a room
        gets per (re)subscribe (its epoch, a gap, a presence resync): bounded by reconnects,
        and never worth making the connection's reader wait for."""
        if self._items is _NONE:
            self._items = deque()
        self._items.append(item)
        self._unfinished += 1
        if self._getter is not None:
            _wake(self._getter)
        elif self._worker is None:
            self._spawn()

    def _spawn(self) -> None:
        group = self._group
        if group is None:
            return  # not started yet (start() spawns it) or stopped: the items wait
        try:
            self._worker = group.create_task(self._run(), name=f"lane {self.name}")
        except RuntimeError:
            return  # the group is shutting down (the bot is failing): nothing more is handled
        self._looked = -1
        self._born = self._idles
        self._quiet = 0
        self._timer = self._worker.get_loop().call_later(LINGER, self._look)

    def _look(self) -> None:
        """Every LINGER seconds while the worker lives: end it once it has been waiting for
        an item long enough (see the module's docstring)."""
        self._timer = None
        worker = self._worker
        if worker is None or worker.done():
            return
        getter = self._getter
        if getter is not None and self._idles == self._looked:
            self._quiet += 1
            # Bursts of work this worker had: each began with a wait that an item ended.
            if self._quiet >= (1 if self._idles - self._born <= 2 else BUSY_LOOKS):
                _wake(getter)  # it finds the lane empty and ends (see _idle)
        else:
            self._quiet = 0
        self._looked = self._idles
        self._timer = worker.get_loop().call_later(LINGER, self._look)

    async def _idle(self) -> bool:
        """The worker's wait for an item: True when one came, False when the worker is to end
        (idle long enough, see _look); the lane then holds no task, timer nor deque."""
        self._idles += 1
        self._getter = getter = asyncio.get_running_loop().create_future()
        try:
            await getter
        finally:
            self._getter = None
        if self._items:
            return True
        # Ending: from the next statement on, an item starts a new worker.
        self._worker = None
        self._items = _NONE
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        return False

    def clear(self) -> int:
        """Drop every queued item unhandled (the room went to another replica, which recovers
        them from the stored position); the number dropped. An item being handled finishes."""
        dropped = len(self._items)
        if dropped:
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
        while True:
            if not items:
                if await self._idle():
                    continue
                return
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
        """End the worker (what it was handling is cancelled); no new one starts."""
        self._group = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            # wait() does not re-raise the worker's CancelledError; one aimed at us still does.
            await asyncio.wait([worker])
