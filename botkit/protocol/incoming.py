"""The receive path of :class:`~botkit.protocol.client.ClientProtocol`: each WebSocket message
the server sends, read into events. Replies are matched to their pending commands, pings answered,
and pushes read; a subscription's stream position advances past each publication so that one seen
twice is dropped. Anything malformed is counted in ``drops`` (or fails the one command it
answered); nothing raises out of :meth:`Receiver.receive`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

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
from botkit.protocol.state import Pending, ProtocolState, Subscription
from botkit.protocol.timers import Timers
from botkit.protocol.types import ClientInfo, Publication, StreamPosition

__all__ = ["Receiver"]

# Module globals, not attribute lookups: the receive path calls them per frame.
_Malformed = _decode.Malformed
_client_info = _decode.client_info
_field = _decode.field
_loads = _decode.loads
_new_position = _decode.new_position
_object = _decode.object_field
_offset = _decode.uint
_publication = _decode.publication

_PONG = "{}"


class Receiver:
    """The incoming half of :class:`~botkit.protocol.client.ClientProtocol`, which sets up the
    state below in its ``__init__``."""

    state: ProtocolState
    drops: Counter[str]
    timers: Timers
    _pending: dict[int, Pending]
    _outgoing: list[str]
    _pong: bool
    _subscriptions: dict[str, Subscription]
    _infos: dict[tuple[str, str], ClientInfo]
    _now: float

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

    def _reply_events(self, command_id: int, pending: Pending,
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

    def _subscribed(self, command_id: int, pending: Pending,
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
