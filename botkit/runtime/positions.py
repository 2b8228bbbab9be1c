"""Durable stream positions: where each (bot, room) stood when the bot stopped.

Each room's lane keeps a :class:`RoomCursor`: the stream's epoch and the offset of the last
publication whose handling finished (an int written after each handling: nothing allocated and
nothing awaited per message). :class:`Positions` writes the cursors that moved, with the users
present in each room, to the bot's state store at most once a second and once more at stop, after
the lanes drained; the SQLite backend does the writing on its own thread. An idle bot costs no
task and no timer: the first move a lane reports (:meth:`Positions.touch`, one flag test per
message) sets a timer for the second; when it fires a writer task writes everything that moved
in it and ends (setting the next timer if more moved meanwhile). A bot that moves now and then
holds a timer, not a sleeping task, between writes.

At the next start each room is subscribed from its stored position, so what was published
meanwhile is handled first (see catchup.py). A crash replays at most the last unflushed second;
the server drops the replies to it as repeats (same idempotency keys), but handlers run again.

The rows live in the store's ``botkit.positions`` namespace, one key per bot and room (a bot's
own ``ctx.state`` namespace is its name, which cannot contain a dot).

Replies leave through the outboxes after their handler returned (runtime/outbox.py), so a row is
written only once the replies made before it are out: each flush takes a checkpoint (the row and
the room's count of replies put so far) and writes the newest checkpoint whose replies are all
gone. A crash then never skips an envelope whose replies were still queued; it is handled
again, and its replies that did go out are absorbed by their keys.

Replicas (``cluster:``): the store is Redis, shared, and a room's row is written by the replica
holding the room's lease with that lease's fencing token (:attr:`Positions.fence`, a function of
the room: the token, or None to write unfenced). The store refuses a write carrying a lower
token than one already written, so a replica that lost the lease (paused, cut off) can never
move the position back; such a refusal is logged once, and the room is not written again by
this replica until it holds a newer token.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botkit.errors import BotkitError
from botkit.protocol.types import StreamPosition
from botkit.runtime.presence import RoomPresence
from botkit.state.base import FencedStateStore
from botkit.state.store import StateStore

__all__ = ["FLUSH_INTERVAL", "NAMESPACE", "ROOMS_PER_TURN", "FenceProvider", "Positions",
           "Progress", "RoomCursor", "Stored"]

FenceProvider = Callable[[str], int | None]
"""A room's current fencing token (the lease's), or None to write without one."""
Progress = Callable[[str], tuple[int, int]]
"""A room's reply outbox: (replies ever put, replies ever gone); see runtime/outbox.py."""

_MAX_CHECKPOINTS = 64
"""Rows kept per room while its replies are out (one a flush): beyond, the newest is replaced."""
ROOMS_PER_TURN = 32
"""Rooms a flush looks at before it lets the loop run others: with a store whose writes never
yield (the memory backend) a bot in 167 busy rooms held the loop 1.3 ms, up
to 9 ms, once a second (bench/ S13's slowest replies waited on it); 32 rows take ~0.25 ms."""

log = logging.getLogger("botkit.runtime")

NAMESPACE = "botkit.positions"
FLUSH_INTERVAL = 1.0
"""Seconds between two writes of the positions that moved: what a crash may replay."""


@dataclass(slots=True)
class RoomCursor:
    """Where one room's lane stands. Only the lane's worker changes it, so it always names
    the epoch of the publication just handled."""

    epoch: str | None = None
    """None until the stream's epoch is known (a room without history never has one)."""
    offset: int = 0
    """The offset of the last publication handled (or the top of the stream at subscribe)."""
    replay_until: int = 0
    """Publications up to this offset were published before the room was (re)subscribed."""

    def position(self) -> StreamPosition | None:
        return StreamPosition(self.offset, self.epoch) if self.epoch is not None else None


@dataclass(frozen=True, slots=True)
class Stored:
    """A room's row, as read at start."""

    position: StreamPosition | None
    present: frozenset[str] | None
    """Users present when the bot last stopped; None when never stored."""


