"""The client side of the Centrifugo v6 JSON protocol as a pure state machine.

Nothing here touches a socket, a clock or an event loop: the transport feeds it the text of each
WebSocket message (:meth:`ClientProtocol.receive`) and sends what :meth:`data_to_send` returns.
The machine numbers commands, matches replies to them, answers pings, and keeps each
subscription's stream position so that a resubscribe asks to recover exactly what was missed and
a publication seen twice is dropped. Anything malformed the server sends is counted and dropped
(or fails the one command it answered); it never raises out of :meth:`receive`.

This module holds the commands going out; the receive path is in
:mod:`botkit.protocol.incoming`, and the records both keep in :mod:`botkit.protocol.state`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from botkit.errors import ConnectionClosedError, ProtocolError
from botkit.protocol import _decode
from botkit.protocol.incoming import Receiver
from botkit.protocol.state import Pending, ProtocolState, Subscription
from botkit.protocol.timers import TimerEvent, TimerPolicy, Timers
from botkit.protocol.types import ClientInfo, StreamPosition

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ClientProtocol", "ProtocolState", "Subscription"]

_KNOWN_INFOS = _decode.KNOWN_INFOS  # how many client infos are kept (tests read it here)

DEFAULT_MAX_MESSAGE_SIZE = 65536
"""Centrifugo's default ``websocket.message_size_limit`` for one incoming WebSocket message."""

_MAX_COMMAND_ID = 2**32 - 1  # ids are uint32 on the wire
# allow_nan=False: NaN/Infinity are not JSON; the server would close the socket with 3501 (a
# terminal code) on such a frame, so the command raises ValueError before it is queued.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


class ClientProtocol(Receiver):
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
        self._pending: dict[int, Pending] = {}
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
        self._pending[command_id] = Pending(method, channel, recover_from)
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
