"""What every connection of one realtime client shares, and how one connection ended."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botkit.errors import BotkitError
from botkit.protocol import ClientProtocol
from botkit.realtime.delivery import Delivery
from botkit.realtime.options import ClientOptions, SubscriptionTokenProvider, TokenProvider
from botkit.realtime.subscriptions import Subscriptions

if TYPE_CHECKING:
    from botkit.realtime.connection import Connection

__all__ = [
    "CLOSE_ABNORMAL",
    "CLOSE_CONNECT_TIMEOUT",
    "CLOSE_NORMAL",
    "CLOSE_NO_PING",
    "CLOSE_PROTOCOL",
    "CLOSE_SUBSCRIBE_TIMEOUT",
    "CLOSE_TIMEOUT",
    "Counters",
    "Link",
    "Outcome",
]

# Close codes this client uses for its own reasons (4000-4499: the client reconnects).
CLOSE_NORMAL = 1000
CLOSE_ABNORMAL = 1006
CLOSE_NO_PING = 4001
CLOSE_PROTOCOL = 4002
CLOSE_SUBSCRIBE_TIMEOUT = 4003
CLOSE_CONNECT_TIMEOUT = 4004
CLOSE_TIMEOUT = 2.0
"""Seconds for a closing handshake (and for the WebSocket's own close timeout)."""


@dataclass(slots=True)
class Counters:
    reconnects: int = 0
    """How many times the connection was re-established after a loss."""
    publications: int = 0
    """Publications delivered (after de-duplication)."""


@dataclass(slots=True)
class Link:
    """What every connection of one client shares."""

    url: str
    options: ClientOptions
    protocol: ClientProtocol
    subscriptions: Subscriptions
    delivery: Delivery
    counters: Counters
    token_provider: TokenProvider
    sub_token_provider: SubscriptionTokenProvider | None
    on_connected: Callable[[Connection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a connection ended."""

    established: bool
    """The connection was reported CONNECTED: it was in service."""
    code: int
    reason: str
    failure: BotkitError | None = None
