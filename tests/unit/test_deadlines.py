"""Handler deadlines with one timer, with asyncio.timeout()'s semantics."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from botkit.runtime.deadlines import Deadlines


async def test_a_call_within_its_deadline_is_untouched() -> None:
    deadlines = Deadlines(1.0)
    scope = deadlines.scope()
    with scope:
        await asyncio.sleep(0)
    assert not scope.expired
    assert not deadlines._active


async def test_an_overrun_is_a_timeout_error_and_marked_expired() -> None:
    deadlines = Deadlines(0.05)
    scope = deadlines.scope()
    task = asyncio.current_task()
    assert task is not None
    with pytest.raises(TimeoutError):
        with scope:
            await asyncio.sleep(5)
    assert scope.expired
    assert task.cancelling() == 0  # the cancellation was ours and is taken back


async def test_the_calls_own_timeout_error_is_not_an_overrun() -> None:
    deadlines = Deadlines(5.0)
    scope = deadlines.scope()
    with pytest.raises(TimeoutError):
        with scope:
            raise TimeoutError("an upstream call timed out")
    assert not scope.expired


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    deadlines = Deadlines(5.0)
    started = asyncio.Event()

    async def call() -> None:
        with deadlines.scope():
            started.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(call())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._active


async def test_an_overrun_and_an_outside_cancellation_together_stay_a_cancellation() -> None:
    deadlines = Deadlines(0.05)
    results: list[BaseException] = []

    async def call() -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            with deadlines.scope():
                task.cancel()  # someone else cancels too
                await asyncio.sleep(5)
        except BaseException as exc:
            results.append(exc)
            raise

    task = asyncio.create_task(call())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance(results[0], asyncio.CancelledError)


async def test_a_call_that_swallows_the_cancellation_returns_normally() -> None:
    deadlines = Deadlines(0.05)
    scope = deadlines.scope()
    task = asyncio.current_task()
    assert task is not None
    with scope, contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert scope.expired
    assert task.cancelling() == 0


async def test_concurrent_calls_each_get_their_own_deadline() -> None:
    deadlines = Deadlines(0.1)
    outcomes: dict[str, str] = {}

    async def call(name: str, seconds: float) -> None:
        try:
            with deadlines.scope():
                await asyncio.sleep(seconds)
            outcomes[name] = "done"
        except TimeoutError:
            outcomes[name] = "timeout"

    async def later(name: str, delay: float, seconds: float) -> None:
        await asyncio.sleep(delay)
        await call(name, seconds)

    await asyncio.gather(call("slow", 5), call("quick", 0.01), later("late", 0.05, 0.09),
                         later("late-slow", 0.05, 5))
    assert outcomes == {"slow": "timeout", "quick": "done", "late": "done",
                        "late-slow": "timeout"}
    assert not deadlines._active


async def test_one_timer_at_most_and_none_when_idle() -> None:
    deadlines = Deadlines(0.05)
    for _ in range(100):
        with deadlines.scope():
            await asyncio.sleep(0)
    # The timer armed by the first call fires once, finds nothing, and is not re-armed.
    assert deadlines._timer is not None
    await asyncio.sleep(0.1)
    assert deadlines._timer is None


async def test_a_call_still_running_after_its_overrun_does_not_hold_up_the_others() -> None:
    deadlines = Deadlines(0.05)
    outcomes: list[str] = []

    async def stubborn() -> None:
        with deadlines.scope():
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                outcomes.append("stubborn swallowed it")
            await asyncio.sleep(0.2)  # still in its scope, already expired

    async def later() -> None:
        await asyncio.sleep(0.1)
        try:
            with deadlines.scope():
                await asyncio.sleep(5)
        except TimeoutError:
            outcomes.append("later timed out")

    await asyncio.wait_for(asyncio.gather(stubborn(), later()), 5)
    assert outcomes == ["stubborn swallowed it", "later timed out"]


async def test_a_scope_needs_a_task() -> None:
    deadlines = Deadlines(1.0)
    errors: list[BaseException] = []

    def callback() -> None:
        try:
            deadlines.scope()
        except RuntimeError as exc:
            errors.append(exc)

    asyncio.get_running_loop().call_soon(callback)
    await asyncio.sleep(0.01)
    assert len(errors) == 1


async def test_a_suspended_scope_does_not_expire_and_resumes_in_full() -> None:
    # A handler parked on ctx.ask: no overrun while it waits, a whole deadline once resumed,
    # and the timer still serves a scope that stayed active meanwhile.
    deadlines = Deadlines(0.05)
    other = asyncio.ensure_future(asyncio.sleep(5))
    other_scope: list[bool] = []

    async def overrunning() -> None:
        scope = deadlines.scope()
        try:
            with scope:
                await other
        except TimeoutError:
            other_scope.append(scope.expired)

    overrun = asyncio.create_task(overrunning())
    scope = deadlines.scope()
    seen: list[bool] = []

    async def parked() -> None:
        with scope:
            scope.suspend()
            await asyncio.sleep(0.15)
            seen.append(scope.expired)
            scope.resume()
            await asyncio.sleep(0.03)
            seen.append(scope.expired)  # a full deadline again, not what was left
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await parked()
    assert seen == [False, False]
    assert scope.expired
    await overrun
    assert other_scope == [True]
    assert not deadlines._active
