"""How many bots of a runtime start at once.

A bot's start (connect, subscribe every room, read each room's presence) makes transient
buffers: the handshake, the subscribe replies, the presence answers. Five hundred bots starting
together hold all of theirs at the same moment, and the allocator keeps that peak for the
life of the process: the RSS of 500 idle bots was ~37 KiB per bot with every start at once and
~31 KiB with 32 at a time (bench/ S4, ``python -m bench.heap --rss``). Starting in waves
costs the last bot a few waves of round trips, and spares the server the burst of handshakes
a fleet restart would otherwise send it at once.

A slot is given back when the bot is serving, when its start fails, or after ``hold_limit``
seconds, whichever comes first: a bot that cannot connect (its server is down, it backs off
and retries) never keeps the others waiting for longer than that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["DEFAULT_HOLD_LIMIT", "DEFAULT_SLOTS", "StartGate"]

DEFAULT_SLOTS = 32
DEFAULT_HOLD_LIMIT = 2.0


class StartGate:
    """At most ``slots`` bots in their start at a time, each for at most ``hold_limit`` s."""

    def __init__(self, slots: int = DEFAULT_SLOTS,
                 hold_limit: float = DEFAULT_HOLD_LIMIT) -> None:
        if slots < 1:
            raise ValueError("a start gate needs at least one slot")
        self.slots = slots
        self.hold_limit = hold_limit
        self._free = asyncio.Semaphore(slots)
        self.starting = 0
        """Slots taken now."""

    async def enter(self) -> Callable[[], None]:
        """Wait for a slot; the function that gives it back (calling it again does nothing).
        The slot also goes back by itself ``hold_limit`` seconds from now."""
        await self._free.acquire()
        self.starting += 1
        given_back = False

        def leave() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                timer.cancel()
                self.starting -= 1
                self._free.release()

        timer = asyncio.get_running_loop().call_later(self.hold_limit, leave)
        return leave
