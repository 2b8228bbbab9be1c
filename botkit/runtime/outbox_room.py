"""One (bot, room) outbox of runtime/outbox.py: its replies in order, its token bucket, and the
producers waiting for room. Plain data and arithmetic; the dispatcher drives it."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from botkit.envelope import Envelope

__all__ = ["DROP_LOG_EVERY", "Item", "Room", "RoomLimits"]

DROP_LOG_EVERY = 10.0
"""Seconds between two warnings about a room's dropped replies (each drop is counted)."""


@dataclass(frozen=True, slots=True)
class RoomLimits:
    """One bot's outbox settings (its ``limits:``): ``rate`` replies a second (None: no limit)
    with bursts of ``burst``, ``size`` replies held per room, retries for ``deadline`` s."""

    rate: float | None
    burst: int
    size: int
    deadline: float


class Item:
    """A reply: its encoded publish params (the idempotency key inside, for every resend)."""

    __slots__ = ("envelope", "essential", "first_try", "future", "key", "params")

    def __init__(self, params: bytes, envelope: Envelope, key: str | None, essential: bool,
                 future: asyncio.Future[None] | None) -> None:
        self.params = params
        self.envelope = envelope
        self.key = key
        self.essential = essential
        self.future = future
        """The ``wait=True`` caller's; None when nobody waits."""
        self.first_try: float | None = None
        """When it was first sent: its retries end ``deadline`` seconds later."""


class Room:
    __slots__ = ("attempt", "bot", "channel", "done", "dropped_log", "in_flight", "items",
                 "limits", "name", "paid", "put", "putters", "queued", "stamp", "timer",
                 "tokens")

    def __init__(self, bot: str, name: str, channel: str, limits: RoomLimits,
                 now: float) -> None:
        self.bot = bot
        self.name = name
        self.channel = channel
        self.limits = limits
        self.items: deque[Item] = deque()
        self.in_flight = 0  # items at the head of ``items`` in the request under way
        self.paid = 0  # items at the head already sent once (a retry costs no token)
        self.attempt = 0  # failed attempts of the head in a row
        self.tokens = float(limits.burst)
        self.stamp = now
        self.queued = False  # in the dispatcher's ready queue
        self.timer: float | None = None  # waiting for its rate limit or its retry
        self.putters: deque[asyncio.Future[None]] = deque()
        self.dropped_log = -DROP_LOG_EVERY
        self.put = 0  # items ever queued here
        self.done = 0  # items ever gone (published, failed or dropped): see progress()

    def take(self, now: float, space: int) -> int | float:
        """Mark the head items for the next request (at most ``space``): how many; or, when
        the rate allows none now, the time it will allow one (a float)."""
        count = min(len(self.items), space)
        rate = self.limits.rate
        if rate is not None:
            self.tokens = min(float(self.limits.burst),
                              self.tokens + (now - self.stamp) * rate)
            self.stamp = now
            count = min(count, self.paid + int(self.tokens))
            if count <= 0:
                return now + (1.0 - self.tokens) / rate
            self.tokens -= max(0, count - self.paid)
        for index in range(count):
            item = self.items[index]
            if item.first_try is None:
                item.first_try = now
        self.paid = max(self.paid, count)
        self.in_flight = count
        return count

    def drop_oldest(self) -> Item | None:
        """Take out the oldest non-essential reply never sent, if there is one."""
        for index in range(self.paid, len(self.items)):
            item = self.items[index]
            if not item.essential:
                del self.items[index]
                self.done += 1
                return item
        return None

    async def wait_for_room(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self.putters.append(waiter)
        try:
            await waiter
        except BaseException:
            waiter.cancel()
            if len(self.items) < self.limits.size:
                self._wake_one()  # the room we were woken for goes to the next one
            raise

    def wake_putters(self) -> None:
        """Wake as many waiting producers as there is room for."""
        for _ in range(self.limits.size - len(self.items)):
            if not self.putters:
                return
            self._wake_one()

    def wake_all(self) -> None:
        """Wake every waiting producer (the outboxes close: they find out)."""
        while self.putters:
            self._wake_one()

    def _wake_one(self) -> None:
        waiters = self.putters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
