"""Keeping a client connected: one connection after another, with backoff, until told to stop
or refused for good.

Whatever ended a connection, the :class:`~botkit.realtime.connection.Outcome` says how: a
connection that was in service ends as DISCONNECTED (and counts a reconnect), a terminal close
code (3500-3999, 4500-4999) or a connect the server refused for good ends the client with
:class:`~botkit.errors.TerminalDisconnectError`, anything else is followed by a new connection
after a full-jitter delay that resubscribes every wanted channel with recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from websockets.exceptions import WebSocketException

from botkit.errors import BotkitError, ConnectionClosedError, TerminalDisconnectError
from botkit.protocol import DisconnectAction, describe_disconnect, disconnect_action
from botkit.realtime.connection import Connection
from botkit.realtime.flag import Flag
from botkit.realtime.link import CLOSE_ABNORMAL, CLOSE_TIMEOUT, Link, Outcome
from botkit.realtime.websocket import open_websocket
from botkit.redact import safe_url

__all__ = ["Supervisor"]

log = logging.getLogger("botkit.realtime")


class Supervisor:
    """Runs connections for one client until :meth:`stop` or a terminal outcome."""

    def __init__(self, link: Link, rng: random.Random, *,
                 on_disconnected: Callable[[Outcome], Awaitable[None]],
                 on_connecting: Callable[[], None]) -> None:
        self._link = link
        self._rng = rng
        self._on_disconnected = on_disconnected
        self._on_connecting = on_connecting
        self.current: Connection | None = None
        self.closing = False
        self._stopped = Flag()

    def stop(self, code: int, reason: str) -> None:
        """End the current connection with ``code`` and start no other."""
        self.closing = True
        self._stopped.set()
        if self.current is not None:
            self.current.end(code, reason)

    async def run(self) -> BotkitError | None:
        """Connect, reconnect, ...; returns the terminal error, or None once stopped."""
        attempt = 0
        link = self._link
        url = safe_url(link.url)
        while not self.closing:
            self._on_connecting()
            try:
                opened = await open_connection(link)
            except Exception as exc:
                # A bug of ours must not end a daemon's connection for good: log, go on.
                log.exception("opening the realtime connection to %s failed unexpectedly", url)
                opened = Outcome(False, CLOSE_ABNORMAL, "internal error",
                                 ConnectionClosedError(f"internal error: {exc!r}"))
            if isinstance(opened, Outcome):
                outcome = opened
            else:
                self.current = opened
                try:
                    if self.closing:  # stopped while the socket was opening
                        opened.end(1000, "client closed")
                    outcome = await opened.run()
                finally:
                    self.current = None
            if outcome.established:
                if not self.closing:
                    link.counters.reconnects += 1
                await self._on_disconnected(outcome)
            terminal = self._terminal(outcome)
            if terminal is not None:
                return terminal
            if self.closing:
                break
            log.info("disconnected from %s: %s %s%s", url, outcome.code, outcome.reason,
                     f" ({outcome.failure})" if outcome.failure else "")
            attempt = 0 if outcome.established else attempt + 1
            delay = link.options.min_reconnect_delay + link.options.backoff.delay(
                attempt, self._rng.random())
            log.debug("reconnecting to %s in %.2fs", url, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopped.wait()
        return None

    def _terminal(self, outcome: Outcome) -> TerminalDisconnectError | None:
        if isinstance(outcome.failure, TerminalDisconnectError):
            return outcome.failure
        if not self.closing and disconnect_action(outcome.code) is DisconnectAction.TERMINAL:
            return TerminalDisconnectError(outcome.code, outcome.reason,
                                           describe_disconnect(outcome.code))
        return None


async def open_connection(link: Link) -> Connection | Outcome:
    """Open the WebSocket (bounded by the connect timeout); an Outcome when that failed."""
    options = link.options
    try:
        async with asyncio.timeout(options.connect_timeout):
            ws = await open_websocket(
                link.url, max_size=options.max_incoming_size, close_timeout=CLOSE_TIMEOUT,
                user_agent=f"botkit/{options.version or 'dev'}")
    except (OSError, TimeoutError, WebSocketException) as exc:
        shown = safe_url(link.url)
        detail = str(exc).replace(link.url, shown) or type(exc).__name__
        return Outcome(False, CLOSE_ABNORMAL, "cannot open the WebSocket",
                       ConnectionClosedError(f"cannot connect to {shown}: {detail}"))
    return Connection(link, ws)
