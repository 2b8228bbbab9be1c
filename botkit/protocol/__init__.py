"""Sans-I/O client protocol of Xshathra Realtime (Centrifugo v6, JSON): commands, replies,
pushes, code classification and the backoff policy. No sockets, clocks or event loops here."""

from __future__ import annotations

from botkit.protocol.backoff import Backoff, full_jitter
from botkit.protocol.client import (
    DEFAULT_MAX_MESSAGE_SIZE,
    ClientProtocol,
    ConnectionState,
    Subscription,
)
from botkit.protocol.codes import (
    DisconnectAction,
    ErrorAction,
    UnsubscribeAction,
    describe_disconnect,
    disconnect_action,
    error_action,
    unsubscribe_action,
)
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
    ReplyEvent,
    ServerSubscribed,
    StreamGap,
    Subscribed,
    Unsubscribed,
)
from botkit.protocol.results import (
    parse_error,
    parse_history,
    parse_position,
    parse_presence,
    parse_presence_stats,
)
from botkit.protocol.types import (
    ClientInfo,
    HistoryResult,
    PresenceStats,
    Publication,
    StreamPosition,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Backoff",
    "ClientInfo",
    "ClientProtocol",
    "Connected",
    "ConnectionState",
    "DisconnectAction",
    "Disconnected",
    "ErrorAction",
    "ErrorReply",
    "Event",
    "HistoryResult",
    "Joined",
    "Left",
    "MalformedReply",
    "Ping",
    "PresenceStats",
    "Publication",
    "Reply",
    "ReplyEvent",
    "ServerSubscribed",
    "StreamGap",
    "StreamPosition",
    "Subscribed",
    "Subscription",
    "UnsubscribeAction",
    "Unsubscribed",
    "describe_disconnect",
    "disconnect_action",
    "error_action",
    "full_jitter",
    "parse_error",
    "parse_history",
    "parse_position",
    "parse_presence",
    "parse_presence_stats",
    "unsubscribe_action",
]
