"""The dispatcher of the reply outboxes (runtime/outbox.py): the one task that publishes every
room's replies, and what becomes of each request.

- **order**: a room has at most one publish request in flight; its replies leave in the order
  they were put, in that request or the next, and a failed one is retried before anything after
  it (resent with the same idempotency key, so nothing is published twice);
- **sharing**: a request carries the replies of many rooms (a sequential batch, up to
  ``max_batch``): the replies put in one turn of the loop, and what gathered while
  ``max_requests`` requests were in flight. An HTTP request costs far more CPU (here and in
  the server) than one more command in it;
- **isolation**: a room waiting for its retry or for its rate limit is simply not in the next
  request; the other rooms are;
- **flood control**: per room a token bucket (``limits.room_rate`` / ``room_burst``) paces the
  replies of a runaway handler; what the bucket holds back waits in order;
- **failure**: a reply refused by the server, or still failing after ``limits.reply_deadline``
  of retries, is given up: the ``wait=True`` caller gets the error; otherwise it is logged once
  (with the error's code), counted, and handed to the bot's ``on_reply_failed`` hooks. The
  room's later replies then go on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from botkit.context import FailedReply
from botkit.errors import (
    ApiError,
    ApiMalformedReplyError,
    ApiReplyError,
    ApiUnavailableError,
    BotkitError,
)
from botkit.protocol.backoff import Backoff
from botkit.runtime.outbox_room import Item, Room
from botkit.serverapi.client import DEFAULT_BACKOFF, PublishResult, ServerApi
from botkit.serverapi.transport import copy_error

if TYPE_CHECKING:
    from botkit.runtime.outbox import BotOutbox

__all__ = ["Dispatcher"]

log = logging.getLogger("botkit.runtime")


class Dispatcher:
    """The outboxes' rooms and the dispatcher (:meth:`run`) that publishes them; ``Outboxes``
    (runtime/outbox.py) adds the putting, draining and giving up of one bot's replies."""

    def __init__(self, api: ServerApi, *, max_batch: int = 100, max_requests: int = 4,
                 backoff: Backoff = DEFAULT_BACKOFF,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        self._api = api
        self._max_batch = max_batch
        self._max_requests = max_requests
        self._backoff = backoff
        self._clock = clock
        self._rng = rng
        self._rooms: dict[tuple[str, str], Room] = {}
        self._bots: dict[str, BotOutbox] = {}
        self._ready: deque[Room] = deque()
        self._timers: list[tuple[float, int, Room]] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Event()  # an item left an outbox (for drain)
        self._tasks: set[asyncio.Task[None]] = set()
        self._requests = 0
        self._group: asyncio.TaskGroup | None = None
        self._starting = False  # a request of the ready rooms is about to start
        self._closed = False

    async def run(self) -> None:
        """Publish the outboxes until :meth:`close`; then give up what is left (counted)."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                while not self._closed:
                    self._fire_timers(self._clock())
                    self._pump()
                    await self._sleep()
                for task in list(self._tasks):
                    task.cancel()
        finally:
            self._group = None
            self._give_up_all()

    def close(self) -> None:
        """End :meth:`run` (requests in flight are cancelled; their replies counted unsent)."""
        self._closed = True
        self._wakeup.set()
        for room in self._rooms.values():
            room.wake_all()

    async def _sleep(self) -> None:
        self._wakeup.clear()
        if self._ready and self._requests < self._max_requests:
            return
        delay = self._timers[0][0] - self._clock() if self._timers else None
        try:
            async with asyncio.timeout(delay):
                await self._wakeup.wait()
        except TimeoutError:
            pass

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        assert self._group is not None
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pump(self) -> None:
        """Start requests for the ready rooms while fewer than ``max_requests`` are out."""
        if self._group is None or self._closed:
            return
        while self._ready and self._requests < self._max_requests:
            batch = self._take()
            if batch:
                self._requests += 1
                self._spawn(self._send(batch), "outbox publish")

    def _schedule(self, room: Room) -> None:
        if room.queued or room.in_flight or room.timer is not None or not room.items:
            return
        room.queued = True
        # A room with a request out is not ready; it comes back with everything put meanwhile.
        self._ready.append(room)

    def _start_soon(self) -> None:
        """After a put: a request that takes the ready rooms when it first runs, on the loop's
        next turn, so the replies put meanwhile by the handlers of this turn, in any room of
        any bot, go in it too (bench/ S13: ~2.5 replies per turn at 400 replies/s in 500
        rooms, each alone cost a request), none waiting longer than it did alone. The other
        callers of _schedule (a settled request, a timer) pump right after it instead."""
        if (self._ready and not self._starting and self._requests < self._max_requests
                and self._group is not None and not self._closed):
            self._starting = True
            self._requests += 1
            self._spawn(self._send_ready(), "outbox publish")

    async def _send_ready(self) -> None:
        """A request of whatever is ready when it starts (_start_soon took its slot)."""
        self._starting = False
        batch = self._take()
        if not batch:
            self._requests -= 1
        self._pump()  # more requests for what did not fit in this one
        if batch:
            await self._send(batch)

    def _later(self, room: Room, when: float) -> None:
        room.timer = when
        heapq.heappush(self._timers, (when, next(self._seq), room))
        self._wakeup.set()

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            room = heapq.heappop(timers)[2]
            room.timer = None
            self._schedule(room)

    def _take(self) -> list[tuple[Room, int]]:
        """The next request: the ready rooms' heads, oldest-ready room first."""
        batch: list[tuple[Room, int]] = []
        space = self._max_batch
        now = self._clock()
        while self._ready and space:
            room = self._ready.popleft()
            room.queued = False
            if room.in_flight or not room.items or room.timer is not None:
                continue
            count = room.take(now, space)
            if isinstance(count, float):
                self._later(room, count)  # its rate allows nothing before then
                continue
            batch.append((room, count))
            space -= count
        return batch

    async def _send(self, batch: list[tuple[Room, int]]) -> None:
        try:
            params = [room.items[index].params for room, count in batch
                      for index in range(count)]
            outcomes: list[PublishResult | ApiError]
            try:
                outcomes = await self._api.publish_once(params)
            except ApiError as exc:
                if _temporary(exc):
                    self._api.stats.retries += 1
                    log.warning("server API publish of %d replies (%d rooms) failed (%s); "
                                "their rooms retry", len(params), len(batch), exc)
                outcomes = [exc] * len(params)
            position = 0
            for room, count in batch:
                self._settle(room, outcomes[position:position + count])
                position += count
        except Exception as exc:
            # A bug, not a server failure: give these replies up (reported), go on.
            log.exception("the outbox failed on a request of %d rooms", len(batch))
            for room, count in batch:
                if room.in_flight:
                    self._settle(room, [ApiError(f"the outbox failed (a bug; see the log): "
                                                 f"{exc!r}")] * count)
        finally:
            self._requests -= 1
            self._pump()

    def _settle(self, room: Room, outcomes: list[PublishResult | ApiError]) -> None:
        """The outcomes of the room's head items, in order."""
        room.in_flight = 0
        outbox = self._bots.get(room.bot)
        retry = False
        for outcome in outcomes:
            if _temporary(outcome):
                retry = True
                break
            item = room.items.popleft()
            room.done += 1
            room.paid -= 1
            if isinstance(outcome, PublishResult):
                if outbox is not None:
                    outbox.services.replies_sent += 1
                if item.future is not None and not item.future.done():
                    item.future.set_result(None)
            else:
                assert isinstance(outcome, BotkitError)
                self._failed(room, item, outcome)
        if retry:
            self._retry_later(room)
        else:
            room.attempt = 0
        room.wake_putters()
        self._changed.set()
        self._schedule(room)

    def _retry_later(self, room: Room) -> None:
        now = self._clock()
        deadline = room.limits.deadline
        # Replies retried past the deadline are given up: oldest first, in order.
        while room.items and room.paid:
            first_try = room.items[0].first_try
            if first_try is None or now - first_try < deadline:
                break
            item = room.items.popleft()
            room.done += 1
            room.paid -= 1
            self._failed(room, item, ApiUnavailableError(
                f"publish: the server API kept failing for {deadline:g}s "
                "(limits.reply_deadline)"))
        if not room.items:
            room.attempt = 0
            return
        delay = self._backoff.delay(room.attempt, self._rng())
        room.attempt += 1
        self._later(room, now + delay)

    def _failed(self, room: Room, item: Item, error: BotkitError, *,
                report: bool = True) -> None:
        outbox = self._bots.get(room.bot)
        if outbox is not None:
            outbox.services.replies_failed += 1
        if item.future is not None:
            if not item.future.done():
                item.future.set_exception(
                    copy_error(error) if isinstance(error, ApiError) else error)
            return  # the caller waits for it: the error is theirs to report
        if not report:
            return
        code = getattr(error, "code", None)
        cause = type(error).__name__ + (f" code {code}" if code is not None else "")
        log.error("bot %s: a reply in room %s was not published (%s, key %s): %s", room.bot,
                  room.name, cause, item.key or "-", error)
        if outbox is not None and outbox.on_failed is not None and self._group is not None:
            failed = FailedReply(room.name, item.envelope, error, item.key)
            self._spawn(outbox.on_failed(failed), f"bot {room.bot} on_reply_failed")

    def _give_up_all(self) -> None:
        left = 0
        for room in self._rooms.values():
            while room.items:
                left += 1
                room.done += 1
                self._failed(room, room.items.popleft(), ApiUnavailableError(
                    "the runtime stopped before this reply could be published"), report=False)
            room.paid = room.in_flight = 0
            room.wake_all()
        if left:
            log.warning("%d replies were not published before the runtime stopped", left)
        self._changed.set()


def _temporary(outcome: PublishResult | ApiError) -> bool:
    if isinstance(outcome, ApiUnavailableError | ApiMalformedReplyError):
        return True
    return isinstance(outcome, ApiReplyError) and outcome.temporary
