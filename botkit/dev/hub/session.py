"""One client connection's protocol state machine, server side, without I/O.

The shell (:mod:`botkit.dev.hub.connection`) feeds it the text of each WebSocket message
(:meth:`Session.receive`), fires its timers (:meth:`Session.fire_timers` at
:meth:`Session.next_deadline`) and writes what lands in :attr:`Session.outbox`. When the session
decides the connection must end it records the :class:`~botkit.dev.hub.codes.Disconnect` in
:attr:`Session.closing` and calls ``on_close``; the shell then calls :meth:`Session.release` and
sends the close frame. Rules and their order follow Centrifugo's ``client.go`` (reference §2-§7):
the first command must be connect, a command without id is a pong, one pong per ping, a failed
connect leaves the connection unusable, and timers close with 3502, 3012, 3005 or push 2501.
"""

from __future__ import annotations

import enum
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

from botkit.dev.hub import queries
from botkit.dev.hub.codes import (
    EXPIRED,
    NOT_AVAILABLE,
    UNSUBSCRIBE_EXPIRED,
    CommandError,
    Disconnect,
    DisconnectError,
    Unsubscribe,
)
from botkit.dev.hub.core import HUB_VERSION, Hub
from botkit.dev.hub.handshake import (
    server_side_options,
    subscribe_server_side,
    verify_connect,
    verify_refresh,
)
from botkit.dev.hub.outbox import Outbox
from botkit.dev.hub.subscriptions import Subscriptions
from botkit.dev.hub.wire import FieldError, Fields, dumps, loads, push, split_lines

__all__ = ["Session", "State"]

log = logging.getLogger("botkit.dev.hub")

# Dispatch order of Centrifugo's dispatchCommand: the first method present wins. "ping" is a
# known field that no handler serves (client pings are not part of protocol v2).
_METHODS = ("connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
            "history", "rpc", "send", "refresh", "sub_refresh")
_KNOWN_FIELDS = (*_METHODS, "ping")
_PING = "{}"


class State(enum.Enum):
    NEW = "new"
    CONNECTED = "connected"
    UNUSABLE = "unusable"
    """A connect failed: any further command closes the connection."""


class _Timer(enum.Enum):
    STALE = "stale"
    PING = "ping"
    PONG = "pong"
    EXPIRE = "expire"
    PRESENCE = "presence"


def _nothing() -> None:
    return None


