"""Catching a room up: from the position it stood at to the live stream, each envelope once.

A room is subscribed with recovery from its cursor (stored at the last stop, or where the
connection dropped). The server replays up to its recovery limit (Centrifugo's
``recovery_max_publication_limit``, 300 by default); beyond it, it answers ``recovered: false``
and the client reports a StreamGap. Then, when the epoch is still the same, the missed
publications are paged from the room's history through the server API, oldest first, before
anything live (the lane holds the live ones behind this work, and drops any offset already
handled). Only what history no longer holds, or a stream the server began again (a new epoch),
is a gap: one warning, ``BotStats.gaps``, the bot's ``on_gap`` hooks once, then live.

Everything here runs in the room's lane, in order with the room's publications: the cursor always
names the epoch of the publication just handled.
"""

from __future__ import annotations

import logging

from botkit.errors import ApiReplyError, BotkitError
from botkit.gap import Gap
from botkit.protocol.types import StreamPosition
from botkit.runtime.core import BotCore
from botkit.runtime.positions import Positions

__all__ = ["HISTORY_PAGE", "RoomCatchUp"]

log = logging.getLogger("botkit.runtime")

HISTORY_PAGE = 1000
"""Publications asked for per history call while catching up."""
_UNRECOVERABLE_POSITION = 112  # the server's answer to a position from another epoch


class RoomCatchUp:
    """One room's cursor moves that are not a publication: (re)subscribes and gaps."""

    __slots__ = ("_channel", "_core", "_positions", "cursor", "room")

    def __init__(self, core: BotCore, room: str, positions: Positions) -> None:
        self._core = core
        self._channel = core.channels[room]
        self._positions = positions
        self.room = room
        self.cursor = positions.cursors[room]

    def started(self, position: StreamPosition | None, recovering: bool) -> None:
        """The room was (re)subscribed; ``position`` is past what the server recovered."""
        cursor = self.cursor
        if position is None:  # a room without history: nothing to resume from, ever
            cursor.epoch, cursor.offset, cursor.replay_until = None, 0, 0
        elif recovering:
            # What the server recovered (up to here) was published while we were away. A
            # failed recovery is followed by a StreamGap, which moves the cursor itself.
            cursor.replay_until = position.offset
        else:
            cursor.epoch, cursor.offset = position.epoch, position.offset

    async def gap(self, lost_from: StreamPosition, resumed_at: StreamPosition | None) -> None:
        """The server could not recover from ``lost_from``: read what it can from history,
        report what it cannot, and carry on from ``resumed_at``."""
        cursor = self.cursor
        handled = cursor.position() if cursor.epoch == lost_from.epoch else None
        try:
            if resumed_at is None:
                await self._report(Gap(self.room, handled or lost_from, "no history", None))
            elif resumed_at.epoch != lost_from.epoch:
                await self._report(Gap(self.room, handled or lost_from, "new epoch",
                                       resumed_at))
            else:
                await self._page(lost_from, resumed_at)
        finally:
            if resumed_at is None:
                cursor.epoch, cursor.offset = None, 0
            else:
                cursor.epoch = resumed_at.epoch
                cursor.offset = max(cursor.offset, resumed_at.offset) if (
                    resumed_at.epoch == lost_from.epoch) else resumed_at.offset

    async def refill(self) -> None:
        """Handle what the room's live stream dropped while its lane was full: everything
        after the cursor, from history, up to the stream's top (see runner.py)."""
        cursor = self.cursor
        if cursor.epoch is not None:
            await self._page(StreamPosition(cursor.offset, cursor.epoch), None, replayed=False)

    async def _page(self, since: StreamPosition, until: StreamPosition | None, *,
                    replayed: bool = True) -> None:
        """Handle the publications after ``since`` from history, up to ``until`` (None: up to
        the top of the stream), reporting what history no longer holds."""
        core, cursor, epoch, positions = self._core, self.cursor, since.epoch, self._positions
        # The cursor is what was handled: behind ``since`` (the last delivered) when the room
        # overflowed meanwhile (overflow.py), and then the dropped ones are read back too.
        offset = cursor.offset if cursor.epoch == epoch else since.offset
        while until is None or offset < until.offset:
            limit = HISTORY_PAGE if until is None else min(HISTORY_PAGE, until.offset - offset)
            missing = None if until is None else until.offset - offset
            try:
                page = await core.services.api.history(
                    self._channel, since=StreamPosition(offset, epoch), limit=limit)
            except ApiReplyError as exc:
                reason = "new epoch" if exc.code == _UNRECOVERABLE_POSITION else "unavailable"
                await self._report(Gap(self.room, StreamPosition(offset, epoch), reason, until,
                                       missing), exc)
                return
            except BotkitError as exc:
                await self._report(Gap(self.room, StreamPosition(offset, epoch), "unavailable",
                                       until, missing), exc)
                return
            top = until.offset if until is not None else page.position.offset
            missed = [p for p in page.publications if offset < p.offset <= top]
            if not missed:
                if offset < top:  # history holds nothing past ``offset``, yet the stream does
                    await self._report(Gap(self.room, StreamPosition(offset, epoch), "expired",
                                           until or page.position, top - offset))
                return
            first = missed[0].offset
            if first > offset + 1:
                await self._report(Gap(self.room, StreamPosition(offset, epoch), "trimmed",
                                       until or page.position, first - offset - 1))
            for publication in missed:
                await core.handle_publication(self.room, publication, replayed)
                cursor.epoch, cursor.offset = epoch, publication.offset
                if not positions.pending:
                    positions.touch()  # a crash mid-way resumes from here, not from the start
            offset = missed[-1].offset

    async def _report(self, gap: Gap, error: BaseException | None = None) -> None:
        core = self._core
        core.stats.gaps += 1
        missed = f"{gap.missed} message(s)" if gap.missed is not None else "an unknown number " \
                                                                            "of messages"
        log.warning("bot %s: room %s: %s after offset %d (epoch %s) may be lost (%s%s); "
                    "carrying on from %s", core.name, gap.room, missed, gap.since.offset,
                    gap.since.epoch or "-", gap.reason, f": {error}" if error else "",
                    f"offset {gap.resumed_at.offset}" if gap.resumed_at else "the live stream")
        await core.run_gap_hooks(gap)
