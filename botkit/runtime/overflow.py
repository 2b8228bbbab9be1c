"""One room's intake from the socket: rooms never wait for each other.

A bot's rooms share one connection and so one reader. If a room whose lane is full made the
reader wait, every other room of the bot would wait behind it (5,000 commands in one room held a
``/ping`` in another for seconds). Instead, while a room's lane is full, its publications are
taken off the socket and dropped (counted in ``BotStats.overflowed``): the room's stream keeps
them. Once the lane has handled everything queued before the first dropped one, its worker reads
the rest back from the room's history (catchup.py, the same paging as after a restart) before
taking live publications again, so each is still handled once and in order. Joins and leaves
dropped meanwhile are made up by a presence resync.

A room without history (no stream positions) has nothing to read back, and a bot with one room
has no other room to protect (and its firehose is best read once, with backpressure): there a
full lane makes the reader wait, as before.
"""

from __future__ import annotations

import logging
from typing import Any

from botkit.protocol.types import Publication
from botkit.runtime.core import BotStats
from botkit.runtime.lanes import Lane
from botkit.runtime.positions import RoomCursor

__all__ = ["RoomFlow"]

log = logging.getLogger("botkit.runtime")


class RoomFlow:
    """Where one room's events go: its lane, or (while it is full) back to the stream."""

    __slots__ = ("cursor", "dropping", "isolate", "lane", "name", "resync", "stats")

    lane: Lane[Any]
    """Set by the runner once made (the lane's handler needs this flow)."""

    def __init__(self, name: str, cursor: RoomCursor, stats: BotStats, *,
                 isolate: bool = True) -> None:
        self.name = name
        self.isolate = isolate
        """Whether the room may overflow to history (the bot has other rooms to protect)."""
        self.cursor = cursor
        self.stats = stats
        self.dropping = False
        """The lane overflowed: publications are read back from history once it has drained."""
        self.resync = False
        """A join or leave was dropped: presence is compared with the server's after."""

    def offer(self, event: Publication | Any) -> bool:
        """Take a publication, join or leave without waiting: True when it is queued, or dropped
        to be read back later; False when the caller must wait for room (no history)."""
        if self.dropping:
            return self._drop(event)
        if self.lane.offer(event):
            return True
        if self.cursor.epoch is None or not self.isolate:
            return False
        self.dropping = True
        log.info("%s: lane full; the room's next envelopes will be read from its history once "
                 "it has caught up (other rooms go on)", self.name)
        return self._drop(event)

    def _drop(self, event: Publication | Any) -> bool:
        if type(event) is Publication:
            self.stats.overflowed += 1
        else:
            self.resync = True
        return True

    def drained(self) -> bool:
        """Whether the lane's worker should read the dropped envelopes back now: it has just
        handled the last one queued before them."""
        return self.dropping and not self.lane.pending
