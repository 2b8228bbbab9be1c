"""Value types shared by the client protocol and the server API: who published, where a stream
stands, what history and presence hold. Frozen and slotted: they are created per message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ClientInfo",
    "HistoryResult",
    "PresenceStats",
    "Publication",
    "StreamPosition",
]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """The connection the server attests for a publication, join or leave."""

    user: str
    client: str
    conn_info: Any = None
    chan_info: Any = None


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a channel's stream stands: the last offset seen and the stream's epoch."""

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Publication:
    """One message in a channel. ``data`` is the decoded JSON payload; ``info`` is present only
    for client-side publishes; ``offset`` is 0 in channels without history."""

    channel: str
    data: Any
    offset: int = 0
    info: ClientInfo | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PresenceStats:
    num_clients: int
    num_users: int


@dataclass(frozen=True, slots=True)
class HistoryResult:
    publications: tuple[Publication, ...]
    position: StreamPosition
