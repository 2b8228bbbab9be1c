"""A stored position never runs ahead of the replies still in the room's outbox: each flush
takes a checkpoint, and the newest checkpoint whose replies are all out is written."""

from __future__ import annotations

from botkit.runtime.positions import NAMESPACE, Positions
from botkit.runtime.presence import RoomPresence
from botkit.state import MemoryStateStore


async def test_a_position_waits_for_the_replies_put_before_it() -> None:
    async with MemoryStateStore() as store:
        progress = {"put": 0, "gone": 0}
        positions = Positions(store, "b", ["lobby"], {"lobby": RoomPresence()})
        positions.progress = lambda room: (progress["put"], progress["gone"])
        await positions.load()
        cursor = positions.cursors["lobby"]

        async def stored() -> int | None:
            row = await store.get(NAMESPACE, "b:lobby")
            return row["offset"] if row is not None else None

        cursor.epoch, cursor.offset = "e", 5
        progress["put"] = 3  # offsets up to 5 made 3 replies; none is out
        await positions.flush()
        assert await stored() is None
        cursor.offset = 9
        progress["put"], progress["gone"] = 7, 3  # the first 3 are out: offset 5 is safe
        await positions.flush()
        assert await stored() == 5
        progress["gone"] = 7
        await positions.flush()
        assert await stored() == 9
        await positions.aclose()


async def test_without_an_outbox_the_cursor_is_written_as_it_is() -> None:
    async with MemoryStateStore() as store:
        positions = Positions(store, "b", ["lobby"], {"lobby": RoomPresence()})
        await positions.load()
        cursor = positions.cursors["lobby"]
        cursor.epoch, cursor.offset = "e", 5
        await positions.flush()
        assert (await store.get(NAMESPACE, "b:lobby"))["offset"] == 5
