"""Waiting in tests for state that has no event to wait on (a counter, a status, a log file)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["eventually"]


async def eventually(condition: Callable[[], bool], what: str, *, timeout: float = 10.0,
                     step: float = 0.02) -> None:
    """Return once ``condition()`` holds; AssertionError naming ``what`` after ``timeout``."""
    for _ in range(max(1, round(timeout / step))):
        if condition():
            return
        await asyncio.sleep(step)
    if not condition():
        raise AssertionError(f"not within {timeout}s: {what}")
