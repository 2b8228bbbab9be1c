"""Ordered lanes: one bounded queue and one long-lived worker per (bot, room).

A room's envelopes are handled one after another, in the order they arrived, while other rooms
run in parallel. A full lane makes its producer wait (the realtime reader, and through it the
socket): backpressure instead of unbounded memory. No task is created per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["Lane"]

_T = TypeVar("_T")


class Lane(Generic[_T]):
    def __init__(self, name: str, handle: Callable[[_T], Awaitable[None]], *,
                 maxsize: int) -> None:
        self.name = name
        self._handle = handle
        self._queue: asyncio.Queue[_T] = asyncio.Queue(maxsize)
        self._worker: asyncio.Task[None] | None = None

    def start(self, group: asyncio.TaskGroup) -> None:
        self._worker = group.create_task(self._run(), name=f"lane {self.name}")

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def put(self, item: _T) -> None:
        await self._queue.put(item)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                # The handler isolates its own errors; a lane only ends by cancellation.
                await self._handle(item)
            finally:
                self._queue.task_done()

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued has been handled; False if time ran out."""
        try:
            async with asyncio.timeout(timeout):
                await self._queue.join()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            # wait() does not re-raise the worker's CancelledError; one aimed at us still does.
            await asyncio.wait([worker])
