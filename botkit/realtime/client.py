"""The realtime connection: one WebSocket to Xshathra Realtime, kept alive for as long as asked.

:class:`RealtimeClient` drives the sans-I/O :class:`~botkit.protocol.ClientProtocol` over a
``websockets`` connection. It connects with a token from a token provider, subscribes channels
(each with its own subscription token), answers pings, notices a dead server, reconnects with
full-jitter backoff, resubscribes with recovery so that missed publications arrive in order and
exactly once, reports a gap it cannot recover, and refreshes tokens before they expire. Codes
that forbid reconnecting end it with :class:`~botkit.errors.TerminalDisconnectError`.

Events (publications, joins, leaves, gaps, state changes) go to ``on_event`` when given, else
into a bounded queue read with :meth:`RealtimeClient.next_event`. ``on_event`` is awaited by the
reader, which is how backpressure reaches the socket; it must never wait for a reply of this same
connection, since only the reader can deliver that reply.

With ``offer_event`` as well (the runtime gives one), the reader never waits for a busy
consumer while it holds less than ``read_ahead_bytes`` of received messages: ``offer_event``
takes an event at once or declines, and a declined event (and every one after it, in order)
waits in a read-ahead buffer that a helper task feeds to ``on_event``. The reader meanwhile
keeps reading, so the server's pings are answered and its write deadlines met while handlers
are slow; only past the budget does the socket push back.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from botkit.errors import (
    BotkitError,
    ConnectionClosedError,
    ProtocolError,
    RealtimeError,
    RealtimeTimeoutError,
    ReplyError,
    SubscriptionError,
    TerminalDisconnectError,
    TokenError,
)
from botkit.protocol import (
    Backoff,
    ClientInfo,
    ClientProtocol,
    Connected,
    DisconnectAction,
    Disconnected,
    ErrorAction,
    ErrorReply,
    HistoryResult,
    Joined,
    Left,
    MalformedReply,
    PresenceStats,
    Publication,
    Reply,
    ReplyEvent,
    StreamGap,
    StreamPosition,
    Subscribed,
    Unsubscribed,
    describe_disconnect,
    disconnect_action,
    error_action,
    parse_history,
    parse_presence,
    parse_presence_stats,
)
from botkit.realtime.events import (
    ClientEvent,
    ConnectionState,
    ConnectionStateChanged,
    SubscriptionEnded,
    SubscriptionFailed,
)

__all__ = ["ClientOptions", "RealtimeClient", "SubscriptionTokenProvider", "TokenProvider"]

log = logging.getLogger("botkit.realtime")

TokenProvider = Callable[[], str | Awaitable[str]]
SubscriptionTokenProvider = Callable[[str], str | Awaitable[str]]
EventSink = Callable[[ClientEvent], Awaitable[None]]
EventOffer = Callable[[ClientEvent], bool]

_JITTER = random.Random()

# Close codes this client uses for its own reasons (the 4000-4499 range reconnects).
_CLOSE_NORMAL = 1000
_CLOSE_NO_PING = 4001
_CLOSE_PROTOCOL = 4002


@dataclass(frozen=True, slots=True)
class ClientOptions:
    connect_timeout: float = 10.0
    """Seconds for the WebSocket handshake plus the connect reply."""
    command_timeout: float = 10.0
    """Seconds to wait for the reply to any command."""
    ping_grace: float = 10.0
    """Seconds past the server's ping interval before the server is presumed dead."""
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.1, cap=20.0))
    min_reconnect_delay: float = 0.1
    max_incoming_size: int = 16 * 2**20
    event_queue_size: int = 10_000
    """Bound of the built-in event queue used when no ``on_event`` is given."""
    refresh_margin: float = 30.0
    """Refresh a token this many seconds before it expires (at most a fifth of its life)."""
    recoverable: bool = True
    join_leave: bool = False
    """Ask for join/leave pushes (the seed's namespace pushes them to everyone anyway)."""
    name: str = "botkit"
    version: str = ""
    read_ahead_bytes: int = 16 * 2**20
    """With ``offer_event``: how much of the received messages (their size on the wire) may
    wait for a busy consumer while the reader keeps reading."""


