"""The realtime transport: a WebSocket connection to Xshathra Realtime that survives drops."""

from __future__ import annotations

from botkit.realtime.client import (
    ClientOptions,
    RealtimeClient,
    SubscriptionTokenProvider,
    TokenProvider,
)
from botkit.realtime.events import (
    ClientEvent,
    ConnectionState,
    ConnectionStateChanged,
    SubscriptionEnded,
    SubscriptionFailed,
)

__all__ = [
    "ClientEvent",
    "ClientOptions",
    "ConnectionState",
    "ConnectionStateChanged",
    "RealtimeClient",
    "SubscriptionEnded",
    "SubscriptionFailed",
    "SubscriptionTokenProvider",
    "TokenProvider",
]
