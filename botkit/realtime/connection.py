"""One WebSocket from open to close: the asyncio shell around the sans-I/O protocol.

A reader takes the messages received since it last looked (one batch per read of the socket,
see :mod:`~botkit.realtime.websocket`), feeds each to :class:`~botkit.protocol.ClientProtocol`
and acts on its events; what the protocol queues to send is written at once (or when the
transport takes writes again); one loop timer fires at the protocol's next deadline, and the
connection acts on what :meth:`~botkit.protocol.ClientProtocol.fire_timers` reports (what must
be awaited, a resubscribe or a token refresh, in a short-lived task). The reader and that task
belong to one task group and end together, whatever ended the connection: the peer's
close frame, a reset, a failed send, a dead server, an overdue reply. :meth:`Connection.run`
never raises for any of these; it returns an :class:`Outcome` with the close code, which the
supervisor honours.

Connect and the subscribes of every wanted channel go out in the same message; the connection
counts as connected (``on_connected``) once the connect reply and the replies to those
subscribes are in: one round trip, however many channels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from websockets.exceptions import InvalidState

from botkit.errors import (
    BotkitError,
    ConnectionClosedError,
    ProtocolError,
    RealtimeTimeoutError,
    ReplyError,
    TerminalDisconnectError,
    TokenError,
)
from botkit.protocol import (
    Connected,
    ConnectTimedOut,
    Disconnected,
    ErrorAction,
    ErrorReply,
    Event,
    Joined,
    Left,
    LivenessLost,
    Ping,
    Publication,
    RefreshDue,
    ReplyEvent,
    ResubscribeDue,
    StreamGap,
    SubscribeTimedOut,
    TimerEvent,
    Unsubscribed,
    error_action,
)
from botkit.realtime.flag import Flag
from botkit.realtime.link import (
    CLOSE_ABNORMAL,
    CLOSE_CONNECT_TIMEOUT,
    CLOSE_NO_PING,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL,
    CLOSE_SUBSCRIBE_TIMEOUT,
    CLOSE_TIMEOUT,
    Link,
    Outcome,
)
from botkit.realtime.options import mint
from botkit.realtime.websocket import WebSocket
from botkit.redact import safe_url

__all__ = ["Connection"]

log = logging.getLogger("botkit.realtime")


class Connection:
    """One socket's reader, writer and timers, and the commands waiting for its replies."""

    def __init__(self, link: Link, ws: WebSocket) -> None:
        self.link = link
        self.client_id = ""
        self.open = False
        """The connect reply arrived: commands may be sent."""
        self.established = False
        """Reported CONNECTED: the connect reply and the replies to the subscribes sent with it
        are in. Only an established connection ends as DISCONNECTED."""
        self._ws = ws
        self._protocol = link.protocol
        self._waiters: dict[int, asyncio.Future[ReplyEvent]] = {}
        # Subscribes sent with connect, not answered yet; None once none is (an empty set is
        # 216 bytes a connection: bench/ S4).
        self._handshake: set[int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_work: list[ResubscribeDue | RefreshDue] = []  # due, to be awaited in turn
        self._worker: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None  # while the connection runs
        self._ended = Flag()
        self._local: tuple[int, str] | None = None
        self._failure: BotkitError | None = None
        ws.on_writable = self._send_out

    # -- the supervisor's and the facade's interface -------------------------------------------

    def end(self, code: int, reason: str, failure: BotkitError | None = None, *,
            abort: bool = False) -> None:
        """End the connection for a reason of ours (the first reason given wins)."""
        if self._ended.is_set():
            return
        self._local = (code, reason)
        self._failure = failure
        if abort:
            self._ws.abort()  # a dead peer would never answer a closing handshake
        self._ended.set()

    def kick(self) -> None:
        """Commands or deadlines were queued: send them, and arm the timer for them."""
        self._send_out()
        self._arm()

    async def request(self, build: Callable[[], int]) -> ReplyEvent:
        """Queue the command ``build`` makes and wait for its reply (bounded)."""
        if self._ended.is_set():
            raise ConnectionClosedError("the connection was lost")
        command_id = build()
        future: asyncio.Future[ReplyEvent] = asyncio.get_running_loop().create_future()
        self._waiters[command_id] = future
        self._send_out()
        timeout = self.link.options.command_timeout
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as exc:
            raise RealtimeTimeoutError(f"no reply within {timeout:.0f}s") from exc
        finally:
            self._waiters.pop(command_id, None)

    # -- the connection's life -----------------------------------------------------------------

    async def run(self) -> Outcome:
        protocol, link = self._protocol, self.link
        protocol.connection_lost()  # a fresh socket: no deadline or command of the last one
        link.subscriptions.connection_lost()
        try:
            try:
                await self._handshake_out()
            except TokenError as exc:
                self.end(CLOSE_NORMAL, "no connection token", exc)
            if not self._ended.is_set():
                # The connection owns its tasks (the reader; the timer work while there is
                # some) and awaits them here, without a TaskGroup (~0.5 KiB a connection,
                # bench/ S4): either one failing ends the connection (_failed).
                reader = self._reader = asyncio.get_running_loop().create_task(
                    self._read(), name="realtime reader")
                try:
                    self._start_work()
                    await self._ended.wait()
                finally:
                    self._reader = None
                    tasks = [reader] if self._worker is None else [reader, self._worker]
                    for task in tasks:
                        task.cancel()
                    await asyncio.wait(tasks)
        except Exception as exc:
            self._failed(exc)
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            protocol.connection_lost()
            link.subscriptions.connection_lost()
            closed = ConnectionClosedError("the connection was lost")
            for future in self._waiters.values():
                if not future.done():
                    future.set_exception(closed)
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    code, reason = self._local or (CLOSE_NORMAL, "")
                    await self._ws.close(code, reason)
            except Exception:
                # A peer that does not answer the closing handshake, or a code the peer sent
                # that may not be sent back: the socket goes anyway.
                self._ws.abort()
        code, reason = self._close_code()
        return Outcome(self.established, code, reason, self._failure)

    def _close_code(self) -> tuple[int, str]:
        if self._local is not None:
            return self._local
        received = self._ws.close_rcvd
        if received is not None:
            return received.code, received.reason
        return CLOSE_ABNORMAL, "connection lost"

    async def _handshake_out(self) -> None:
        """Connect and every wanted channel's subscribe, in one message."""
        token = await mint(self.link.token_provider)
        self._protocol.connect(token, now=asyncio.get_running_loop().time())
        self._handshake = set(await self.link.subscriptions.send()) or None
        self.kick()

    def _failed(self, exc: Exception) -> None:
        # A bug of ours costs this connection (the supervisor reconnects), not the client.
        log.exception("realtime connection to %s failed unexpectedly", safe_url(self.link.url),
                      exc_info=exc)
        self.end(CLOSE_PROTOCOL, "internal error", ProtocolError(f"internal error: {exc!r}"))

    async def _read(self) -> None:
        try:
            protocol, link = self._protocol, self.link
            delivery = link.delivery
            offer_now, emit_declined = delivery.offer_now, delivery.emit_declined
            hold_now = delivery.hold_now if delivery.can_hold else None
            counters, drops = link.counters, protocol.drops
            clock = asyncio.get_running_loop().time
            receive, receive_message = self._ws.receive, protocol.receive
            # Cleared after each batch: waiting for the next, an idle connection would otherwise
            # keep its last messages, their decoded JSON and events (~0.7 KiB; bench/ S4).
            batch: list[str | bytes] | None
            message: Any
            events: Any
            event: Any
            while batch := await receive():
                now = clock()
                for message in batch:
                    if type(message) is not str:
                        drops["binary message"] += 1
                        continue
                    events = receive_message(message, now)
                    if not events:
                        continue
                    # Every event held in the read-ahead counts: a share of its message's size.
                    cost = len(message) if len(events) == 1 else len(message) // len(events)
                    for event in events:
                        if type(event) is Publication:
                            counters.publications += 1
                            if offer_now(event):
                                continue
                            if hold_now is None:
                                await emit_declined(event, cost)
                            elif hold_now(event, cost):
                                continue  # held in order; the reader reads on
                            else:
                                await delivery.wait_room()
                        else:
                            await self._dispatch(event, cost)
                        now = clock()  # the wait may have been long: liveness counts from now
                batch = message = events = event = None
            self._end_by_peer()
        except Exception as exc:
            self._failed(exc)


    def _end_by_peer(self) -> None:
        """The socket closed under us: the code is the one the peer sent, if any."""
        self._ended.set()

    def _send_out(self) -> None:
        """Write what the protocol queued, unless the transport pushes back (it calls this
        again once it takes writes) or the connection is ending."""
        protocol, ws = self._protocol, self._ws
        while not self._ended.is_set() and ws.writable:
            messages = protocol.data_to_send()
            if not messages:
                return
            try:
                for message in messages:
                    ws.send(message)
            except InvalidState:  # closing under us: the reader sees the rest
                self._end_by_peer()

    # -- timers: one loop timer for the protocol's next deadline, not a task per connection ---

    def _arm(self) -> None:
        """Arm the timer for the protocol's next deadline, unless it is armed for an earlier
        one (firing early costs a look at the deadlines, which re-arms it)."""
        if self._ended.is_set():
            return
        when = self._protocol.next_deadline()
        timer = self._timer
        if when is None or (timer is not None and timer.when() <= when):
            return
        if timer is not None:
            timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._ended.is_set():
            return
        try:
            for event in self._protocol.fire_timers(asyncio.get_running_loop().time()):
                if isinstance(event, ResubscribeDue | RefreshDue):
                    self._timer_work.append(event)  # these await a token or a send
                else:
                    self._on_deadline(event)
            self._start_work()
            self._arm()
        except Exception as exc:
            # As in the reader: a bug of ours costs this connection, not the client.
            log.exception("realtime timers of %s failed unexpectedly", safe_url(self.link.url))
            self.end(CLOSE_PROTOCOL, "internal error", ProtocolError(f"internal error: {exc!r}"))

    def _start_work(self) -> None:
        """Await what the timers made due, in order, in one task of the connection's group
        (made when there is some, and gone when it is done)."""
        if self._timer_work and self._worker is None and self._reader is not None:
            # Owned by the connection: run() cancels and awaits it as it ends.
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name="realtime timer work")

    async def _work(self) -> None:
        try:
            while self._timer_work:
                await self._on_timer(self._timer_work.pop(0))
        except Exception as exc:
            self._failed(exc)
        finally:
            self._worker = None

    def _on_deadline(self, event: TimerEvent) -> None:
        url = safe_url(self.link.url)
        if isinstance(event, LivenessLost):
            log.warning("nothing from %s for %.0fs; reconnecting", url, event.silent_for)
            self.end(CLOSE_NO_PING, "no ping", abort=True)
        elif isinstance(event, ConnectTimedOut):
            self.end(CLOSE_CONNECT_TIMEOUT, "no reply to connect",
                     RealtimeTimeoutError("no reply to connect"), abort=True)
        elif isinstance(event, SubscribeTimedOut):
            # A live server that leaves subscribes unanswered is in trouble: a new connection
            # subscribes them all again, with recovery, in one round trip.
            self.link.subscriptions.timed_out(event.channels)
            self.end(CLOSE_SUBSCRIBE_TIMEOUT, "subscribe timeout", RealtimeTimeoutError(
                f"{len(event.channels)} subscribe(s) unanswered"), abort=True)

    async def _on_timer(self, event: ResubscribeDue | RefreshDue) -> None:
        if isinstance(event, ResubscribeDue):
            self.link.subscriptions.retry_due(event.channels)
            if await self.link.subscriptions.send(event.channels):
                self.kick()
        else:
            await self._refresh(event)

    async def _refresh(self, event: RefreshDue) -> None:
        """Send a refresh; its reply reschedules the next one (a failure is retried soon, and
        the server allows a grace period after expiry)."""
        link, channel = self.link, event.channel
        try:
            if channel:
                if link.sub_token_provider is None or channel not in link.subscriptions:
                    self._protocol.timers.token_lasts(channel)  # nothing to refresh it with
                    return
                token = await mint(link.sub_token_provider, channel)
                self._protocol.sub_refresh(channel, token)
            else:
                token = await mint(link.token_provider)
                self._protocol.refresh(token)
        except (TokenError, ConnectionClosedError) as exc:
            log.warning("token refresh for %s failed: %s", channel or "the connection", exc)
            return
        self._send_out()

    async def _dispatch(self, event: Event, cost: int) -> None:
        if isinstance(event, ReplyEvent):
            self._arm()  # a reply may have set a deadline (a token's refresh)
            await self._on_reply(event)
        elif isinstance(event, Joined | Left | StreamGap):
            await self.link.delivery.emit(event, cost)
        elif isinstance(event, Ping):
            if event.pong_queued:
                self._send_out()
        elif isinstance(event, Unsubscribed):
            self._protocol.timers.forget(event.channel)
            if await self.link.subscriptions.on_unsubscribed(event):
                if await self.link.subscriptions.send([event.channel]):
                    self.kick()
            else:
                self._protocol.forget(event.channel)
        elif isinstance(event, Disconnected):
            self.end(event.code, event.reason)

    async def _on_reply(self, reply: ReplyEvent) -> None:
        method = reply.method
        if method == "subscribe":
            await self.link.subscriptions.settle(reply)
            handshake = self._handshake
            if handshake is not None:
                handshake.discard(reply.id)
                if not handshake:
                    self._handshake = None
            await self._maybe_connected()
        elif isinstance(reply, Connected):
            self.client_id = reply.client_id
            self.open = True
            # Channels wanted after connect went out follow now (not part of the handshake).
            if await self.link.subscriptions.send():
                self.kick()
            await self._maybe_connected()
        elif method == "connect":
            self._connect_refused(reply)
        else:
            future = self._waiters.get(reply.id)
            if future is not None and not future.done():
                future.set_result(reply)
            elif isinstance(reply, ErrorReply):
                log.warning("%s refused: %s %s", method, reply.code, reply.message)

    async def _maybe_connected(self) -> None:
        if self.open and not self._handshake and not self.established:
            self.established = True
            await self.link.on_connected(self)

    def _connect_refused(self, reply: ReplyEvent) -> None:
        if isinstance(reply, ErrorReply):
            if error_action(reply.code, reply.temporary) is ErrorAction.FAIL:
                failure: BotkitError = TerminalDisconnectError(
                    reply.code, reply.message, "the server refused the connect command")
            else:
                failure = ReplyError(reply.code, reply.message, reply.temporary,
                                     method="connect")
            self.end(CLOSE_NORMAL, "connect refused", failure)
        else:
            self.end(CLOSE_PROTOCOL, "malformed connect reply",
                     ProtocolError(f"unexpected reply to connect: {reply}"))
