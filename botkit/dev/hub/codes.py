"""The error replies, unsubscribe pushes and disconnect codes of the protocol, server side.

Codes and texts are Centrifugo's own (reference section 7, ``centrifuge/errors.go``,
``disconnect.go``, ``unsubscribe.go``): clients decide between retrying and giving up by the code,
and people read the text, so both must match the real server exactly.

This table is deliberately independent of the client's (:mod:`botkit.protocol`): the hub is an
oracle that botkit's client is tested against, so it must not share the client's idea of a code.
Both are checked against Centrifugo by the same tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "ALREADY_SUBSCRIBED",
    "BAD_REQUEST",
    "EXPIRED",
    "INTERNAL",
    "LIMIT_EXCEEDED",
    "METHOD_NOT_FOUND",
    "NOT_AVAILABLE",
    "PERMISSION_DENIED",
    "TOKEN_EXPIRED",
    "UNKNOWN_CHANNEL",
    "UNRECOVERABLE_POSITION",
    "UNSUBSCRIBE_EXPIRED",
    "UNSUBSCRIBE_SERVER",
    "ClientError",
    "CommandError",
    "Disconnect",
    "DisconnectError",
    "Unsubscribe",
]


@dataclass(frozen=True, slots=True)
class ClientError:
    """An error reply: the command failed, the connection lives on."""

    code: int
    message: str
    temporary: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.temporary:
            body["temporary"] = True
        return body


INTERNAL = ClientError(100, "internal server error", temporary=True)
UNKNOWN_CHANNEL = ClientError(102, "unknown channel")
PERMISSION_DENIED = ClientError(103, "permission denied")
METHOD_NOT_FOUND = ClientError(104, "method not found")
ALREADY_SUBSCRIBED = ClientError(105, "already subscribed")
LIMIT_EXCEEDED = ClientError(106, "limit exceeded")
BAD_REQUEST = ClientError(107, "bad request")
NOT_AVAILABLE = ClientError(108, "not available")
TOKEN_EXPIRED = ClientError(109, "token expired")
EXPIRED = ClientError(110, "expired")
UNRECOVERABLE_POSITION = ClientError(112, "unrecoverable position")


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Why a connection is closed: sent as the WebSocket close code and reason."""

    code: int
    reason: str

    CONNECTION_CLOSED: ClassVar[Disconnect]  # the peer went away; nothing is sent
    SHUTDOWN: ClassVar[Disconnect]
    SERVER_ERROR: ClassVar[Disconnect]
    EXPIRED: ClassVar[Disconnect]
    SUB_EXPIRED: ClassVar[Disconnect]
    SLOW: ClassVar[Disconnect]
    WRITE_ERROR: ClassVar[Disconnect]
    INSUFFICIENT_STATE: ClassVar[Disconnect]
    NO_PONG: ClassVar[Disconnect]
    INVALID_TOKEN: ClassVar[Disconnect]
    BAD_REQUEST: ClassVar[Disconnect]
    STALE: ClassVar[Disconnect]
    FORCE_NO_RECONNECT: ClassVar[Disconnect]
    CHANNEL_LIMIT: ClassVar[Disconnect]
    INAPPROPRIATE_PROTOCOL: ClassVar[Disconnect]
    NOT_AVAILABLE: ClassVar[Disconnect]


Disconnect.CONNECTION_CLOSED = Disconnect(3000, "connection closed")
Disconnect.SHUTDOWN = Disconnect(3001, "shutdown")
Disconnect.SERVER_ERROR = Disconnect(3004, "internal server error")
Disconnect.EXPIRED = Disconnect(3005, "connection expired")
Disconnect.SUB_EXPIRED = Disconnect(3006, "subscription expired")
Disconnect.SLOW = Disconnect(3008, "slow")
Disconnect.WRITE_ERROR = Disconnect(3009, "write error")
Disconnect.INSUFFICIENT_STATE = Disconnect(3010, "insufficient state")
Disconnect.NO_PONG = Disconnect(3012, "no pong")
Disconnect.INVALID_TOKEN = Disconnect(3500, "invalid token")
Disconnect.BAD_REQUEST = Disconnect(3501, "bad request")
Disconnect.STALE = Disconnect(3502, "stale")
Disconnect.FORCE_NO_RECONNECT = Disconnect(3503, "force disconnect")
Disconnect.CHANNEL_LIMIT = Disconnect(3505, "channel limit")
Disconnect.INAPPROPRIATE_PROTOCOL = Disconnect(3506, "inappropriate protocol")
Disconnect.NOT_AVAILABLE = Disconnect(3508, "not available")


class CommandError(Exception):
    """Raised from command handling when the answer is an error reply."""

    def __init__(self, error: ClientError) -> None:
        super().__init__(f"{error.code} {error.message}")
        self.error = error


class DisconnectError(Exception):
    """Raised from command handling when the answer is to close the connection."""

    def __init__(self, disconnect: Disconnect) -> None:
        super().__init__(f"{disconnect.code} {disconnect.reason}")
        self.disconnect = disconnect


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """An ``unsubscribe`` push: below 2500 the client stays unsubscribed, from 2500 on it
    subscribes again."""

    code: int
    reason: str


UNSUBSCRIBE_SERVER = Unsubscribe(2000, "server unsubscribe")
UNSUBSCRIBE_EXPIRED = Unsubscribe(2501, "subscription expired")