class Positions:
    """One bot's cursors and their rows in the state store."""

    __slots__ = ("_bot", "_checkpoints", "_closed", "_failing", "_fenced_out", "_presence",
                 "_saved", "_store", "_timer", "_writer", "cursors", "fence", "owned",
                 "pending", "progress")

    def __init__(self, store: StateStore | None, bot: str, rooms: list[str],
                 presence: Mapping[str, RoomPresence], *,
                 fence: FenceProvider | None = None) -> None:
        self._store = store
        self.fence = fence
        """Each room's fencing token, for a store that takes one (see the module's docstring);
        may be set after construction."""
        self._fenced_out: dict[str, int] = {}  # room -> the token a write was refused with
        self._bot = bot
        self._presence = presence
        self.cursors = {room: RoomCursor() for room in rooms}
        self._saved: dict[str, Any] = {}
        self._failing = False
        self.pending = False
        """A cursor or the presence moved since the last write was scheduled (lanes test it
        before calling :meth:`touch`, so a busy lane pays one attribute read per message)."""
        self._writer: asyncio.Task[None] | None = None  # owned here: aclose() ends it
        self._timer: asyncio.TimerHandle | None = None  # the next write is due (aclose ends it)
        self._closed = False
        self.owned: set[str] | None = None
        self.progress: Progress | None = None
        """Each room's reply outbox progress (None: replies are confirmed before the cursor
        moves, as in the harness)."""
        self._checkpoints: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        """With replicas, the rooms whose lease this replica holds: only their rows are
        written (None: every room, a single process)."""

    def touch(self) -> None:
        """Something moved: have it written within :data:`FLUSH_INTERVAL`."""
        self.pending = True
        if self._writer is None and self._timer is None and not self._closed:
            # What moves within the second: one write.
            self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._due)

    def _due(self) -> None:
        self._timer = None
        if not self._closed:
            self._writer = asyncio.get_running_loop().create_task(
                self._write_due(), name=f"positions {self._bot}")

    async def _write_due(self) -> None:
        try:
            self.pending = False  # before the write: a move during it means another
            await self.flush()
        finally:
            self._writer = None
        if self.pending:
            self.touch()

    async def aclose(self) -> None:
        """Stop the writer and write what is left (call it once the lanes have stopped)."""
        self._closed = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        writer = self._writer
        if writer is not None:
            writer.cancel()
            await asyncio.wait([writer])
        await self.flush()

    async def store_first(self, room: str) -> None:
        """Write at once when ``room`` has never been stored: a crash within the first second
        would otherwise leave no position, and the next run would start from the live stream,
        losing what was sent while it was down."""
        if room not in self._saved:
            # This room only: every room's first subscribe writing every room made a bot's
            # start quadratic in its rooms (2,000 rooms: 4 million rows compared, 3 s).
            await self.flush(only=room)

    def _key(self, room: str) -> str:
        return f"{self._bot}:{room}"[:256]

    async def load(self) -> dict[str, Stored]:
        """Every room's stored row (an empty one where none is); the cursors start there."""
        rows: dict[str, Stored] = {}
        for room, cursor in self.cursors.items():
            value = (await self._store.get(NAMESPACE, self._key(room))
                     if self._store is not None else None)
            stored = _parse(value)
            if stored.position is not None:
                cursor.epoch, cursor.offset = stored.position.epoch, stored.position.offset
                self._saved[room] = value
            rows[room] = stored
        return rows

    async def take(self, room: str) -> Stored:
        """With replicas: this replica now holds ``room``'s lease. Its row is read again (the
        last owner wrote it) and its cursor starts there; its rows are written from now on."""
        cursor = self.cursors[room]
        self._checkpoints.pop(room, None)  # an earlier holding's: never written now
        value = (await self._store.get(NAMESPACE, self._key(room))
                 if self._store is not None else None)
        stored = _parse(value)
        cursor.replay_until = 0
        if stored.position is not None:
            cursor.epoch, cursor.offset = stored.position.epoch, stored.position.offset
            self._saved[room] = value
        else:
            cursor.epoch, cursor.offset = None, 0
            self._saved.pop(room, None)
        if self.owned is not None:
            self.owned.add(room)
        return stored

    def release(self, room: str) -> None:
        """With replicas: ``room`` went to another replica; its row is no longer ours to
        write."""
        if self.owned is not None:
            self.owned.discard(room)
        self._saved.pop(room, None)
        self._checkpoints.pop(room, None)

    async def flush_room(self, room: str) -> None:
        """Write ``room``'s row now if it moved (a hand-over, before the lease goes back)."""
        await self.flush(only=room)

    def _row(self, room: str, cursor: RoomCursor) -> dict[str, Any] | None:
        if cursor.epoch is None:
            return None
        return {"epoch": cursor.epoch, "offset": cursor.offset,
                "present": sorted(self._presence[room].clients)}

    def _settled(self, room: str, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """The newest row of ``room`` whose replies are all out (None: none yet)."""
        progress = self.progress
        if progress is None or row is None:
            return row
        put, gone = progress(room)
        checkpoints = self._checkpoints.setdefault(room, deque())
        if checkpoints and checkpoints[-1][1] == row:
            pass
        elif len(checkpoints) >= _MAX_CHECKPOINTS:
            checkpoints[-1] = (put, row)
        else:
            checkpoints.append((put, row))
        settled = None
        while checkpoints and checkpoints[0][0] <= gone:
            settled = checkpoints.popleft()[1]
        if not checkpoints:
            del self._checkpoints[room]  # an empty deque is ~760 bytes a room
        if checkpoints:
            self.touch()  # the rest once its replies are out
        return settled

    async def flush(self, only: str | None = None) -> None:
        """Write the rows that changed since the last write (a failure is logged, and the
        rows are tried again at the next flush)."""
        if self._store is None:
            return
        owned = self.owned
        rooms = self.cursors if only is None else [only]
        try:
            # Each room's row, its checkpoint and its write happen in one turn; the loop runs
            # others only between rooms, so a row still never gets ahead of its replies, and
            # the flush at stop (after the lanes stopped) still writes every room.
            for count, room in enumerate(rooms, 1):
                if count % ROOMS_PER_TURN == 0:
                    await asyncio.sleep(0)
                if owned is not None and room not in owned:
                    continue
                row = self._settled(room, self._row(room, self.cursors[room]))
                if row is None or row == self._saved.get(room):
                    continue
                if not await self._write(room, row):
                    continue
                self._saved[room] = row
        except BotkitError as exc:
            if not self._failing:
                log.error("bot %s: cannot store its rooms' positions: %s (a restart would "
                          "replay or miss what was handled since)", self._bot, exc)
            self._failing = True
            return
        if self._failing:
            log.info("bot %s: storing its rooms' positions again", self._bot)
        self._failing = False

    async def _write(self, room: str, row: dict[str, Any]) -> bool:
        """Write ``room``'s row, fenced when the store and the room have a token; False if
        the store refused it (a newer lease holder wrote)."""
        assert self._store is not None
        fence = self.fence(room) if self.fence is not None else None
        if fence is None or not isinstance(self._store, FencedStateStore):
            await self._store.set(NAMESPACE, self._key(room), row)
            return True
        if self._fenced_out.get(room) == fence:
            return False  # refused with this token already: it will not be taken now
        if await self._store.set_fenced(NAMESPACE, self._key(room), row, fence):
            self._fenced_out.pop(room, None)
            return True
        self._fenced_out[room] = fence
        log.warning("bot %s: room %s's position was not stored: another replica holds a newer "
                    "lease of the room (fencing token %d is stale)", self._bot, room, fence)
        return False


def _parse(value: Any) -> Stored:
    # Written by flush(); anything else (a hand-edited row) counts as no row at all.
    if not isinstance(value, dict):
        return Stored(None, None)
    epoch, offset, present = value.get("epoch"), value.get("offset"), value.get("present")
    position = (StreamPosition(offset, epoch)
                if isinstance(epoch, str) and type(offset) is int and offset >= 0 else None)
    users = (frozenset(user for user in present if isinstance(user, str))
             if isinstance(present, list) else None)
    return Stored(position, users)
