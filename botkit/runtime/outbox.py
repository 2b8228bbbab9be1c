"""Per-room ordered outboxes: where a bot's replies wait for the server API, so that a handler
never waits for the server's confirmation and a busy room is answered at the server's pace.

``await ctx.reply()`` puts the reply in the outbox of its (bot, room) and returns. One
dispatcher task serves every outbox of a runtime (runtime/outbox_dispatch.py: order, sharing
of requests, isolation, flood control, failure); a room's replies and token bucket are
runtime/outbox_room.py. Here:

- **backpressure**: an outbox holds ``limits.outbox_size`` replies; when full, an essential
  reply waits for room (the handler, and so its lane, slows down), while a non-essential one
  (``essential=False``, ``typing``) makes room by dropping the room's oldest waiting
  non-essential reply (or is dropped itself), counted and logged;
- **stop**: each bot's runner drains its outboxes after its lanes (within the grace period) and
  gives up, counted and logged, what is still unsent; then the runtime closes the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from botkit.context import BotServices, FailedReply
from botkit.envelope import Envelope, envelope_to_dict
from botkit.errors import ApiUnavailableError, ReplyDroppedError
from botkit.runtime.outbox_dispatch import Dispatcher
from botkit.runtime.outbox_room import DROP_LOG_EVERY, Item, Room, RoomLimits

__all__ = ["BotOutbox", "Outboxes", "RoomLimits"]

log = logging.getLogger("botkit.runtime")


class BotOutbox:
    """One bot's view of the outboxes (``BotServices.outbox``): what ``ctx.send`` calls."""

    def __init__(self, outboxes: Outboxes, services: BotServices, limits: RoomLimits,
                 on_failed: Callable[[FailedReply], Coroutine[Any, Any, None]] | None,
                 ) -> None:
        self.outboxes = outboxes
        self.services = services
        self.limits = limits
        self.on_failed = on_failed

    async def put(self, room: str, channel: str, envelope: Envelope, key: str | None, *,
                  essential: bool, wait: bool) -> Awaitable[None] | None:
        return await self.outboxes.put(self, room, channel, envelope, key,
                                       essential=essential, wait=wait)


class Outboxes(Dispatcher):
    """Every outbox of a runtime and the one dispatcher (:meth:`run`, from ``Dispatcher``) that
    publishes them."""

    def for_bot(self, services: BotServices, limits: RoomLimits,
                on_failed: Callable[[FailedReply], Coroutine[Any, Any, None]] | None,
                ) -> BotOutbox:
        """The outboxes of bot ``services.name`` (again after a restart: its rooms' replies
        still queued are counted to the new run)."""
        outbox = self._bots[services.name] = BotOutbox(self, services, limits, on_failed)
        return outbox

    def pending(self, bot: str | None = None) -> int:
        """Replies queued or in flight (of ``bot``, or of every bot)."""
        return sum(len(room.items) for room in self._rooms.values()
                   if bot is None or room.bot == bot)

    def progress(self, bot: str, channel: str) -> tuple[int, int]:
        """(replies ever put, replies ever gone) of ``bot``'s outbox for ``channel``: once
        ``gone`` reaches a ``put`` read earlier, every reply put before that read is out (or
        given up). The positions use it so that a stored position never runs ahead of replies
        still queued (a crash would lose them: the envelopes would not be handled again)."""
        room = self._rooms.get((bot, channel))
        return (room.put, room.done) if room is not None else (0, 0)

    async def put(self, outbox: BotOutbox, room_id: str, channel: str, envelope: Envelope,
                  key: str | None, *, essential: bool,
                  wait: bool) -> asyncio.Future[None] | None:
        if self._closed:
            raise ApiUnavailableError("the runtime is stopping; this reply was not sent")
        bot = outbox.services.name
        room = self._rooms.get((bot, channel))
        if room is None:
            room = self._rooms[bot, channel] = Room(bot, room_id, channel, outbox.limits,
                                                    self._clock())
        room.limits = outbox.limits
        params = self._api.encode_publish(channel, envelope_to_dict(envelope),
                                          idempotency_key=key)
        future = asyncio.get_running_loop().create_future() if wait else None
        item = Item(params, envelope, key, essential, future)
        while len(room.items) >= room.limits.size:
            dropped = room.drop_oldest()
            if dropped is not None:
                self._dropped(room, outbox, dropped)
                break
            if not essential:
                self._dropped(room, outbox, item)
                return future
            await room.wait_for_room()
            if self._closed:
                raise ApiUnavailableError("the runtime is stopping; this reply was not sent")
        room.items.append(item)
        room.put += 1
        self._schedule(room)
        self._start_soon()
        return future

    def _dropped(self, room: Room, outbox: BotOutbox, item: Item) -> None:
        outbox.services.replies_dropped += 1
        if item.future is not None and not item.future.done():
            item.future.set_exception(ReplyDroppedError(
                f"room {room.name}'s outbox was full: this non-essential reply was dropped"))
        now = self._clock()
        if now - room.dropped_log >= DROP_LOG_EVERY:
            room.dropped_log = now
            log.warning("bot %s: room %s's outbox is full (%d replies): dropping its oldest "
                        "non-essential replies (%d dropped by this bot so far)", room.bot,
                        room.name, room.limits.size, outbox.services.replies_dropped)

    async def drain(self, bot: str, timeout: float) -> bool:
        """Wait until ``bot``'s outboxes are empty; False if ``timeout`` ran out first."""
        try:
            async with asyncio.timeout(timeout):
                while self.pending(bot):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def abandon(self, bot: str) -> int:
        """Give up ``bot``'s replies not yet sent (the end of the grace period); how many."""
        given_up = 0
        for room in list(self._rooms.values()):
            if room.bot != bot:
                continue
            while len(room.items) > room.in_flight:
                item = room.items.pop()
                room.done += 1
                given_up += 1
                self._failed(room, item, ApiUnavailableError(
                    "the bot stopped before this reply could be published"), report=False)
            room.paid = min(room.paid, len(room.items))
            room.wake_putters()
        self._changed.set()
        return given_up
