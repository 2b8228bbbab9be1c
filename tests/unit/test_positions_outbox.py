"""A stored position never runs ahead of the replies still in the room's outbox: each flush
takes a checkpoint, and the newest checkpoint whose replies are all out is written."""

from __future__ import annotations

import asyncio

from botkit.runtime.positions import NAMESPACE, ROOMS_PER_TURN, Positions
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


async def test_a_flush_of_many_rooms_lets_the_loop_run_and_the_last_writes_them_all() -> None:
    rooms = [f"r{index}" for index in range(4 * ROOMS_PER_TURN + 5)]
    async with MemoryStateStore() as store:
        progress = dict.fromkeys(rooms, (0, 0))
        positions = Positions(store, "b", rooms, {room: RoomPresence() for room in rooms})
        positions.progress = progress.__getitem__
        await positions.load()
        for offset, room in enumerate(rooms, 1):
            positions.cursors[room].epoch, positions.cursors[room].offset = "e", offset
        turns = 0

        async def count_turns() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.get_running_loop().create_task(count_turns())
        await asyncio.sleep(0)
        turns = 0
        # Every room moved while a reply of r0 is still out: r0 must not be written.
        progress["r0"] = (1, 0)
        await positions.flush()
        counter.cancel()
        await asyncio.wait([counter])
        assert turns >= 4  # the other task ran between chunks of rooms
        assert await store.get(NAMESPACE, "b:r0") is None
        assert (await store.get(NAMESPACE, f"b:{rooms[-1]}"))["offset"] == len(rooms)
        # A room's reply goes out and others move meanwhile: the flush at stop writes them all.
        progress["r0"] = (1, 1)
        for room in rooms:
            positions.cursors[room].offset += 100
        await positions.aclose()
        for offset, room in enumerate(rooms, 1):
            assert (await store.get(NAMESPACE, f"b:{room}"))["offset"] == offset + 100
