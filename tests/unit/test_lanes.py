"""Lane: one bounded queue and one worker per (bot, room); order, backpressure, drain, stop."""

from __future__ import annotations

import asyncio
import random

import pytest

from botkit.runtime.lanes import Lane


async def test_items_are_handled_one_at_a_time_in_order() -> None:
    handled: list[int] = []
    running = 0
    overlap = False

    async def handle(item: int) -> None:
        nonlocal running, overlap
        running += 1
        overlap = overlap or running > 1
        await asyncio.sleep(random.uniform(0, 0.002))
        handled.append(item)
        running -= 1

    lane: Lane[int] = Lane("bot/lobby", handle, maxsize=5)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        for n in range(50):
            await lane.put(n)
        assert await lane.drain(5.0) is True
        assert lane.pending == 0
        await lane.stop()
    assert handled == list(range(50))
    assert not overlap


async def test_a_full_lane_makes_the_producer_wait() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(item: int) -> None:
        await gate.wait()
        handled.append(item)

    lane: Lane[int] = Lane("bot/busy", handle, maxsize=2)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        await lane.put(1)
        await asyncio.sleep(0.01)  # the worker takes 1 and waits at the gate
        await lane.put(2)
        await lane.put(3)
        assert lane.pending == 2
        blocked = asyncio.create_task(lane.put(4))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # bounded: the producer waits instead of queueing more
        assert lane.pending == 2
        gate.set()
        async with asyncio.timeout(2):
            await blocked
        assert await lane.drain(2.0) is True
        await lane.stop()
    assert handled == [1, 2, 3, 4]


async def test_drain_gives_up_after_its_timeout() -> None:
    gate = asyncio.Event()

    async def handle(item: int) -> None:
        await gate.wait()

    lane: Lane[int] = Lane("bot/slow", handle, maxsize=10)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        for n in range(3):
            await lane.put(n)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await lane.drain(0.1) is False
        assert 0.09 <= loop.time() - started < 1.0
        assert lane.pending >= 2
        gate.set()
        assert await lane.drain(2.0) is True
        await lane.stop()


async def test_stop_cancels_the_worker_and_leaves_the_rest() -> None:
    started = asyncio.Event()
    outcomes: list[str] = []

    async def handle(item: int) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            outcomes.append(f"cancelled {item}")
            raise
        outcomes.append(f"done {item}")

    lane: Lane[int] = Lane("bot/stop", handle, maxsize=10)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        await lane.put(1)
        await lane.put(2)
        await started.wait()
        async with asyncio.timeout(2):
            await lane.stop()
        await lane.stop()  # a second stop is harmless
        assert outcomes == ["cancelled 1"]
        assert lane.pending == 1  # nobody handles what was still queued
    # The TaskGroup ended normally: a stopped lane is not an error.


async def test_stop_before_start_and_drain_of_an_empty_lane() -> None:
    async def handle(item: int) -> None:
        raise AssertionError("never called")

    lane: Lane[int] = Lane("bot/idle", handle, maxsize=1)
    await lane.stop()
    assert await lane.drain(0.01) is True


async def test_stop_does_not_swallow_its_own_cancellation() -> None:
    async def handle(item: int) -> None:
        await asyncio.sleep(60)

    lane: Lane[int] = Lane("bot/cancel", handle, maxsize=1)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        await lane.put(1)
        await asyncio.sleep(0)
        stopper = asyncio.create_task(lane.stop())
        await asyncio.sleep(0)
        stopper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopper
        await lane.stop()


async def test_offer_queues_without_waiting_and_refuses_when_full() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(item: int) -> None:
        await gate.wait()
        handled.append(item)

    lane: Lane[int] = Lane("bot/offer", handle, maxsize=2)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        assert lane.offer(1) is True
        await asyncio.sleep(0.01)  # the worker takes 1 and waits at the gate
        assert lane.offer(2) is True
        assert lane.offer(3) is True
        assert lane.offer(4) is False  # full: nothing queued, the caller must put() and wait
        assert lane.pending == 2
        gate.set()
        assert await lane.drain(2.0) is True
        await lane.stop()
    assert handled == [1, 2, 3]


async def test_waiting_producers_go_in_turn_and_a_cancelled_one_passes_its_turn() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(item: int) -> None:
        await gate.wait()
        handled.append(item)

    lane: Lane[int] = Lane("bot/turns", handle, maxsize=1)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        await lane.put(1)
        await asyncio.sleep(0.01)  # the worker holds 1 at the gate
        await lane.put(2)  # fills the lane
        second = asyncio.create_task(lane.put(3))
        gone = asyncio.create_task(lane.put(99))
        third = asyncio.create_task(lane.put(4))
        await asyncio.sleep(0.01)
        gone.cancel()  # cancelled while waiting: never queued
        await asyncio.sleep(0.01)
        gate.set()
        async with asyncio.timeout(2):
            await asyncio.gather(second, third)
        assert await lane.drain(2.0) is True
        await lane.stop()
    assert gone.cancelled()
    assert handled == [1, 2, 3, 4]


async def test_a_producer_cancelled_just_as_room_came_hands_the_room_on() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(item: int) -> None:
        await gate.wait()
        handled.append(item)

    lane: Lane[int] = Lane("bot/handover", handle, maxsize=1)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        await lane.put(1)
        await asyncio.sleep(0.01)
        await lane.put(2)
        first = asyncio.create_task(lane.put(3))
        second = asyncio.create_task(lane.put(4))
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.sleep(0)  # the worker takes 2 and wakes `first`...
        first.cancel()  # ...which is cancelled before it runs: `second` gets the room
        async with asyncio.timeout(2):
            await second
        assert await lane.drain(2.0) is True
        await lane.stop()
    assert handled == [1, 2, 4]