@dataclass(slots=True)
class _Wanted:
    """A channel the user wants subscribed, across reconnects."""

    channel: str
    first_result: asyncio.Future[None]
    attempts: int = 0


async def _mint(provider: Callable[..., str | Awaitable[str]], *args: str) -> str:
    """Call a token provider; its failure is a TokenError (retried), never a crash."""
    try:
        token = provider(*args)
        if inspect.isawaitable(token):
            token = await token
    except asyncio.CancelledError:
        raise
    except BotkitError:
        raise
    except Exception as exc:
        raise TokenError(f"the token provider failed: {exc!r}") from exc
    if not isinstance(token, str) or not token:
        raise TokenError(f"the token provider returned {type(token).__name__}, not a token")
    return token


def _refresh_delay(ttl: float, margin: float) -> float:
    return max(0.5, ttl - min(margin, max(1.0, ttl * 0.2)))


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
        self.options = options or ClientOptions()
        self._token_provider = token_provider
        self._sub_token_provider = subscription_token_provider
        # Jitter needs no stream of its own: one generator for all clients (each of its own
        # would cost 2.5 KB per connection).
        self._rng = rng or _JITTER
        self._queue: asyncio.Queue[ClientEvent] | None = None
        if on_event is None:
            self._queue = asyncio.Queue(self.options.event_queue_size)
            on_event = self._queue.put
        self._sink = on_event
        self._offer = offer_event if self._queue is None else None
        # The read-ahead (only with offer_event): events the consumer declined, in order, each
        # with its size on the wire; fed to on_event by the _feeder task while it has any.
        self._held: deque[tuple[ClientEvent, int]] = deque()
        self._held_bytes = 0
        self._feeder: asyncio.Task[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._protocol = ClientProtocol(name=self.options.name, version=self.options.version)
        self._wanted: dict[str, _Wanted] = {}
        self._waiters: dict[int, asyncio.Future[ReplyEvent]] = {}
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._terminal: BotkitError | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._subscribe_wakeup = asyncio.Event()
        self._refresh_at: dict[str, float] = {}
        self._refresh_wakeup = asyncio.Event()
        self._last_rx = 0.0
        self._liveness = 0.0
        self._local_close: tuple[int, str] | None = None
        self.state = ConnectionState.CLOSED
        self.client_id = ""
        self.reconnects = 0
        """How many times the connection was re-established after a loss."""
        self.publications = 0
        """Publications delivered (after de-duplication)."""

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def drops(self) -> dict[str, int]:
        """Frames the protocol dropped, by reason."""
        return dict(self._protocol.drops)

    @property
    def terminal_error(self) -> BotkitError | None:
        return self._terminal

    async def __aenter__(self) -> RealtimeClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self, *, wait: bool = True) -> None:
        """Start connecting; with ``wait``, return once connected (or raise why not)."""
        if self._supervisor is None:
            self.state = ConnectionState.CONNECTING
            self._supervisor = asyncio.create_task(self._supervise(), name=f"realtime {self.url}")
        if wait:
            await self.wait_connected(self.options.connect_timeout * 3)

    async def wait_connected(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not self._connected.is_set():
                    if self._terminal is not None:
                        raise self._terminal
                    if self._supervisor is None or self._supervisor.done():
                        raise ConnectionClosedError("the realtime client is closed")
                    waiter = asyncio.ensure_future(self._connected.wait())
                    try:
                        await asyncio.wait([waiter, self._supervisor],
                                           return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
        except TimeoutError as exc:
            raise RealtimeTimeoutError(
                f"not connected to {self.url} within {timeout:.0f}s") from exc
        if self._terminal is not None:
            raise self._terminal

    async def wait_closed(self) -> None:
        """Wait until the client ends; raise the terminal error if the server ended it."""
        if self._supervisor is not None:
            await asyncio.shield(self._supervisor)
        if self._terminal is not None:
            raise self._terminal

    async def aclose(self, *, flush_timeout: float = 5.0) -> None:
        """Close cleanly: a normal close frame, pending commands failed, no task left. Events
        still in the read-ahead get up to ``flush_timeout`` seconds to reach ``on_event``."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            self._local_close = (_CLOSE_NORMAL, "client closed")
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await ws.close(_CLOSE_NORMAL, "client closed")
        task, self._supervisor = self._supervisor, None
        if task is not None and not task.done():
            task.cancel()
            # wait() rather than awaiting the task: its CancelledError is its own, while one
            # aimed at us still propagates from here.
            await asyncio.wait([task])
        feeder = self._feeder
        if feeder is not None:
            await asyncio.wait([feeder], timeout=flush_timeout)
            if not feeder.done():
                log.warning("closing with %d received event(s) not handed over",
                            len(self._held))
                feeder.cancel()
                await asyncio.wait([feeder])
            self._held.clear()
            self._held_bytes = 0
        closed = ConnectionClosedError("the realtime client was closed")
        self._fail_waiters(closed)
        for wanted in self._wanted.values():
            if not wanted.first_result.done():
                wanted.first_result.set_exception(closed)
                wanted.first_result.exception()
        self.state = ConnectionState.CLOSED

    # -- events ------------------------------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> ClientEvent:
        """The next event from the built-in queue (only when no ``on_event`` was given)."""
        if self._queue is None:
            raise RealtimeError("events go to on_event; there is no queue to read")
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    async def _emit(self, event: ClientEvent, size: int = 0) -> None:
        offer = self._offer
        if offer is None:
            try:
                await self._sink(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._sink_failed(event)
            return
        if not self._held:
            try:
                if offer(event):
                    return
            except Exception:
                self._sink_failed(event)
                return
        await self._hold(event, size)

    async def _hold(self, event: ClientEvent, size: int) -> None:
        """Put ``event`` in the read-ahead; wait only when the read-ahead is over budget."""
        self._held.append((event, size))
        self._held_bytes += size
        if self._feeder is None:
            self._feeder = asyncio.create_task(self._feed(), name="realtime read-ahead")
        while self._held_bytes > self.options.read_ahead_bytes and self._held:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    async def _feed(self) -> None:
        """Hand the read-ahead to on_event, in order, until it is empty."""
        held = self._held
        try:
            while held:
                event, size = held[0]
                try:
                    await self._sink(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self._sink_failed(event)
                held.popleft()
                self._held_bytes -= size
                room = self._room
                if room is not None and not room.done() and (
                        self._held_bytes <= self.options.read_ahead_bytes):
                    room.set_result(None)
        finally:
            self._feeder = None
            room = self._room
            if room is not None and not room.done():
                room.set_result(None)

    def _sink_failed(self, event: ClientEvent) -> None:
        # A consumer's bug must not kill the connection; it is logged and counted.
        log.exception("event handler failed on %s", type(event).__name__)
        self._protocol.drops["event handler error"] += 1

    # -- subscriptions -----------------------------------------------------------------------

    async def subscribe(self, channel: str, *, timeout: float | None = None) -> None:
        """Subscribe ``channel`` and keep it subscribed across reconnects. Returns once the
        server accepted it; raises SubscriptionError if it refused for good."""
        wanted = self._wanted.get(channel)
        if wanted is None:
            future = asyncio.get_running_loop().create_future()
            wanted = self._wanted[channel] = _Wanted(channel, future)
            self._subscribe_wakeup.set()
        limit = timeout if timeout is not None else self.options.command_timeout * 3
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(wanted.first_result)
        except TimeoutError as exc:
            raise RealtimeTimeoutError(f"subscribing {channel} took longer than "
                                       f"{limit:.0f}s") from exc

    async def unsubscribe(self, channel: str) -> None:
        wanted = self._wanted.pop(channel, None)
        self._refresh_at.pop(channel, None)
        if wanted is not None and not wanted.first_result.done():
            wanted.first_result.set_exception(ConnectionClosedError(f"{channel} unsubscribed"))
            wanted.first_result.exception()  # retrieved: nobody may be waiting
        try:
            if self._connected.is_set() and channel in self._protocol.subscriptions:
                await self._call(lambda: self._protocol.unsubscribe(channel))
        finally:
            # Whatever the server heard, this client no longer wants the channel.
            self._protocol.forget(channel)

    def position(self, channel: str) -> StreamPosition | None:
        return self._protocol.position(channel)

    # -- commands ----------------------------------------------------------------------------

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
        event = await self._request(build)
        if isinstance(event, ErrorReply):
            raise ReplyError(event.code, event.message, event.temporary, method=event.method)
        if isinstance(event, MalformedReply):
            raise ProtocolError(f"malformed {event.method} reply: {event.reason}")
        if not isinstance(event, Reply):
            raise ProtocolError(f"unexpected reply {type(event).__name__}")
        return event.result

    async def _request(self, build: Callable[[], int]) -> ReplyEvent:
        ws = self._ws
        if ws is None:
            raise ConnectionClosedError("not connected")
        command_id = build()
        future: asyncio.Future[ReplyEvent] = asyncio.get_running_loop().create_future()
        self._waiters[command_id] = future
        try:
            await self._flush(ws)
            async with asyncio.timeout(self.options.command_timeout):
                return await future
        except TimeoutError as exc:
            raise RealtimeTimeoutError(
                f"no reply within {self.options.command_timeout:.0f}s") from exc
        finally:
            self._waiters.pop(command_id, None)

    async def _flush(self, ws: ClientConnection) -> None:
        messages = self._protocol.data_to_send()
        if messages:
            await self._send(ws, messages)

    @staticmethod
    async def _send(ws: ClientConnection, messages: list[str]) -> None:
        for message in messages:
            try:
                await ws.send(message)
            except websockets.ConnectionClosed as exc:
                raise ConnectionClosedError("the connection closed while sending") from exc

    def _fail_waiters(self, error: BotkitError) -> None:
        waiters, self._waiters = self._waiters, {}
        for future in waiters.values():
            if not future.done():
                future.set_exception(error)

    # -- the connection loop -----------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            established = False
            try:
                established = await self._connection_once()
            except TerminalDisconnectError as exc:
                await self._end(exc)
                return
            except (BotkitError, OSError, websockets.WebSocketException, TimeoutError) as exc:
                log.info("realtime connection to %s failed: %s", self.url, exc)
            except Exception:
                # A bug of ours must not end a daemon's connection for good: log and go on.
                log.exception("unexpected error in the realtime connection to %s", self.url)
            if self._closing:
                break
            attempt = 0 if established else attempt + 1
            delay = self.options.min_reconnect_delay + self.options.backoff.delay(
                attempt, self._rng.random())
            log.debug("reconnecting in %.2fs", delay)
            await asyncio.sleep(delay)
        await self._end(None)

    async def _end(self, error: BotkitError | None) -> None:
        self._terminal = error
        self._connected.clear()
        self._fail_waiters(error or ConnectionClosedError("the realtime client was closed"))
        for wanted in self._wanted.values():
            if not wanted.first_result.done():
                wanted.first_result.set_exception(error or ConnectionClosedError("closed"))
                wanted.first_result.exception()
        self.state = ConnectionState.CLOSED
        if error is not None:
            log.error("realtime connection ended: %s", error)
        await self._emit(ConnectionStateChanged(
            ConnectionState.CLOSED, getattr(error, "code", 0), str(error or ""), error))

    async def _connection_once(self) -> bool:
        """One WebSocket from open to close. True if it got connected at least."""
        self.state = ConnectionState.CONNECTING
        self._local_close = None
        async with asyncio.timeout(self.options.connect_timeout):
            ws = await websockets.connect(
                self.url, compression=None, ping_interval=None, proxy=None,
                max_size=self.options.max_incoming_size, open_timeout=None,
                close_timeout=2.0, user_agent_header=f"botkit/{self.options.version or 'dev'}")
        self._ws = ws
        self._protocol.connection_lost()
        self._last_rx = asyncio.get_running_loop().time()
        connected = False
        failure: BotkitError | None = None
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._read_loop(ws), name="realtime reader")]
                # Errors are caught inside the group's body: a body that raises would come out
                # of the TaskGroup wrapped in an ExceptionGroup.
                try:
                    await self._handshake(ws)
                    connected = True
                    tasks += [group.create_task(self._watchdog(ws), name="realtime watchdog"),
                              group.create_task(self._refresh_loop(), name="token refresh"),
                              group.create_task(self._subscribe_loop(ws), name="subscriber")]
                    await asyncio.wait(tasks[:1])
                except BotkitError as exc:
                    failure = exc
                finally:
                    for task in tasks:
                        task.cancel()
        finally:
            self._ws = None
            self._connected.clear()
            self._protocol.connection_lost()
            self._fail_waiters(ConnectionClosedError("the connection was lost"))
            self._refresh_at.clear()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await ws.close()
        code, reason = self._close_code(ws)
        if connected:
            if not self._closing:
                self.reconnects += 1
            self.state = ConnectionState.DISCONNECTED
            await self._emit(ConnectionStateChanged(ConnectionState.DISCONNECTED, code, reason))
        if isinstance(failure, TerminalDisconnectError):
            raise failure
        if not self._closing and disconnect_action(code) is DisconnectAction.TERMINAL:
            raise TerminalDisconnectError(code, reason, describe_disconnect(code))
        log.info("disconnected from %s: %s %s%s", self.url, code, reason,
                 f" ({failure})" if failure else "")
        return connected

    def _close_code(self, ws: ClientConnection) -> tuple[int, str]:
        if self._local_close is not None:
            return self._local_close
        received = ws.protocol.close_rcvd
        if received is not None:
            return received.code, received.reason
        return 1006, "connection lost"

    async def _handshake(self, ws: ClientConnection) -> None:
        token = await _mint(self._token_provider)
        command_id = self._protocol.connect(token)
        future: asyncio.Future[ReplyEvent] = asyncio.get_running_loop().create_future()
        self._waiters[command_id] = future
        await self._flush(ws)
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                reply = await future
        except TimeoutError as exc:
            raise RealtimeTimeoutError("no reply to connect") from exc
        finally:
            self._waiters.pop(command_id, None)
        if isinstance(reply, ErrorReply):
            action = error_action(reply.code, reply.temporary)
            if action is ErrorAction.FAIL:
                raise TerminalDisconnectError(reply.code, reply.message,
                                              "the server refused the connect command")
            raise ReplyError(reply.code, reply.message, reply.temporary, method="connect")
        if not isinstance(reply, Connected):
            raise ProtocolError(f"unexpected reply to connect: {reply}")
        self.client_id = reply.client_id
        self._liveness = (reply.ping_interval + self.options.ping_grace
                          if reply.ping_interval > 0 else 0.0)
        if reply.expires:
            self._schedule_refresh("", reply.ttl)
        await self._subscribe_pending(ws)
        self.state = ConnectionState.CONNECTED
        self._connected.set()
        await self._emit(ConnectionStateChanged(ConnectionState.CONNECTED))

    async def _read_loop(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        sink = self._sink
        offer = self._offer
        recv = ws.recv
        try:
            # recv() in a loop rather than "async for": the same messages, and the end (a
            # closed connection raises ConnectionClosed, caught below), without an async
            # generator's step per message.
            while True:
                message = await recv()
                self._last_rx = loop.time()
                if isinstance(message, bytes):
                    protocol.drops["binary message"] += 1
                    continue
                events = protocol.receive(message)
                outgoing = protocol.data_to_send()
                if outgoing:
                    await self._send(ws, outgoing)  # the pong, when a ping came
                size = len(message)  # counted once per message, with its first publication
                for event in events:
                    if isinstance(event, Publication):
                        self.publications += 1
                        # The common cases of _emit, inlined: this runs once per message.
                        if offer is None:
                            try:
                                await sink(event)
                            except asyncio.CancelledError:
                                raise
                            except Exception:
                                self._sink_failed(event)
                        elif self._held:
                            await self._hold(event, size)
                        else:
                            try:
                                taken = offer(event)
                            except Exception:
                                self._sink_failed(event)
                                taken = True
                            if not taken:
                                await self._hold(event, size)
                        size = 0
                    else:
                        await self._dispatch(ws, event)
        except (websockets.ConnectionClosed, ConnectionClosedError):
            pass
        finally:
            # Commands still waiting (connect among them) will never be answered now.
            self._fail_waiters(ConnectionClosedError("the connection was lost"))

    async def _dispatch(self, ws: ClientConnection, event: object) -> None:
        if isinstance(event, ReplyEvent):
            future = self._waiters.get(event.id)
            if future is not None and not future.done():
                future.set_result(event)
        elif isinstance(event, Joined | Left | StreamGap):
            await self._emit(event)
        elif isinstance(event, Unsubscribed):
            await self._on_unsubscribed(event)
        elif isinstance(event, Disconnected):
            self._local_close = (event.code, event.reason)
            await ws.close()

    async def _on_unsubscribed(self, event: Unsubscribed) -> None:
        self._refresh_at.pop(event.channel, None)
        wanted = self._wanted.get(event.channel)
        if wanted is None:
            return
        if event.resubscribe:
            # Every subscribe mints a fresh token, which 2501 (expired) and 2502 need.
            self._subscribe_wakeup.set()
            return
        del self._wanted[event.channel]
        await self._emit(SubscriptionEnded(event.channel, event.code, event.reason))

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Close the socket when the server has been silent past its ping interval plus grace:
        a dead server or a frozen network sends no close frame."""
        if self._liveness <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            silent_for = loop.time() - self._last_rx
            if silent_for >= self._liveness:
                log.warning("no ping from %s for %.0fs; reconnecting", self.url, silent_for)
                self._local_close = (_CLOSE_NO_PING, "no ping")
                # abort: a dead peer would never answer a closing handshake.
                if ws.transport is not None:
                    ws.transport.abort()
                return
            await asyncio.sleep(self._liveness - silent_for + 0.01)

    # -- subscribing -------------------------------------------------------------------------

    async def _subscribe_loop(self, ws: ClientConnection) -> None:
        while True:
            await self._subscribe_wakeup.wait()
            self._subscribe_wakeup.clear()
            await self._subscribe_pending(ws)

    async def _subscribe_pending(self, ws: ClientConnection) -> None:
        """Send a subscribe for every wanted channel not subscribed yet, all in one write, then
        settle each reply."""
        self._subscribe_wakeup.clear()
        subscribed = self._protocol.subscriptions
        todo = [w for ch, w in self._wanted.items()
                if not (ch in subscribed and subscribed[ch].subscribed)]
        requests: list[tuple[_Wanted, int, asyncio.Future[ReplyEvent]]] = []
        loop = asyncio.get_running_loop()
        for wanted in todo:
            token = ""
            if self._sub_token_provider is not None:
                token = await _mint(self._sub_token_provider, wanted.channel)
            command_id = self._protocol.subscribe(
                wanted.channel, token, recoverable=self.options.recoverable,
                positioned=self.options.recoverable, join_leave=self.options.join_leave)
            future: asyncio.Future[ReplyEvent] = loop.create_future()
            self._waiters[command_id] = future
            requests.append((wanted, command_id, future))
        if not requests:
            return
        try:
            await self._flush(ws)
            for wanted, _command_id, future in requests:
                try:
                    async with asyncio.timeout(self.options.command_timeout):
                        reply = await future
                except TimeoutError:
                    log.warning("no reply to subscribe %s; retrying", wanted.channel)
                    self._retry_subscribe(wanted)
                    continue
                await self._settle_subscribe(wanted, reply)
        finally:
            for _wanted, command_id, _future in requests:
                self._waiters.pop(command_id, None)

    async def _settle_subscribe(self, wanted: _Wanted, reply: ReplyEvent) -> None:
        channel = wanted.channel
        if isinstance(reply, Subscribed):
            wanted.attempts = 0
            if reply.expires:
                self._schedule_refresh(channel, reply.ttl)
            if not wanted.first_result.done():
                wanted.first_result.set_result(None)
            return
        if isinstance(reply, ErrorReply):
            action = error_action(reply.code, reply.temporary)
            if action is not ErrorAction.FAIL:  # the retry mints a fresh token anyway
                self._protocol.forget(channel)
                self._retry_subscribe(wanted)
                return
            error: BotkitError = SubscriptionError(channel, reply.code, reply.message)
        else:
            error = ProtocolError(f"malformed subscribe reply for {channel}")
        self._wanted.pop(channel, None)
        self._protocol.forget(channel)
        if not wanted.first_result.done():
            wanted.first_result.set_exception(error)
        log.error("subscription to %s refused: %s", channel, error)
        await self._emit(SubscriptionFailed(channel, error))

    def _retry_subscribe(self, wanted: _Wanted) -> None:
        delay = self.options.min_reconnect_delay + self.options.backoff.delay(
            wanted.attempts, self._rng.random())
        wanted.attempts += 1
        asyncio.get_running_loop().call_later(delay, self._subscribe_wakeup.set)

    # -- token refresh -----------------------------------------------------------------------

    def _schedule_refresh(self, key: str, ttl: float) -> None:
        """Key "" is the connection token; any other key is a channel's subscription token."""
        loop = asyncio.get_running_loop()
        self._refresh_at[key] = loop.time() + _refresh_delay(ttl, self.options.refresh_margin)
        self._refresh_wakeup.set()

    async def _refresh_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._refresh_wakeup.clear()
            now = loop.time()
            due = [key for key, at in self._refresh_at.items() if at <= now]
            for key in due:
                del self._refresh_at[key]
                await self._refresh_one(key)
            if due:
                continue
            wait = min(self._refresh_at.values(), default=now + 3600.0) - now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._refresh_wakeup.wait()

    async def _refresh_one(self, key: str) -> None:
        try:
            if key:
                if self._sub_token_provider is None or key not in self._wanted:
                    return
                token = await _mint(self._sub_token_provider, key)
                result = await self._call(lambda: self._protocol.sub_refresh(key, token))
            else:
                token = await _mint(self._token_provider)
                result = await self._call(lambda: self._protocol.refresh(token))
        except (ReplyError, RealtimeTimeoutError, ProtocolError, TokenError) as exc:
            # Not fatal yet: the server allows a grace period after expiry. Try again soon;
            # if it never works the server ends the session and the reconnect mints anew.
            log.warning("token refresh for %s failed: %s", key or "the connection", exc)
            self._refresh_at[key] = asyncio.get_running_loop().time() + 1.0
            return
        if result.get("expires") is True and isinstance(result.get("ttl"), int):
            self._schedule_refresh(key, float(result["ttl"]))
