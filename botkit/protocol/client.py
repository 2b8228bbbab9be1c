"""The client side of the Centrifugo v6 JSON protocol as a pure state machine.

Nothing here touches a socket, a clock or an event loop: the transport feeds it the text of each
WebSocket message (:meth:`ClientProtocol.receive`) and sends what :meth:`data_to_send` returns.
The machine numbers commands, matches replies to them, answers pings, and keeps each
subscription's stream position so that a resubscribe asks to recover exactly what was missed and
a publication seen twice is dropped. Anything malformed the server sends is counted and dropped
(or fails the one command it answered); it never raises out of :meth:`receive`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botkit.errors import ConnectionClosedError, ProtocolError
from botkit.protocol import _decode
from botkit.protocol.codes import UnsubscribeAction, unsubscribe_action
from botkit.protocol.events import (
    Connected,
    Disconnected,
    ErrorReply,
    Event,
    Joined,
    Left,
    MalformedReply,
    Ping,
    Reply,
    ServerSubscribed,
    StreamGap,
    Subscribed,
    Unsubscribed,
)
from botkit.protocol.timers import TimerEvent, TimerPolicy, Timers
from botkit.protocol.types import ClientInfo, Publication, StreamPosition

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ClientProtocol", "ProtocolState", "Subscription"]

# Module globals, not attribute lookups: the receive path calls them per frame.
_Malformed = _decode.Malformed
_KNOWN_INFOS = _decode.KNOWN_INFOS
_client_info = _decode.client_info
_field = _decode.field
_loads = _decode.loads
_new_position = _decode.new_position
_object = _decode.object_field
_offset = _decode.uint
_publication = _decode.publication

DEFAULT_MAX_MESSAGE_SIZE = 65536
"""Centrifugo's default ``websocket.message_size_limit`` for one incoming WebSocket message."""

_MAX_COMMAND_ID = 2**32 - 1  # ids are uint32 on the wire
_PONG = "{}"
# allow_nan=False: NaN/Infinity are not JSON; the server would close the socket with 3501 (a
# terminal code) on such a frame, so the command raises ValueError before it is queued.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


