"""Cutting a client's connection a number of times, each time only once it is connected again:
cuts on a timer sometimes land while the client is still reconnecting and cut nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.support.tcp_proxy import TcpProxy


async def cut_when_connected(proxy: TcpProxy, connected: Callable[[], bool], *, times: int,
                             pause: float = 0.05, timeout: float = 15.0) -> list[int]:
    """Cut ``times`` times; before each cut wait until ``connected()`` and ``pause`` seconds
    more (so traffic is flowing). Returns how many connections each cut closed."""
    closed: list[int] = []
    async with asyncio.timeout(timeout):
        for _ in range(times):
            await _until(connected)
            await asyncio.sleep(pause)
            closed.append(await proxy.cut())
            await _until(lambda: not connected())
    return closed


async def _until(condition: Callable[[], bool]) -> None:
    # Polling: the client's state is a plain attribute, with no event a test could wait on.
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