async def test_push_queues_a_control_item_behind_a_full_lane_without_waiting() -> None:
    gate = asyncio.Event()
    handled: list[int] = []

    async def handle(item: int) -> None:
        await gate.wait()
        handled.append(item)

    lane: Lane[int] = Lane("bot/lobby", handle, maxsize=2)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        for n in range(3):  # one taken by the worker, two queued: full
            await lane.put(n)
        assert not lane.offer(99)
        lane.push(3)  # no await: the reader must never wait for one room
        assert lane.pending == 3
        gate.set()
        assert await lane.drain(5.0) is True
        await lane.stop()
    assert handled == [0, 1, 2, 3]


async def test_clear_drops_what_is_queued_lets_the_current_item_finish_and_frees_producers(
        ) -> None:
    # A room handed to another replica (issue 12): its queued envelopes are the next owner's.
    handled: list[int] = []
    release = asyncio.Event()

    async def handle(item: int) -> None:
        if item == 0:
            await release.wait()
        handled.append(item)

    lane: Lane[int] = Lane("bot/lobby", handle, maxsize=2)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        await lane.put(0)
        await asyncio.sleep(0)  # the worker takes item 0 and waits in it
        await lane.put(1)
        await lane.put(2)
        blocked = asyncio.ensure_future(lane.put(3))  # full: waits for room
        await asyncio.sleep(0)
        assert not blocked.done()
        assert lane.clear() == 2
        async with asyncio.timeout(1):
            await blocked  # room again
        release.set()
        assert await lane.drain(1.0)
        await lane.stop()
    assert handled == [0, 3]


async def test_an_idle_lane_holds_no_worker_and_the_next_item_starts_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Hundreds of idle rooms must not hold a task each (bench/ S4): the worker ends once the
    # lane has been empty for LINGER to 2 x LINGER, and the next item starts a new one.
    from botkit.runtime import lanes

    monkeypatch.setattr(lanes, "LINGER", 0.02)
    handled: list[int] = []

    async def handle(item: int) -> None:
        handled.append(item)

    lane: Lane[int] = Lane("bot/idle", handle, maxsize=5)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        assert not lane.working  # nothing queued yet: no worker
        lane.offer(1)
        assert lane.working
        assert await lane.drain(1.0)
        worker = lane._worker
        assert worker is not None
        await asyncio.wait([worker], timeout=2)  # it ends by itself
        assert worker.done()
        assert not lane.working
        assert lane._items == ()  # and its deque went with it
        assert lane._timer is None
        lane.push(2)
        await lane.put(3)
        assert await lane.drain(1.0)
        assert lane.working
        await lane.stop()
        assert not lane.working
        lane.offer(4)  # stopped: no new worker; the item stays queued
        assert not lane.working
        assert lane.pending == 1
    assert handled == [1, 2, 3]


async def test_a_busy_lane_keeps_one_worker_for_all_its_items(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A firehose must not make a task per message, nor lose the worker between messages that
    # come faster than LINGER.
    from botkit.runtime import lanes

    monkeypatch.setattr(lanes, "LINGER", 0.05)
    handled: list[int] = []
    workers: set[asyncio.Task[None] | None] = set()

    async def handle(item: int) -> None:
        workers.add(asyncio.current_task())
        handled.append(item)

    lane: Lane[int] = Lane("bot/busy", handle, maxsize=100)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        for n in range(200):
            lane.offer(n)
            if n % 10 == 0:
                await asyncio.sleep(0.005)  # the lane empties between bursts, for < LINGER
        assert await lane.drain(2.0)
        await lane.stop()
    assert handled == list(range(200))
    assert len(workers) == 1


async def test_items_queued_before_start_are_handled_once_started() -> None:
    handled: list[int] = []

    async def handle(item: int) -> None:
        handled.append(item)

    lane: Lane[int] = Lane("bot/early", handle, maxsize=5)
    lane.offer(1)
    lane.push(2)
    assert not lane.working
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        assert await lane.drain(1.0)
        await lane.stop()
    assert handled == [1, 2]


async def test_a_worker_that_had_several_bursts_lingers_longer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A room that talks every second or two must not start a task per message (bench/ S13):
    # after more than two bursts the worker waits BUSY_LOOKS looks before it ends.
    from botkit.runtime import lanes

    monkeypatch.setattr(lanes, "LINGER", 0.02)
    monkeypatch.setattr(lanes, "BUSY_LOOKS", 50)  # about a second
    handled: list[int] = []

    async def handle(item: int) -> None:
        handled.append(item)

    lane: Lane[int] = Lane("bot/talks", handle, maxsize=5)
    async with asyncio.TaskGroup() as group:
        lane.start(group)
        for n in range(3):  # three bursts, each handled before the next comes
            lane.offer(n)
            assert await lane.drain(1.0)
            await asyncio.sleep(0)
        worker = lane._worker
        assert worker is not None
        await asyncio.sleep(0.15)  # several looks: a worker of one or two bursts had ended
        assert lane._worker is worker
        await asyncio.wait([worker], timeout=5)  # it does end, about a second later
        assert worker.done()
        assert not lane.working
        await lane.stop()
    assert handled == [0, 1, 2]