class ProtocolState(Enum):
    """Where one socket's protocol stands (the realtime client's own ConnectionState spans
    reconnects and is another thing)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(slots=True)
class Subscription:
    """What the protocol remembers about one channel across reconnects."""

    channel: str
    recoverable: bool = False
    position: StreamPosition | None = None
    subscribed: bool = False


@dataclass(frozen=True, slots=True)
class _Pending:
    method: str
    channel: str = ""
    recover_from: StreamPosition | None = None


class ClientProtocol:
    """One client connection's protocol state. Reusable across reconnects: call
    :meth:`connection_lost` when a socket dies and :meth:`connect` on the next one."""

    def __init__(self, *, name: str = "botkit", version: str = "",
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 timers: TimerPolicy | None = None) -> None:
        self.name = name[:16]
        self.version = version[:64]
        self.max_message_size = max_message_size
        self.state = ProtocolState.DISCONNECTED
        self.drops: Counter[str] = Counter()
        """Frames dropped, by reason; a drop is counted, never raised."""
        self._next_id = 1
        self._pending: dict[int, _Pending] = {}
        self._outgoing: list[str] = []
        self._pong = False
        self._subscriptions: dict[str, Subscription] = {}
        self._infos: dict[tuple[str, str], ClientInfo] = {}
        self.timers = Timers(timers)
        """Deadlines as data; the transport drives them with :meth:`next_deadline` and
        :meth:`fire_timers`."""
        self._now = 0.0  # the time the caller gave with the message being received

    # -- state -------------------------------------------------------------------------------

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return self._subscriptions

    def position(self, channel: str) -> StreamPosition | None:
        sub = self._subscriptions.get(channel)
        return sub.position if sub else None

    def pending_ids(self) -> list[int]:
        return list(self._pending)

    def connection_lost(self) -> list[int]:
        """The socket is gone. Returns the ids of the commands that will never be answered;
        subscriptions keep their positions so the next connection can recover them."""
        lost = list(self._pending)
        self._pending.clear()
        self._outgoing.clear()
        self._pong = False
        self.state = ProtocolState.DISCONNECTED
        self.timers.connection_lost()
        for sub in self._subscriptions.values():
            sub.subscribed = False
        return lost

    # -- timers ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`fire_timers` should next be called (None: no deadline is set)."""
        return self.timers.next_deadline()

    def fire_timers(self, now: float) -> list[TimerEvent]:
        """The timer events due at ``now`` (the caller's clock, as given everywhere else)."""
        return self.timers.fire(now)

    # -- commands ----------------------------------------------------------------------------

    def _command(self, method: str, body: dict[str, Any], *, channel: str = "",
                 recover_from: StreamPosition | None = None) -> int:
        state = self.state
        # A subscribe may follow connect in the same message (the server handles frames in
        # order), so a connection is subscribed in one round trip.
        if state is not ProtocolState.CONNECTED and method != "connect" and not (
                method == "subscribe" and state is ProtocolState.CONNECTING):
            raise ConnectionClosedError(f"cannot send {method}: the connection is not open")
        command_id = self._next_id
        frame = _dumps({"id": command_id, method: body})
        if len(frame) > self.max_message_size:
            raise ProtocolError(
                f"{method} command is {len(frame)} bytes; the server accepts at most "
                f"{self.max_message_size} per message")
        self._next_id = command_id + 1 if command_id < _MAX_COMMAND_ID else 1
        self._pending[command_id] = _Pending(method, channel, recover_from)
        self._outgoing.append(frame)
        return command_id

    def connect(self, token: str, *, data: Any = None, now: float = 0.0) -> int:
        """Start a connection on a fresh socket: the first command must be connect."""
        if self.state is not ProtocolState.DISCONNECTED:
            raise ProtocolError("connect was already sent on this connection")
        body: dict[str, Any] = {"token": token, "name": self.name}
        if self.version:
            body["version"] = self.version
        if data is not None:
            body["data"] = data
        command_id = self._command("connect", body)
        self.state = ProtocolState.CONNECTING
        self.timers.connect_sent(now)
        return command_id

    def subscribe(self, channel: str, token: str = "", *, recoverable: bool = True,
                  positioned: bool = True, join_leave: bool = False, now: float = 0.0) -> int:
        """Subscribe, or subscribe again after a reconnect: a known position is sent with
        ``recover`` so the server replays what this client missed. Allowed right after
        connect; the reply is due by ``now`` plus the command timeout."""
        sub = self._subscriptions.get(channel)
        body: dict[str, Any] = {"channel": channel}
        if token:
            body["token"] = token
        if recoverable:
            body["recoverable"] = True
        if positioned:
            body["positioned"] = True
        if join_leave:
            body["join_leave"] = True
        recover_from = sub.position if sub is not None and sub.recoverable else None
        if recover_from is not None:
            body.update(recover=True, epoch=recover_from.epoch, offset=recover_from.offset)
        command_id = self._command("subscribe", body, channel=channel,
                                   recover_from=recover_from)
        # Only a command that was queued is remembered: one that raised changes nothing.
        self._subscriptions.setdefault(channel, Subscription(channel))
        self.timers.subscribe_sent(command_id, channel, now)
        return command_id

    def seed(self, channel: str, position: StreamPosition) -> bool:
        """Recover ``channel`` from ``position`` on its first subscribe, as if this client had
        been subscribed up to there (a position an earlier process stored). False, and nothing
        changes, when the channel is already known: its own position is newer."""
        if channel in self._subscriptions:
            return False
        self._subscriptions[channel] = Subscription(channel, recoverable=True,
                                                    position=position)
        return True

    def unsubscribe(self, channel: str) -> int:
        """Leave a channel. Raises like every command when the connection is not open and
        then forgets nothing; :meth:`forget` drops the state without telling the server."""
        command_id = self._command("unsubscribe", {"channel": channel}, channel=channel)
        self.forget(channel)
        return command_id

    def forget(self, channel: str) -> None:
        """Drop a subscription's state without a command (the server already ended it)."""
        self._subscriptions.pop(channel, None)
        self.timers.forget(channel)

    def publish(self, channel: str, data: Any) -> int:
        return self._command("publish", {"channel": channel, "data": data}, channel=channel)

    def presence(self, channel: str) -> int:
        return self._command("presence", {"channel": channel}, channel=channel)

    def presence_stats(self, channel: str) -> int:
        return self._command("presence_stats", {"channel": channel}, channel=channel)

    def history(self, channel: str, *, limit: int, since: StreamPosition | None = None,
                reverse: bool = False) -> int:
        body: dict[str, Any] = {"channel": channel, "limit": limit}
        if since is not None:
            body["since"] = {"offset": since.offset, "epoch": since.epoch}
        if reverse:
            body["reverse"] = True
        return self._command("history", body, channel=channel)

    def refresh(self, token: str) -> int:
        return self._command("refresh", {"token": token})

    def sub_refresh(self, channel: str, token: str) -> int:
        return self._command("sub_refresh", {"channel": channel, "token": token},
                             channel=channel)

    def data_to_send(self) -> list[str]:
        """WebSocket text messages to send now: queued frames joined with newlines, packed up
        to the server's per-message limit."""
        if not self._outgoing:
            return []
        frames, self._outgoing = self._outgoing, []
        messages: list[str] = []
        batch: list[str] = []
        size = 0
        for frame in frames:
            if batch and size + 1 + len(frame) > self.max_message_size:
                messages.append("\n".join(batch))
                batch, size = [], 0
            size += len(frame) + (1 if batch else 0)
            batch.append(frame)
        messages.append("\n".join(batch))
        return messages

    # -- incoming ----------------------------------------------------------------------------

    def receive(self, text: str, now: float = 0.0) -> list[Event]:
        """Events from one WebSocket message (one or more newline-joined frames) that arrived
        at ``now``: any message proves the server alive."""
        self._now = now
        self.timers.heard(now)
        events: list[Event] = []
        body = text.rstrip("\n")
        if not body:
            self.drops["empty message"] += 1
            return events
        subscriptions, infos = self._subscriptions, self._infos
        for line in body.split("\n"):
            try:
                frame = _loads(line)
            except (ValueError, RecursionError):
                self.drops["invalid JSON"] += 1
                continue
            if not isinstance(frame, dict):
                self.drops["frame is not an object"] += 1
                continue
            try:
                push = frame.get("push")
                if type(push) is not dict or "pub" not in push:
                    self._receive_frame(frame, events)
                    continue
                # A publication, the frame of a busy room: _receive_push and _advance inline,
                # with the same checks in the same order (tests/protocol/test_fast_paths.py).
                channel = push.get("channel", "")
                if type(channel) is not str:
                    channel = _field(push, "channel", str, "")
                publication = _publication(channel, push["pub"], infos)
                sub = subscriptions.get(channel)
                if sub is None or not sub.subscribed:
                    self.drops["publication for a channel not subscribed"] += 1
                    continue
                position, offset = sub.position, publication.offset
                if position is None or offset == 0:
                    events.append(publication)
                elif offset > position.offset:
                    sub.position = _new_position(offset, position.epoch)
                    events.append(publication)
                else:
                    self.drops["duplicate publication"] += 1
            except _Malformed as exc:
                self.drops[str(exc)] += 1
        return events

    def _receive_frame(self, frame: dict[str, Any], events: list[Event]) -> None:
        if "push" in frame:
            self._receive_push(_object(frame, "push"), events)
        elif "id" in frame:
            self._receive_reply(frame, events)
        elif not frame:
            events.append(self._ping())
        else:
            raise _Malformed("frame is neither a reply, a push nor a ping")

    def _ping(self) -> Ping:
        if self.state is ProtocolState.CONNECTED and self._pong:
            self._outgoing.append(_PONG)
            return Ping(pong_queued=True)
        return Ping()

    def _receive_reply(self, frame: dict[str, Any], events: list[Event]) -> None:
        command_id = frame["id"]
        # type() rather than isinstance(): True would otherwise match command 1.
        pending = self._pending.pop(command_id, None) if type(command_id) is int else None
        if pending is None:
            raise _Malformed("reply to no pending command")
        if pending.method == "subscribe":
            self.timers.subscribe_answered(command_id)
        try:
            events.extend(self._reply_events(command_id, pending, frame))
        except _Malformed as exc:
            if pending.method == "connect":
                self._connect_failed()
            events.append(MalformedReply(command_id, pending.method, str(exc)))

    def _reply_events(self, command_id: int, pending: _Pending,
                      frame: dict[str, Any]) -> list[Event]:
        method = pending.method
        if "error" in frame:
            error = _object(frame, "error")
            if method == "connect":
                # After a failed connect the server treats the socket as unusable.
                self._connect_failed()
            return [ErrorReply(command_id, method, _field(error, "code", int, 0),
                               _field(error, "message", str, ""),
                               _field(error, "temporary", bool, False), pending.channel)]
        result = _object(frame, method)
        if method == "connect":
            return [self._connected(command_id, result)]
        if method == "subscribe":
            return self._subscribed(command_id, pending, result)
        if method == "refresh" or method == "sub_refresh":
            self._refreshed(pending.channel, result)
        return [Reply(command_id, method, result)]

    def _connect_failed(self) -> None:
        self.state = ProtocolState.DISCONNECTED
        self.timers.connection_lost()  # nothing sent on this socket will be answered now

    def _refreshed(self, channel: str, result: dict[str, Any]) -> None:
        expires: bool = _field(result, "expires", bool, False)
        ttl = float(_offset(result, "ttl"))
        if channel and channel not in self._subscriptions:
            return  # unsubscribed while the refresh was in flight
        if expires:
            self.timers.token_expires(channel, self._now, ttl)
        else:
            self.timers.token_lasts(channel)

    def _connected(self, command_id: int, result: dict[str, Any]) -> Connected:
        event = Connected(
            command_id, "connect",
            client_id=_field(result, "client", str, ""),
            version=_field(result, "version", str, ""),
            ping_interval=float(_offset(result, "ping")),
            pong=_field(result, "pong", bool, False),
            expires=_field(result, "expires", bool, False),
            ttl=float(_offset(result, "ttl")))
        self.state = ProtocolState.CONNECTED
        self._pong = event.pong
        self.timers.connected(self._now, event.ping_interval)
        if event.expires:
            self.timers.token_expires("", self._now, event.ttl)
        return event

    def _subscribed(self, command_id: int, pending: _Pending,
                    result: dict[str, Any]) -> list[Event]:
        channel = pending.channel
        recoverable = _field(result, "recoverable", bool, False)
        epoch = _field(result, "epoch", str, "")
        offset = _offset(result)
        recovered = _field(result, "recovered", bool, False)
        raw_publications = _field(result, "publications", list, [])
        publications = [_publication(channel, raw) for raw in raw_publications]
        position = StreamPosition(offset, epoch) if recoverable else None
        event = Subscribed(command_id, "subscribe", channel, recoverable, position,
                           was_recovering=_field(result, "was_recovering", bool, False),
                           recovered=recovered, expires=_field(result, "expires", bool, False),
                           ttl=float(_offset(result, "ttl")))
        sub = self._subscriptions.get(channel)
        if sub is None:  # unsubscribed while the subscribe was in flight
            return [event]
        sub.recoverable, sub.subscribed = recoverable, True
        if event.expires:
            self.timers.token_expires(channel, self._now, event.ttl)
        events: list[Event] = [event]
        lost_from = pending.recover_from
        if lost_from is not None and not recovered:
            sub.position = position
            events.append(StreamGap(channel, lost_from, position))
            return events
        # After a successful recovery the reply's offset is the client's own; the recovered
        # publications then advance it. A fresh subscription starts at the stream's top.
        sub.position = position if lost_from is None else lost_from
        events.extend(p for p in publications if self._advance(sub, p))
        return events

    def _advance(self, sub: Subscription, publication: Publication) -> bool:
        """Move the stream position past ``publication``; False when it was already seen."""
        position = sub.position
        if position is None or publication.offset == 0:
            return True
        if publication.offset <= position.offset:
            self.drops["duplicate publication"] += 1
            return False
        sub.position = _new_position(publication.offset, position.epoch)
        return True

    def _receive_push(self, push: dict[str, Any], events: list[Event]) -> None:
        """Every push but a publication (read in :meth:`receive`)."""
        channel: str = _field(push, "channel", str, "")
        if "join" in push:
            events.append(Joined(channel, _client_info(_object(push, "join").get("info"))))
        elif "leave" in push:
            events.append(Left(channel, _client_info(_object(push, "leave").get("info"))))
        elif "unsubscribe" in push:
            events.append(self._unsubscribed(channel, _object(push, "unsubscribe")))
        elif "subscribe" in push:
            body = _object(push, "subscribe")
            recoverable = _field(body, "recoverable", bool, False)
            position = (StreamPosition(_offset(body), _field(body, "epoch", str, ""))
                        if recoverable else None)
            events.append(ServerSubscribed(channel, recoverable, position))
        elif "disconnect" in push:
            body = _object(push, "disconnect")
            events.append(Disconnected(_field(body, "code", int, 0),
                                       _field(body, "reason", str, "")))
        else:
            raise _Malformed("push of an unknown kind")

    def _unsubscribed(self, channel: str, body: dict[str, Any]) -> Unsubscribed:
        code: int = _field(body, "code", int, 0)
        reason: str = _field(body, "reason", str, "")  # parsed before any state changes
        resubscribe = unsubscribe_action(code) is UnsubscribeAction.RESUBSCRIBE
        sub = self._subscriptions.get(channel)
        if sub is not None:
            sub.subscribed = False
            if not resubscribe:
                del self._subscriptions[channel]
        return Unsubscribed(channel, code, reason, resubscribe)
