"""How a long-running worker (a bot under load, 500 idle bots) talks to the orchestrator: it
prints ``READY`` once serving, then obeys lines on stdin (``STOP``, ``RESTARTED <t>``)."""

from __future__ import annotations

import asyncio
import sys
import time

import jwt


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def next_line(timeout: float) -> str:
    """The next line from the orchestrator ("" when stdin closed or nothing came in time)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            line = await loop.run_in_executor(None, sys.stdin.readline)
    except TimeoutError:
        return ""
    return line.strip()


def tokens(secret: str, user: str, channel: str | None = None) -> str:
    """An HS256 JWT for the peers (botkit mints its own): connection, or subscription."""
    claims: dict[str, object] = {"sub": user, "exp": int(time.time()) + 3600}
    if channel is not None:
        claims["channel"] = channel
    return jwt.encode(claims, secret, algorithm="HS256")
