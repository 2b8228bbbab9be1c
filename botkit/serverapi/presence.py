"""Presence calls made together share a request.

One call alone goes out as a plain ``presence``; several (500 bots resyncing their rooms after a
reconnect) as one parallel ``batch`` request instead of hundreds, which cost seconds of CPU in
httpx (bench/ S6). A sender task serves the calls waiting, a request at a time, and ends when
there are none; the next call starts a new one.

Each caller gets its own answer or error: a reply that failed temporarily inside a batch is
asked again alone (with the usual retries), a malformed one fails that caller only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from botkit.errors import ApiError, ApiMalformedReplyError, ApiReplyError
from botkit.serverapi.replies import Presence, presence, presence_outcomes
from botkit.serverapi.stats import ApiStats
from botkit.serverapi.transport import Parse, copy_error

__all__ = ["MAX_PRESENCE_BATCH", "PresenceCoalescer"]

log = logging.getLogger("botkit.serverapi")

#: Presence calls sent together in one batch request at most.
MAX_PRESENCE_BATCH: Final = 500

_Waiting = tuple[str, "asyncio.Future[Presence]"]


class PresenceCoalescer:
    """Coalesces :meth:`presence` calls; sends through ``call`` (the transport's call, or a
    wrapper that bounds the calls in flight)."""

    def __init__(self, call: Callable[[str, bytes, Parse[Any]], Awaitable[Any]],
                 stats: ApiStats) -> None:
        self._call = call
        self._stats = stats
        self._wanted: list[_Waiting] = []
        self._taken: list[_Waiting] = []
        self._sender: asyncio.Task[None] | None = None

    async def presence(self, channel: str) -> Presence:
        future: asyncio.Future[Presence] = asyncio.get_running_loop().create_future()
        self._wanted.append((channel, future))
        if self._sender is None:
            sender = asyncio.create_task(self._send(), name="serverapi presence sender")
            sender.add_done_callback(self._sender_done)
            self._sender = sender
        return await future

    async def stop(self) -> None:
        """Cancel the sender, if any; the calls still waiting fail."""
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.wait([sender])

    async def _send(self) -> None:
        """Send the presence calls waiting, a request at a time, until there are none."""
        wanted = self._wanted
        try:
            while wanted:
                taken = self._taken = [item for item in wanted[:MAX_PRESENCE_BATCH]
                                       if not item[1].done()]
                del wanted[:MAX_PRESENCE_BATCH]
                if len(taken) == 1:
                    await self._one(*taken[0])
                elif taken:
                    await self._batch(taken)
            self._taken = []
        finally:
            # At once, not in the done callback (which runs later): a call made meanwhile
            # must start a new sender rather than wait for this finished one.
            self._sender = None

    def _sender_done(self, sender: asyncio.Task[None]) -> None:
        if self._sender is sender:
            self._sender = None
        if not sender.cancelled() and sender.exception() is not None:
            log.error("the server API presence sender failed", exc_info=sender.exception())
        if sender.cancelled() or sender.exception() is not None:
            # Cancelled (aclose) or a bug: nobody may be left waiting.
            error = ApiError("the presence request was not completed: the server API client "
                             "closed or failed")
            for _channel, future in self._taken + self._wanted:
                _settle(future, copy_error(error))
            self._taken = []
            self._wanted.clear()

    async def _one(self, channel: str, future: asyncio.Future[Presence]) -> None:
        try:
            result: Presence = await self._call("presence", _encode({"channel": channel}),
                                                presence)
        except ApiError as exc:
            _settle(future, exc)
        else:
            _settle(future, result)

    async def _batch(self, taken: list[_Waiting]) -> None:
        commands = [{"presence": {"channel": channel}} for channel, _future in taken]
        count = len(taken)

        def parse(payload: dict[str, Any]) -> list[Presence | ApiReplyError]:
            return presence_outcomes(payload, count)

        try:
            outcomes: list[Presence | ApiReplyError] = await self._call(
                "batch", _encode({"commands": commands, "parallel": True}), parse)
        except ApiError as exc:
            for _channel, future in taken:
                _settle(future, copy_error(exc))
            return
        for (channel, future), outcome in zip(taken, outcomes, strict=True):
            if isinstance(outcome, ApiMalformedReplyError):
                self._stats.malformed_replies += 1
            if isinstance(outcome, ApiReplyError) and outcome.temporary:
                await self._one(channel, future)  # alone, with the usual retries
            else:
                _settle(future, outcome)


def _settle(future: asyncio.Future[Presence], outcome: Presence | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