class Session:
    def __init__(self, hub: Hub, *, on_close: Callable[[], None] = _nothing,
                 on_timers: Callable[[], None] = _nothing,
                 outbox_wakeup: Callable[[], None] = _nothing,
                 rng: random.Random | None = None) -> None:
        self.hub = hub
        self.config = hub.config
        self.client_id = str(uuid.uuid4())
        self.user = ""
        self.conn_info: Any = None
        self.state = State.NEW
        self.closing: Disconnect | None = None
        self.outbox = Outbox(self.config.queue_max_size, wakeup=outbox_wakeup)
        self.subs = Subscriptions(hub, self, lambda: self.conn_info)
        self._on_close = on_close
        self._on_timers = on_timers
        self._rng = rng or random.Random()
        self._expire_at = 0  # unix seconds; 0: the connection does not expire
        self._ping_outstanding = False
        self._deadlines: dict[_Timer, float] = {
            _Timer.STALE: hub.clock() + self.config.stale_close_delay}
        self._released = False

    # -- the shell's interface -----------------------------------------------------------------

    def receive(self, text: str) -> None:
        """Handle one WebSocket message: newline-separated commands, in order."""
        for line in split_lines(text):
            if self.closing is not None:
                return
            try:
                self._command(line)
            except DisconnectError as exc:
                self.disconnect(exc.disconnect)

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def fire_timers(self, now: float) -> None:
        for timer, at in sorted(self._deadlines.items(), key=lambda item: item[1]):
            if self.closing is not None or at > now:
                return
            if self._deadlines.get(timer) == at:
                del self._deadlines[timer]
                self._fire(timer, now)

    def disconnect(self, disconnect: Disconnect) -> None:
        """End the connection (idempotent). A slow connection's backlog is dropped, anything
        else queued is still written before the close frame."""
        if self.closing is not None:
            return
        self.closing = disconnect
        if disconnect == Disconnect.SLOW:
            self.outbox.clear()
        self._deadlines.clear()
        self._on_close()

    def release(self) -> None:
        """Leave every channel (presence, leave pushes) and the hub. Called once, by the shell,
        after the connection stopped reading."""
        if self._released:
            return
        self._released = True
        self.subs.unsubscribe_all()
        if self.state is State.CONNECTED:
            self.hub.remove_client(self)

    # -- what the hub delivers ---------------------------------------------------------------

    def _send(self, frame: str) -> None:
        if self.closing is None and not self.outbox.put(frame):
            self.disconnect(Disconnect.SLOW)

    def push_publication(self, channel: str, frame: str) -> None:
        if channel in self.subs.channels:
            self._send(frame)

    def push_join_leave(self, channel: str, frame: str) -> None:
        state = self.subs.get(channel)
        if state is not None and state.options.push_join_leave:
            self._send(frame)

    def server_unsubscribe(self, channel: str, unsubscribe: Unsubscribe) -> None:
        if self.closing is not None:
            return
        self.subs.unsubscribe(channel)
        # Sent even when the connection was not subscribed, as Centrifugo does.
        self._send(push(channel, "unsubscribe",
                        {"code": unsubscribe.code, "reason": unsubscribe.reason}))

    # -- commands ----------------------------------------------------------------------------

    def _command(self, line: str) -> None:
        try:
            raw = loads(line)
            if raw is None:
                raw = {}  # Go decodes `null` into an empty command: a pong
            command = Fields.of(raw, "command")
            command_id = command.uint32("id")
            for name in _KNOWN_FIELDS:
                command.obj(name)  # a method field of the wrong type fails the whole frame
            method = next((name for name in _METHODS if command.has(name)), None)
        except FieldError as exc:
            raise DisconnectError(Disconnect.BAD_REQUEST) from exc
        if self.state is State.UNUSABLE:
            raise DisconnectError(Disconnect.BAD_REQUEST)
        if self.state is State.NEW and method != "connect":
            raise DisconnectError(Disconnect.BAD_REQUEST)
        if command_id == 0 and method != "send":
            self._pong()
            return
        if method is None:
            raise DisconnectError(Disconnect.BAD_REQUEST)
        body = command.obj(method) or Fields({})
        try:
            self._dispatch(command_id, method, body)
        except CommandError as exc:
            if method == "connect":
                self.state = State.UNUSABLE
            self._send(dumps({"id": command_id, "error": exc.error.to_json()}))
        except FieldError as exc:
            raise DisconnectError(Disconnect.BAD_REQUEST) from exc

    def _reply(self, command_id: int, method: str, result: dict[str, Any]) -> None:
        self._send(dumps({"id": command_id, method: result}))

    def _dispatch(self, command_id: int, method: str, body: Fields) -> None:
        hub, subs, user = self.hub, self.subs, self.user
        if method == "connect":
            self._connect(command_id, body)
        elif method == "subscribe":
            result, state = subs.subscribe(body)
            self._reply(command_id, method, result)
            subs.announce_join(state)
        elif method == "unsubscribe":
            channel = body.text("channel")
            if not channel:
                raise DisconnectError(Disconnect.BAD_REQUEST)
            subs.unsubscribe(channel)
            self._reply(command_id, method, {})
        elif method == "publish":
            self._reply(command_id, method, queries.publish(hub, subs, user, body))
        elif method == "presence":
            self._reply(command_id, method, queries.presence(hub, subs, user, body))
        elif method == "presence_stats":
            self._reply(command_id, method, queries.presence_stats(hub, subs, user, body))
        elif method == "history":
            self._reply(command_id, method, queries.history(hub, subs, user, body))
        elif method == "rpc":
            raise CommandError(NOT_AVAILABLE)  # Centrifugo OSS without an RPC proxy
        elif method == "send":
            raise DisconnectError(Disconnect.NOT_AVAILABLE)  # no async message handler
        elif method == "refresh":
            self._reply(command_id, method, self._refresh(body))
        else:
            self._reply(command_id, method, subs.sub_refresh(body))

    # -- connect and refresh -----------------------------------------------------------------

    def _connect(self, command_id: int, request: Fields) -> None:
        if self.state is not State.NEW:
            raise DisconnectError(Disconnect.BAD_REQUEST)
        token = request.text("token")
        if not token:  # anonymous connections are off, as in the seed's config
            raise DisconnectError(Disconnect.BAD_REQUEST)
        claims = verify_connect(self.hub, token)
        recover = request.obj_map("subs")
        wanted = server_side_options(self.hub, claims, recover)
        if len(wanted) > self.config.channel_limit:
            raise DisconnectError(Disconnect.CHANNEL_LIMIT)
        now = int(self.hub.wall())
        if claims.expire_at and claims.expire_at < now:
            raise CommandError(EXPIRED)
        self.user, self.conn_info, self._expire_at = claims.user, claims.info, claims.expire_at
        self.state = State.CONNECTED
        self.hub.add_client(self)
        result: dict[str, Any] = {"client": self.client_id, "version": HUB_VERSION}
        if claims.expire_at:
            result["expires"] = True
            if claims.expire_at > now:
                result["ttl"] = claims.expire_at - now
        if self.config.ping_interval:
            result["ping"] = int(self.config.ping_interval)
        if self.config.pong_timeout:
            result["pong"] = True
        states = subscribe_server_side(self.hub, self.subs, self, wanted, recover)
        if states:
            result["subs"] = {state.channel: sub for state, sub in states}
        self._reply(command_id, "connect", result)
        for state, _ in states:
            self.subs.announce_join(state)
        self._schedule_after_connect(now)

    def _schedule_after_connect(self, now: int) -> None:
        clock, config = self.hub.clock(), self.config
        self._deadlines.pop(_Timer.STALE, None)
        # The first ping and presence check are spread over [interval/2, interval], so that
        # many clients reconnecting together do not ping in lockstep.
        interval = config.presence_update_interval
        self._deadlines[_Timer.PRESENCE] = clock + self._rng.uniform(interval / 2, interval)
        if config.ping_interval:
            self._deadlines[_Timer.PING] = clock + self._rng.uniform(
                config.ping_interval / 2, config.ping_interval)
        if self._expire_at:
            self._deadlines[_Timer.EXPIRE] = (clock + (self._expire_at - now)
                                              + config.expired_close_delay)
        self._on_timers()

    def _refresh(self, request: Fields) -> dict[str, Any]:
        claims = verify_refresh(self.hub, request.text("token"), self.user)
        if self.subs.token_channels_changed(claims.subs):
            raise DisconnectError(Disconnect.INSUFFICIENT_STATE)  # reconnect to pick them up
        now = int(self.hub.wall())
        result: dict[str, Any] = {}
        # A token without expiry leaves the old expiry in place: Centrifugo does the same.
        if claims.expire_at:
            ttl = claims.expire_at - now
            if ttl <= 0:
                raise CommandError(EXPIRED)
            result = {"expires": True, "ttl": ttl}
            self._expire_at = claims.expire_at
            if claims.info is not None:
                self.conn_info = claims.info
            self._deadlines[_Timer.EXPIRE] = (self.hub.clock() + ttl
                                              + self.config.expired_close_delay)
            self._on_timers()
        return result

    # -- ping, pong and the other timers --------------------------------------------------------

    def _pong(self) -> None:
        if not self._ping_outstanding:
            # A pong nobody asked for: the client is broken, Centrifugo closes for good.
            raise DisconnectError(Disconnect.BAD_REQUEST)
        self._ping_outstanding = False

    def _fire(self, timer: _Timer, now: float) -> None:
        config = self.config
        if timer is _Timer.STALE:
            if self.state is not State.CONNECTED:
                self.disconnect(Disconnect.STALE)
        elif timer is _Timer.PING:
            self._send(_PING)
            self._ping_outstanding = True
            if config.pong_timeout:
                self._deadlines[_Timer.PONG] = now + config.pong_timeout
            self._deadlines[_Timer.PING] = now + config.ping_interval
        elif timer is _Timer.PONG:
            if self._ping_outstanding:
                self.disconnect(Disconnect.NO_PONG)
        elif timer is _Timer.EXPIRE:
            if self._expire_at and self._expire_at <= int(self.hub.wall()):
                self.disconnect(Disconnect.EXPIRED)
        else:
            self._check_subscriptions()
            self._deadlines[_Timer.PRESENCE] = now + config.presence_update_interval

    def _check_subscriptions(self) -> None:
        """The presence timer's duty: end subscriptions whose token was not refreshed in time
        (client-side: push 2501 so the client subscribes again with a new token; a server-side
        one can only be renewed by reconnecting: close 3006)."""
        expired = self.subs.expired(int(self.hub.wall()), self.config.expired_sub_close_delay)
        for state in expired:
            if state.server_side:
                self.disconnect(Disconnect.SUB_EXPIRED)
                return
            self.server_unsubscribe(state.channel, UNSUBSCRIBE_EXPIRED)

