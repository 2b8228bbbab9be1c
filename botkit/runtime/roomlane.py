"""What a room's lane does with each item: the runner's handler of one room.

A publication goes to the bot's core (unless its cursor says it was handled already, from
history say) and moves the room's cursor; subscribes, gaps, joins, leaves and presence
resyncs come through the same lane, in order with the publications, so the cursor always
knows the epoch of the publication it just handled. A room that overflowed (overflow.py) is
refilled from history once its lane has drained.

One small slotted object per room, not a pair of closures: an idle bot keeps one of these per
room for its whole life (bench/ S4).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from botkit.protocol.events import Joined, Left, StreamGap
from botkit.protocol.types import Publication
from botkit.realtime import SubscriptionStarted
from botkit.runtime.catchup import RoomCatchUp
from botkit.runtime.core import BotCore
from botkit.runtime.overflow import RoomFlow
from botkit.runtime.positions import Positions

__all__ = ["LaneItem", "Resync", "RoomHandler"]


class Resync:
    """Lane item: compare the room's presence with the server's after a (re)subscribe.
    ``done`` (the start's resyncs only) tells the runner the room's first look at presence is
    over: until then, who joins is taken for someone already there."""

    __slots__ = ("announce", "done")

    def __init__(self, announce: bool, done: asyncio.Future[None] | None = None) -> None:
        self.announce = announce
        self.done = done


LaneItem = Publication | Joined | Left | Resync | SubscriptionStarted | StreamGap


class RoomHandler:
    """Handles the items of one room's lane, one at a time (the lane sees to it)."""

    __slots__ = ("_catch_up", "_core", "_flow", "_holds", "_positions", "bot", "room")

    def __init__(self, bot: str, room: str, core: BotCore, positions: Positions,
                 flow: RoomFlow, holds: Callable[[str, str], bool] | None) -> None:
        self.bot = bot
        self.room = room
        self._core = core
        self._positions = positions
        self._flow = flow
        self._holds = holds
        self._catch_up = RoomCatchUp(core, room, positions)

    async def handle(self, item: LaneItem) -> None:
        holds, room, flow = self._holds, self.room, self._flow
        if holds is not None and not holds(self.bot, room):
            return  # the room's lease is gone (or going): its next owner handles this
        if isinstance(item, Publication):
            offset = item.offset
            if not offset:  # a room without history: no position to keep
                await self._core.handle_publication(room, item)
            else:
                cursor = flow.cursor
                if offset > cursor.offset:  # not already handled (from history, say)
                    await self._core.handle_publication(room, item,
                                                        offset <= cursor.replay_until)
                    cursor.offset = offset
                    positions = self._positions
                    if not positions.pending:
                        positions.touch()
            if flow.dropping and flow.drained():
                await self._refill()
            return
        # The rest is rare (subscribes, gaps, presence): each may move what is stored.
        core = self._core
        self._positions.touch()
        if isinstance(item, SubscriptionStarted):
            self._catch_up.started(item.position, item.recovering)
            await self._positions.store_first(room)
        elif isinstance(item, StreamGap):
            await self._catch_up.gap(item.lost_from, item.resumed_at)
        elif isinstance(item, Joined):
            await core.handle_join(room, item.info)
        elif isinstance(item, Left):
            await core.handle_leave(room, item.info)
        else:
            try:
                await core.resync(room, announce=item.announce)
            finally:
                if item.done is not None and not item.done.done():
                    item.done.set_result(None)
        if flow.dropping and flow.drained():
            await self._refill()

    async def _refill(self) -> None:
        # Live publications queue again from now on, behind this: whatever history returns
        # that is queued as well is handled once (the cursor skips it).
        flow = self._flow
        flow.dropping = False
        resync, flow.resync = flow.resync, False
        await self._catch_up.refill()
        if resync:
            await self._core.resync(self.room, announce=True)
