"""What a :class:`~botkit.protocol.client.ClientProtocol` remembers: where its socket stands, each
channel's subscription across reconnects, and each command still waiting for its reply."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from botkit.protocol.types import StreamPosition

__all__ = ["Pending", "ProtocolState", "Subscription"]

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
class Pending:
    """A command sent and not yet answered."""

    method: str
    channel: str = ""
    recover_from: StreamPosition | None = None
