"""A one-bit event for the many per-connection signals: :class:`asyncio.Event` without its cost.

``asyncio.Event`` allocates a deque for its waiters when it is made, about 630 bytes even if
nothing ever waits; a client holds several, for each of hundreds of bots (bench S4). A
:class:`Flag` holds a list only while something waits on it. Same semantics: ``set()`` wakes
every waiter, even one that ``clear()`` follows at once.

:func:`wait_any` waits for the first of several flags with one future, where
``asyncio.wait`` over their ``wait()`` would need a task each (~1.5 KiB per idle bot apiece).
"""

from __future__ import annotations

import asyncio

__all__ = ["Flag", "wait_any"]


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

    def link(self, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` when the flag is set (now, if it is). Whoever links a waiter
        unlinks it once done waiting, however the wait ended."""
        if self._set:
            if not waiter.done():
                waiter.set_result(None)
            return
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)

    def unlink(self, waiter: asyncio.Future[None]) -> None:
        waiters = self._waiters
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                self._waiters = None

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


async def wait_any(*flags: Flag) -> None:
    """Return once any of ``flags`` is set."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for flag in flags:
        flag.link(waiter)
    try:
        await waiter
    finally:
        for flag in flags:
            flag.unlink(waiter)
