"""botkit: chat bots for the rooms of Xshathra Realtime."""

from __future__ import annotations

from botkit.exceptions import (
    ApiAuthError,
    ApiError,
    ApiReplyError,
    ApiRequestError,
    ApiUnavailableError,
    BotkitError,
    ConfigError,
    ConnectionClosedError,
    EnvelopeError,
    InvalidChannelError,
    LocalServerError,
    PluginError,
    ProtocolError,
    RealtimeError,
    RealtimeTimeoutError,
    ReplyError,
    SubscriptionError,
    TerminalDisconnectError,
    TokenError,
)

__version__ = "0.1.0"

__all__ = [
    "ApiAuthError",
    "ApiError",
    "ApiReplyError",
    "ApiRequestError",
    "ApiUnavailableError",
    "BotkitError",
    "ConfigError",
    "ConnectionClosedError",
    "EnvelopeError",
    "InvalidChannelError",
    "LocalServerError",
    "PluginError",
    "ProtocolError",
    "RealtimeError",
    "RealtimeTimeoutError",
    "ReplyError",
    "SubscriptionError",
    "TerminalDisconnectError",
    "TokenError",
    "__version__",
]
