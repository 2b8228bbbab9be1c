"""What a client does about each error, unsubscribe and disconnect code of the protocol.

The rules are Centrifugo's (reference section 7) as its official SDKs apply them: transient
trouble is retried with backoff, while codes that say "you are not allowed" or "you spoke wrongly"
are terminal, because retrying them only makes a reconnect storm.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "DisconnectAction",
    "ErrorAction",
    "UnsubscribeAction",
    "describe_disconnect",
    "disconnect_action",
    "error_action",
    "unsubscribe_action",
]

# Reply error codes.
INTERNAL = 100
UNAUTHORIZED = 101
UNKNOWN_CHANNEL = 102
PERMISSION_DENIED = 103
METHOD_NOT_FOUND = 104
ALREADY_SUBSCRIBED = 105
LIMIT_EXCEEDED = 106
BAD_REQUEST = 107
NOT_AVAILABLE = 108
TOKEN_EXPIRED = 109
EXPIRED = 110
TOO_MANY_REQUESTS = 111
UNRECOVERABLE_POSITION = 112

# Unsubscribe push codes.
UNSUBSCRIBE_SERVER = 2000
UNSUBSCRIBE_INSUFFICIENT_STATE = 2500
UNSUBSCRIBE_EXPIRED = 2501
UNSUBSCRIBE_STATE_INVALIDATED = 2502

# Disconnect codes (WebSocket close codes).
DISCONNECT_CONNECTION_EXPIRED = 3005
DISCONNECT_NO_PONG = 3012
DISCONNECT_INVALID_TOKEN = 3500
DISCONNECT_BAD_REQUEST = 3501
DISCONNECT_PERMISSION_DENIED = 3507


class ErrorAction(Enum):
    RETRY = "retry"
    """Transient: try again after a backoff delay."""
    REFRESH_TOKEN = "refresh_token"
    """The token expired: mint a fresh one, then try again."""
    FAIL = "fail"
    """Final for this operation: retrying cannot succeed."""


class DisconnectAction(Enum):
    RECONNECT = "reconnect"
    TERMINAL = "terminal"


class UnsubscribeAction(Enum):
    RESUBSCRIBE = "resubscribe"
    UNSUBSCRIBED = "unsubscribed"


def error_action(code: int, temporary: bool) -> ErrorAction:
    """What to do about an error reply to connect or subscribe."""
    if code == TOKEN_EXPIRED:
        return ErrorAction.REFRESH_TOKEN
    if code < 100 or temporary:
        return ErrorAction.RETRY
    return ErrorAction.FAIL


def unsubscribe_action(code: int) -> UnsubscribeAction:
    """Codes below 2500 mean the server ended the subscription on purpose; 2500 and above ask
    the client to subscribe again (with recovery, and 2501/2502 with a fresh token)."""
    if code >= UNSUBSCRIBE_INSUFFICIENT_STATE:
        return UnsubscribeAction.RESUBSCRIBE
    return UnsubscribeAction.UNSUBSCRIBED


def disconnect_action(code: int) -> DisconnectAction:
    """3500-3999 and 4500-4999 forbid reconnecting; everything else (transport codes below
    3000, 3000-3499, 4000-4499, 5000 and up) reconnects with backoff."""
    if 3500 <= code <= 3999 or 4500 <= code <= 4999:
        return DisconnectAction.TERMINAL
    return DisconnectAction.RECONNECT


_HINTS = {
    DISCONNECT_INVALID_TOKEN: (
        "the server refused the connection token; check that xshathra.server_api_key is the "
        "project's key the server verifies tokens with"),
    DISCONNECT_BAD_REQUEST: "the server rejected a command as malformed (a client bug)",
    3502: "no connect command arrived in time",
    3503: "the server API disconnected this user",
    3504: "the server's connection limit for this user was reached",
    3505: "the server's channel limit was reached",
    3506: "the server refused the protocol",
    DISCONNECT_PERMISSION_DENIED: "the server denied permission to connect",
    3508: "the server does not offer this feature",
    3509: "too many errors on this connection",
}


def describe_disconnect(code: int) -> str:
    """A sentence for a terminal disconnect code that tells an operator what to fix."""
    return _HINTS.get(code, "")
