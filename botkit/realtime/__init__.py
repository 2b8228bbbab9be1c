"""The realtime transport: a WebSocket connection to Xshathra Realtime that survives drops."""

from __future__ import annotations

from botkit.realtime.client import RealtimeClient
from botkit.realtime.events import (
    ClientEvent,
    ConnectionState,
    ConnectionStateChanged,
    SubscriptionEnded,
    SubscriptionFailed,
    SubscriptionStarted,
)
from botkit.realtime.options import ClientOptions, SubscriptionTokenProvider, TokenProvider

__all__ = [
    "ClientEvent",
    "ClientOptions",
    "ConnectionState",
    "ConnectionStateChanged",
    "RealtimeClient",
    "SubscriptionEnded",
    "SubscriptionFailed",
    "SubscriptionStarted",
    "SubscriptionTokenProvider",
    "TokenProvider",
]
