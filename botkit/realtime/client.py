"""The realtime connection: one WebSocket to Xshathra Realtime, kept alive for as long as asked.

:class:`RealtimeClient` is the facade; the work is done by the modules beside it:

- :mod:`~botkit.realtime.connection`: one socket from open to close (reader, writer, timers)
  around the sans-I/O :class:`~botkit.protocol.ClientProtocol`, whose timers (liveness, token
  refresh, subscribe deadlines) are data;
- :mod:`~botkit.realtime.supervisor`: one connection after another, with backoff, until stopped
  or refused for good (:class:`~botkit.errors.TerminalDisconnectError`);
- :mod:`~botkit.realtime.subscriptions`: the wanted channels, subscribed together in one
  round trip on every connection, with recovery;
- :mod:`~botkit.realtime.delivery`: events to ``on_event`` (or a queue), with a bounded
  read-ahead when ``offer_event`` is given.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botkit.errors import (
    BotkitError,
    ConnectionClosedError,
    ProtocolError,
    RealtimeTimeoutError,
    ReplyError,
)
from botkit.protocol import (
    ClientInfo,
    ClientProtocol,
    ErrorReply,
    HistoryResult,
    MalformedReply,
    PresenceStats,
    Reply,
    StreamPosition,
    parse_history,
    parse_presence,
    parse_presence_stats,
)
from botkit.realtime.connection import Connection
from botkit.realtime.delivery import Delivery, EventOffer, EventSink
from botkit.realtime.events import ClientEvent, ConnectionState, ConnectionStateChanged
from botkit.realtime.flag import Flag
from botkit.realtime.link import Counters, Link, Outcome
from botkit.realtime.options import ClientOptions, SubscriptionTokenProvider, TokenProvider
from botkit.realtime.subscriptions import Subscriptions
from botkit.realtime.supervisor import Supervisor
from botkit.redact import safe_url

__all__ = ["RealtimeClient"]

log = logging.getLogger("botkit.realtime")

# Jitter needs no stream of its own: one generator for all clients (each of its own would cost
# 2.5 KB per connection).
_JITTER = random.Random()
_STOP_TIMEOUT = 3.0
"""Seconds for the supervisor to close its socket cleanly before it is cancelled."""


def _outcome(channel: str, future: asyncio.Future[None], limit: float) -> BotkitError | None:
    if not future.done():
        return RealtimeTimeoutError(f"subscribing {channel} took longer than {limit:.0f}s")
    error = future.exception()
    if error is None or isinstance(error, BotkitError):
        return error
    raise error  # only BotkitErrors are set on these futures: anything else is a bug


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class RealtimeClient:
    """A long-lived realtime connection for one user. Use ``async with``::

        async with RealtimeClient(url, minter.connection, minter.subscription) as client:
            await client.subscribe("chat:proj:lobby")
            event = await client.next_event()
    """

    def __init__(self, url: str, token_provider: TokenProvider,
                 subscription_token_provider: SubscriptionTokenProvider | None = None, *,
                 options: ClientOptions | None = None, on_event: EventSink | None = None,
                 offer_event: EventOffer | None = None,
                 rng: random.Random | None = None) -> None:
        self.url = url
        self.options = options = options or ClientOptions()
        rng = rng or _JITTER
        self._protocol = ClientProtocol(name=options.name, version=options.version,
                                        timers=options.timer_policy())
        self._delivery = Delivery(on_event=on_event, offer_event=offer_event,
                                  queue_size=options.event_queue_size,
                                  read_ahead_bytes=options.read_ahead_bytes,
                                  drops=self._protocol.drops)
        self._subscriptions = Subscriptions(self._protocol, options, subscription_token_provider,
                                            self._delivery, rng, _loop_time)
        self._counters = Counters()
        link = Link(url, options, self._protocol, self._subscriptions, self._delivery,
                    self._counters, token_provider, subscription_token_provider,
                    self._on_connected)
        self._supervisor = Supervisor(link, rng, on_disconnected=self._on_disconnected,
                                      on_connecting=self._on_connecting)
        self._task: asyncio.Task[None] | None = None
        self._ended = Flag()  # the task is done, however it ended (set by its done callback)
        self._connected = Flag()
        self._terminal: BotkitError | None = None
        self.state = ConnectionState.CLOSED
        self.client_id = ""

    def __repr__(self) -> str:
        return f"<RealtimeClient {safe_url(self.url)} {self.state.value}>"

    # -- what it has done ----------------------------------------------------------------------

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established after a loss."""
        return self._counters.reconnects

    @property
    def publications(self) -> int:
        """Publications delivered (after de-duplication)."""
        return self._counters.publications

    @property
    def drops(self) -> dict[str, int]:
        """Frames the protocol dropped, by reason."""
        return dict(self._protocol.drops)

    @property
    def read_ahead(self) -> Delivery:
        return self._delivery

    @property
    def ended(self) -> Flag:
        """Set once the client has ended, however (:meth:`wait_closed` says why): for waiting
        on it together with other flags (``flag.wait_any``), with no task."""
        return self._ended

    @property
    def terminal_error(self) -> BotkitError | None:
        return self._terminal

    def position(self, channel: str) -> StreamPosition | None:
        return self._protocol.position(channel)

    def is_subscribed(self, channel: str) -> bool:
        """Whether ``channel`` is subscribed on the current connection right now."""
        sub = self._protocol.subscriptions.get(channel)
        return sub is not None and sub.subscribed

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> RealtimeClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self, *, wait: bool = True) -> None:
        """Start connecting; with ``wait``, return once connected (or raise why not)."""
        if self._task is None:
            self.state = ConnectionState.CONNECTING
            # Owned here: aclose() stops it and waits for it.
            self._task = asyncio.create_task(self._run(), name=f"realtime {safe_url(self.url)}")
            self._task.add_done_callback(self._task_done)
        if wait:
            await self.wait_connected(self.options.connect_timeout * 3)

    async def wait_connected(self, timeout: float) -> None:
        task = self._task
        try:
            async with asyncio.timeout(timeout):
                while not self._connected.is_set():
                    if self._terminal is not None:
                        raise self._terminal
                    if task is None or task.done():
                        raise ConnectionClosedError("the realtime client is closed")
                    waiter = asyncio.ensure_future(self._connected.wait())
                    try:
                        await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
        except TimeoutError as exc:
            raise RealtimeTimeoutError(
                f"not connected to {safe_url(self.url)} within {timeout:.0f}s") from exc
        if self._terminal is not None:
            raise self._terminal

    async def wait_closed(self) -> None:
        """Wait until the client ends; raise the terminal error if the server ended it."""
        if self._task is not None:
            # A flag rather than asyncio.wait([task]), whose set, future and callbacks cost
            # ~1.4 KiB for each bot waiting on its client (bench/ S4); rather than shield(),
            # since the task may have been cancelled by aclose().
            await self._ended.wait()
        if self._terminal is not None:
            raise self._terminal

    async def aclose(self, *, flush_timeout: float = 5.0) -> None:
        """Close cleanly: a normal close frame, pending commands failed, no task left. Events
        still in the read-ahead get up to ``flush_timeout`` seconds to reach ``on_event``."""
        connected = self._supervisor.current is not None
        self._supervisor.stop(1000, "client closed")
        task = self._task
        if task is not None and not task.done():
            # wait() rather than awaiting the task: its CancelledError is its own, while one
            # aimed at us still propagates from here. A socket gets its closing handshake;
            # a backoff ends at once; a socket still opening is not waited for.
            await asyncio.wait([task], timeout=_STOP_TIMEOUT if connected else 0.05)
            if not task.done():
                task.cancel()
                await asyncio.wait([task])
        await self._delivery.aclose(flush_timeout)
        self._subscriptions.fail_all(ConnectionClosedError("the realtime client was closed"))
        self._connected.clear()
        self.state = ConnectionState.CLOSED

    async def _run(self) -> None:
        error = await self._supervisor.run()
        self._terminal = error
        self._connected.clear()
        self._subscriptions.fail_all(error or ConnectionClosedError("closed"))
        self.state = ConnectionState.CLOSED
        if error is not None:
            # INFO, not ERROR: the error is raised to whoever waits on this client (the runtime
            # reports it once, naming the bot or the setting to fix).
            log.info("realtime connection ended: %s", error)
        await self._delivery.emit(ConnectionStateChanged(
            ConnectionState.CLOSED, getattr(error, "code", 0), str(error or ""), error))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._ended.set()

    def _on_connecting(self) -> None:
        self.state = ConnectionState.CONNECTING

    async def _on_connected(self, connection: Connection) -> None:
        self.client_id = connection.client_id
        self.state = ConnectionState.CONNECTED
        self._connected.set()
        await self._delivery.emit(ConnectionStateChanged(ConnectionState.CONNECTED))

    async def _on_disconnected(self, outcome: Outcome) -> None:
        self._connected.clear()
        self.state = ConnectionState.DISCONNECTED
        await self._delivery.emit(ConnectionStateChanged(
            ConnectionState.DISCONNECTED, outcome.code, outcome.reason))

    # -- events --------------------------------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> ClientEvent:
        """The next event from the built-in queue (only when no ``on_event`` was given)."""
        return await self._delivery.next_event(timeout)

    # -- subscriptions -------------------------------------------------------------------------

    async def subscribe(self, channel: str, *, timeout: float | None = None) -> None:
        """Subscribe ``channel`` and keep it subscribed across reconnects. Returns once the
        server accepted it; raises SubscriptionError if it refused for good."""
        error = (await self.subscribe_all([channel], timeout=timeout))[channel]
        if error is not None:
            raise error

    async def subscribe_all(self, channels: Iterable[str], *, timeout: float | None = None,
                            since: Mapping[str, StreamPosition] | None = None,
                            ) -> dict[str, BotkitError | None]:
        """Subscribe every channel (all in one message, answered in one round trip) and keep
        them subscribed. Returns each channel's outcome: None once the server accepted it,
        SubscriptionError if it refused for good, RealtimeTimeoutError if still on its way
        after ``timeout`` (the client goes on trying).

        ``since`` gives channels not yet known a position to recover from (one stored by an
        earlier process): the server replays what followed it, or the client delivers a
        StreamGap when it cannot."""
        futures: dict[str, asyncio.Future[None]] = {}
        new: list[str] = []
        for channel in channels:
            futures[channel], is_new = self._subscriptions.want(channel)
            if is_new:
                new.append(channel)
                position = since.get(channel) if since is not None else None
                if position is not None and self.options.recoverable:
                    self._protocol.seed(channel, position)
        connection = self._supervisor.current
        if new and connection is not None and connection.open:
            try:
                if await self._subscriptions.send(new):
                    connection.kick()
            except ConnectionClosedError:
                pass  # lost meanwhile: the next connection subscribes them
        # Otherwise the next connect carries them, or the connect reply does.
        limit = timeout if timeout is not None else self.options.command_timeout * 3
        pending = [f for f in futures.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=limit)
        return {channel: _outcome(channel, future, limit) for channel, future in futures.items()}

    async def unsubscribe(self, channel: str) -> None:
        self._subscriptions.unwant(channel, ConnectionClosedError(f"{channel} unsubscribed"))
        try:
            if self._connected.is_set() and channel in self._protocol.subscriptions:
                await self._call(lambda: self._protocol.unsubscribe(channel))
        finally:
            # Whatever the server heard, this client no longer wants the channel.
            self._protocol.forget(channel)

    # -- commands ------------------------------------------------------------------------------

    async def publish(self, channel: str, data: Any) -> None:
        """Client-side publish (only where the namespace allows it; bots reply through the
        server API instead)."""
        await self._call(lambda: self._protocol.publish(channel, data))

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return parse_presence(await self._call(lambda: self._protocol.presence(channel)))

    async def presence_stats(self, channel: str) -> PresenceStats:
        return parse_presence_stats(
            await self._call(lambda: self._protocol.presence_stats(channel)))

    async def history(self, channel: str, *, limit: int, since: StreamPosition | None = None,
                      reverse: bool = False) -> HistoryResult:
        """``limit`` must be positive to get publications (0 returns only the stream top)."""
        result = await self._call(
            lambda: self._protocol.history(channel, limit=limit, since=since, reverse=reverse))
        return parse_history(channel, result)

    async def _call(self, build: Callable[[], int]) -> dict[str, Any]:
        if self._terminal is not None:
            raise self._terminal
        if not self._connected.is_set():
            await self.wait_connected(self.options.command_timeout)
        connection = self._supervisor.current
        if connection is None:
            raise ConnectionClosedError("not connected")
        event = await connection.request(build)
        if isinstance(event, ErrorReply):
            raise ReplyError(event.code, event.message, event.temporary, method=event.method)
        if isinstance(event, MalformedReply):
            raise ProtocolError(f"malformed {event.method} reply: {event.reason}")
        if not isinstance(event, Reply):
            raise ProtocolError(f"unexpected reply {type(event).__name__}")
        return event.result
