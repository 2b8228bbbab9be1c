"""The runtime's start gate: at most N bots in their start at once, none held up for long."""

from __future__ import annotations

import asyncio

import pytest

from botkit.runtime.startgate import StartGate


async def test_no_more_than_the_slots_start_at_once() -> None:
    gate = StartGate(slots=3, hold_limit=30.0)
    most = 0
    release = asyncio.Event()

    async def start() -> None:
        nonlocal most
        leave = await gate.enter()
        most = max(most, gate.starting)
        try:
            await release.wait()
        finally:
            leave()

    async with asyncio.timeout(5):
        async with asyncio.TaskGroup() as group:
            for _ in range(10):
                group.create_task(start())
            for _ in range(50):  # every start has had its turns
                await asyncio.sleep(0)
            assert gate.starting == 3  # the other seven wait
            release.set()
    assert most == 3
    assert gate.starting == 0


async def test_a_slot_comes_back_by_itself_after_the_hold_limit() -> None:
    gate = StartGate(slots=1, hold_limit=0.05)
    stuck = await gate.enter()  # a bot that never gets connected, never leaves
    async with asyncio.timeout(5):
        leave = await gate.enter()  # admitted once the stuck one's time is up
    assert gate.starting == 1
    leave()
    stuck()  # leaving late gives nothing back twice
    assert gate.starting == 0
    async with asyncio.timeout(5):
        (await gate.enter())()
        (await gate.enter())()


async def test_leaving_twice_frees_one_slot() -> None:
    gate = StartGate(slots=1, hold_limit=30.0)
    leave = await gate.enter()
    leave()
    leave()
    first = await gate.enter()
    second = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0.01)
    assert not second.done()  # still one slot, not two
    first()
    async with asyncio.timeout(5):
        (await second)()


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match='slot'):
        StartGate(slots=0)
