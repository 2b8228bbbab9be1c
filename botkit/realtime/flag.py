"""A one-bit event for the many per-connection signals: :class:`asyncio.Event` without its cost.

``asyncio.Event`` allocates a deque for its waiters when it is made, about 630 bytes even if
nothing ever waits; a client holds several, for each of hundreds of bots (bench S4). A
:class:`Flag` holds a list only while something waits on it. Same semantics: ``set()`` wakes
every waiter, even one that ``clear()`` follows at once.
"""

from __future__ import annotations

import asyncio

__all__ = ["Flag"]


class Flag:
    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            waiters = self._waiters
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
