"""Events a realtime client delivers besides the protocol's own (publications, joins, leaves,
stream gaps): changes of the connection and of subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from botkit.errors import BotkitError
from botkit.protocol.events import Joined, Left, StreamGap
from botkit.protocol.types import Publication, StreamPosition

__all__ = [
    "ClientEvent",
    "ConnectionState",
    "ConnectionStateChanged",
    "SubscriptionEnded",
    "SubscriptionFailed",
    "SubscriptionStarted",
]


class ConnectionState(Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    """Lost; a reconnect is on its way."""
    CLOSED = "closed"
    """For good: closed by us, or refused by the server with a terminal code."""


@dataclass(frozen=True, slots=True)
class ConnectionStateChanged:
    state: ConnectionState
    code: int = 0
    reason: str = ""
    error: BotkitError | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionFailed:
    """The server refused a subscription for good (for example permission denied)."""

    channel: str
    error: BotkitError


@dataclass(frozen=True, slots=True)
class SubscriptionEnded:
    """The server ended a subscription on purpose (unsubscribe push below 2500)."""

    channel: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SubscriptionStarted:
    """A channel was (re)subscribed on a connection (with ``ClientOptions.subscription_events``).

    Delivered before the publications the subscribe recovered (and before a StreamGap, when it
    could not recover). ``position`` is where the stream stands once those are applied: every
    publication up to it was published before this subscribe. None for a channel without
    history. ``recovering``: the subscribe asked to recover from a known position."""

    channel: str
    position: StreamPosition | None
    recovering: bool


ClientEvent = (Publication | Joined | Left | StreamGap | ConnectionStateChanged
               | SubscriptionFailed | SubscriptionEnded | SubscriptionStarted)
