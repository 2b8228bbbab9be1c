"""botkit.realtime.flag.Flag keeps asyncio.Event's semantics (it stands in for it per
connection, to save memory)."""

from __future__ import annotations

import asyncio

import pytest

from botkit.realtime.flag import Flag


async def test_set_wakes_every_waiter_even_if_cleared_at_once() -> None:
    flag = Flag()
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await flag.wait()
        woken.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert not flag.is_set()
    flag.set()
    flag.clear()
    async with asyncio.timeout(2):
        await asyncio.gather(*tasks)
    assert sorted(woken) == [0, 1, 2]
    assert not flag.is_set()


async def test_a_set_flag_does_not_wait_and_a_cancelled_waiter_leaves() -> None:
    flag = Flag()
    waiting = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.wait([waiting])
    assert waiting.cancelled()
    assert flag._waiters == []
    flag.set()
    flag.set()  # idempotent
    async with asyncio.timeout(0.1):
        await flag.wait()


async def test_wait_any_returns_on_the_first_flag_set_and_unlinks_its_waiter() -> None:
    from botkit.realtime.flag import wait_any

    first, second = Flag(), Flag()
    waiting = asyncio.create_task(wait_any(first, second))
    await asyncio.sleep(0)
    assert not waiting.done()
    second.set()
    async with asyncio.timeout(2):
        await waiting
    # Nothing is left linked to the flag that was never set.
    assert first._waiters is None
    # A set flag returns at once; a cancelled wait unlinks as well.
    async with asyncio.timeout(2):
        await wait_any(first, second)
    second.clear()
    cancelled = asyncio.create_task(wait_any(first, second))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert first._waiters is None
    assert second._waiters is None
