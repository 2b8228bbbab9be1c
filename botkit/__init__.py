"""botkit: chat bots for the rooms of Xshathra Realtime."""

from __future__ import annotations

from botkit.bot import Bot, UsageError
from botkit.context import Context, FailedReply
from botkit.envelope import (
    ChatMessage,
    Envelope,
    Typing,
    UserJoined,
    UserLeft,
    register_envelope,
)
from botkit.errors import (
    ApiAuthError,
    ApiError,
    ApiReplyError,
    ApiRequestError,
    ApiUnavailableError,
    AskCancelled,
    AskError,
    AskInvalidAnswer,
    AskTimeout,
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
    ReplyDroppedError,
    ReplyError,
    SubscriptionError,
    TerminalDisconnectError,
    TokenError,
)
from botkit.gap import Gap

__version__ = "0.1.0"

__all__ = [
    "ApiAuthError",
    "ApiError",
    "ApiReplyError",
    "ApiRequestError",
    "ApiUnavailableError",
    "AskCancelled",
    "AskError",
    "AskInvalidAnswer",
    "AskTimeout",
    "Bot",
    "BotkitError",
    "ChatMessage",
    "ConfigError",
    "ConnectionClosedError",
    "Context",
    "Envelope",
    "EnvelopeError",
    "FailedReply",
    "Gap",
    "InvalidChannelError",
    "LocalServerError",
    "PluginError",
    "ProtocolError",
    "RealtimeError",
    "RealtimeTimeoutError",
    "ReplyDroppedError",
    "ReplyError",
    "SubscriptionError",
    "TerminalDisconnectError",
    "TokenError",
    "Typing",
    "UsageError",
    "UserJoined",
    "UserLeft",
    "__version__",
    "register_envelope",
]
