"""Handing received events to the consumer, in order, with a bounded read-ahead.

Events go to ``on_event`` when given, else into a bounded queue read with :meth:`next_event`.
``on_event`` is awaited by the connection's reader, which is how backpressure reaches the
socket; it must never wait for a reply of this same connection, since only the reader can
deliver that reply.

With ``offer_event`` as well (the runtime gives one), the reader never waits for a busy consumer
while less than ``read_ahead_bytes`` is held: ``offer_event`` takes an event at once or
declines, and a declined event (and every one after it, in order) waits in the read-ahead,
which a feeder task hands to ``on_event``. Every held item counts against the budget: by the
size of the message it came in (shared among that message's events), and never less than
:data:`MIN_EVENT_COST`, so joins, leaves, gaps and state changes cannot fill memory for free.
Past the budget the reader waits, and the socket pushes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable

from botkit.errors import RealtimeError
from botkit.realtime.events import ClientEvent

__all__ = ["MIN_EVENT_COST", "Delivery", "EventOffer", "EventSink"]

log = logging.getLogger("botkit.realtime")

EventSink = Callable[[ClientEvent], Awaitable[None]]
EventOffer = Callable[[ClientEvent], bool]

MIN_EVENT_COST = 128
"""Bytes an event counts for at least: about what a small event and its place in the queue
take in memory, whatever the size of the frame it came in."""


class Delivery:
    """The consumer's side of one realtime client (shared by its successive connections)."""

    def __init__(self, *, on_event: EventSink | None, offer_event: EventOffer | None,
                 queue_size: int, read_ahead_bytes: int, drops: Counter[str]) -> None:
        self.queue: asyncio.Queue[ClientEvent] | None = None
        if on_event is None:
            self.queue = asyncio.Queue(queue_size)
            on_event = self.queue.put
        self._sink = on_event
        self._offer = offer_event if self.queue is None else None
        self._budget = read_ahead_bytes
        self._drops = drops
        # A deque is made when something is first held, and let go once the read-ahead is
        # empty: an empty deque takes ~630 bytes, and most bots' read-ahead is empty.
        # Events and their costs side by side, not as pairs: a pair per held event was one
        # more object for the GC to track while a busy room's events wait (bench/ S1).
        self._held: deque[ClientEvent] | tuple[()] = ()
        self._costs: deque[int] | tuple[()] = ()
        self._held_bytes = 0
        self._feeder: asyncio.Task[None] | None = None
        self._room: asyncio.Future[None] | None = None

    @property
    def held_bytes(self) -> int:
        """What the read-ahead holds, as counted against ``read_ahead_bytes``."""
        return self._held_bytes

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def largest_held(self) -> int:
        return max(self._costs, default=0)

    @property
    def feeding(self) -> bool:
        return self._feeder is not None

    async def next_event(self, timeout: float | None = None) -> ClientEvent:
        if self.queue is None:
            raise RealtimeError("events go to on_event; there is no queue to read")
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def emit(self, event: ClientEvent, cost: int = MIN_EVENT_COST) -> None:
        """Hand ``event`` over (it counts ``cost`` bytes if it has to wait in the read-ahead)."""
        if not self.offer_now(event):
            await self.emit_declined(event, cost)

    def offer_now(self, event: ClientEvent) -> bool:
        """The reader's fast path, without a coroutine: True when the consumer took ``event``
        at once (or failed on it, which is counted); False when it must be awaited."""
        offer = self._offer
        if offer is None or self._held:
            return False
        try:
            return offer(event)
        except Exception:
            self._sink_failed(event)
            return True

    async def emit_declined(self, event: ClientEvent, cost: int) -> None:
        """What :meth:`offer_now` did not take: awaited by on_event, or held in order."""
        if self._offer is None:
            try:
                await self._sink(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._sink_failed(event)
            return
        await self._hold(event, cost)

    @property
    def can_hold(self) -> bool:
        """Declined events wait in the read-ahead (``offer_event`` was given)."""
        return self._offer is not None

    def hold_now(self, event: ClientEvent, cost: int) -> bool:
        """The reader's path for what :meth:`offer_now` declined, without a coroutine (only when
        :attr:`can_hold`): ``event`` joins the read-ahead, in order. False when the read-ahead
        is now over budget: the reader must await :meth:`wait_room` before reading on."""
        held, costs = self._held, self._costs
        if not isinstance(held, deque) or not isinstance(costs, deque):
            held, costs = self._held, self._costs = deque(), deque()
        if cost < MIN_EVENT_COST:
            cost = MIN_EVENT_COST
        held.append(event)
        costs.append(cost)
        self._held_bytes += cost
        if self._feeder is None:
            # Owned here: aclose() waits for it (bounded) and cancels what is left.
            self._feeder = asyncio.create_task(self._feed(), name="realtime read-ahead")
        return self._held_bytes <= self._budget

    async def _hold(self, event: ClientEvent, cost: int) -> None:
        """Put ``event`` in the read-ahead; wait only when the read-ahead is over budget."""
        if not self.hold_now(event, cost):
            await self.wait_room()

    async def wait_room(self) -> None:
        """Wait until the read-ahead is within budget again."""
        while self._held_bytes > self._budget and self._held:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    async def _feed(self) -> None:
        """Hand the read-ahead to on_event, in order, until it is empty."""
        held, costs, offer = self._held, self._costs, self._offer
        assert isinstance(held, deque)  # made before this task was started
        assert isinstance(costs, deque)
        try:
            while held:
                event = held[0]
                try:
                    # offer first: what the consumer takes at once costs no coroutine.
                    if offer is None or not offer(event):
                        await self._sink(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self._sink_failed(event)
                held.popleft()
                self._held_bytes -= costs.popleft()
                room = self._room
                if room is not None and not room.done() and self._held_bytes <= self._budget:
                    room.set_result(None)
        finally:
            self._feeder = None
            if not held and self._held is held:
                self._held = self._costs = ()
            room = self._room
            if room is not None and not room.done():
                room.set_result(None)

    def _sink_failed(self, event: ClientEvent) -> None:
        # A consumer's bug must not kill the connection; it is logged and counted.
        log.exception("event handler failed on %s", type(event).__name__)
        self._drops["event handler error"] += 1

    async def aclose(self, flush_timeout: float) -> None:
        """Give what is held up to ``flush_timeout`` seconds to reach on_event, then drop it."""
        feeder = self._feeder
        if feeder is None:
            return
        await asyncio.wait([feeder], timeout=flush_timeout)
        if not feeder.done():
            log.warning("closing with %d received event(s) not handed over", len(self._held))
            feeder.cancel()
            await asyncio.wait([feeder])
        self._held = self._costs = ()
        self._held_bytes = 0
