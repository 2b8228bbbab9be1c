"""Events the client protocol hands to its transport: replies to commands and server pushes.

A publication arrives as :class:`botkit.protocol.types.Publication` itself (no wrapper), because
it is by far the most frequent event and the hot path should allocate one object per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botkit.protocol.types import ClientInfo, Publication, StreamPosition

__all__ = [
    "Connected",
    "Disconnected",
    "ErrorReply",
    "Event",
    "Joined",
    "Left",
    "MalformedReply",
    "Ping",
    "Reply",
    "ReplyEvent",
    "ServerSubscribed",
    "StreamGap",
    "Subscribed",
    "Unsubscribed",
]


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """Base of every event that answers a command: ``id`` is the command's id."""

    id: int
    method: str


@dataclass(frozen=True, slots=True)
class Reply(ReplyEvent):
    """A successful reply; ``result`` is the decoded result object."""

    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorReply(ReplyEvent):
    """The server answered the command with an error."""

    code: int
    message: str
    temporary: bool = False
    channel: str = ""


@dataclass(frozen=True, slots=True)
class MalformedReply(ReplyEvent):
    """The reply to a pending command could not be understood; the command failed."""

    reason: str


@dataclass(frozen=True, slots=True)
class Connected(ReplyEvent):
    client_id: str
    version: str
    ping_interval: float
    """Seconds between server pings; 0 when the server does not ping."""
    pong: bool
    """Whether the server wants a pong for every ping."""
    expires: bool = False
    ttl: float = 0.0
    """Seconds until the connection token must be refreshed, when ``expires``."""


@dataclass(frozen=True, slots=True)
class Subscribed(ReplyEvent):
    channel: str
    recoverable: bool
    position: StreamPosition | None
    was_recovering: bool = False
    recovered: bool = False
    expires: bool = False
    ttl: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamGap:
    """Recovery after a reconnect was impossible: publications between ``lost_from`` and
    ``resumed_at`` may be missing (history expired, trimmed, or the stream was reset)."""

    channel: str
    lost_from: StreamPosition
    resumed_at: StreamPosition | None


@dataclass(frozen=True, slots=True)
class Joined:
    channel: str
    info: ClientInfo


@dataclass(frozen=True, slots=True)
class Left:
    channel: str
    info: ClientInfo


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The server ended a subscription; ``resubscribe`` says whether to subscribe again."""

    channel: str
    code: int
    reason: str
    resubscribe: bool


@dataclass(frozen=True, slots=True)
class ServerSubscribed:
    """The server subscribed this connection to a channel (server API ``subscribe``)."""

    channel: str
    recoverable: bool
    position: StreamPosition | None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """A disconnect push (non-WebSocket transports); on WebSocket a close frame says this."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ping:
    """The server's ping. The protocol has already queued the pong when one is due."""

    pong_queued: bool = field(default=False)


Event = (Reply | ErrorReply | MalformedReply | Connected | Subscribed | StreamGap | Publication
         | Joined | Left | Unsubscribed | ServerSubscribed | Disconnected | Ping)
