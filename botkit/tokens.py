"""Connection and subscription JWTs, and the channel names of rooms.

Xshathra Realtime verifies HS256 tokens signed with the project's ``server_api_key``. A connection
token names the user (``sub``); a subscription token binds that user to one channel. Room ids are
opaque ids chosen by the backend, never free text, so they are checked strictly: a room id that
would need escaping is a bug upstream, and refusing it early is kinder than a 107 from the server.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from botkit.errors import InvalidChannelError, TokenError

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "MAX_CHANNEL_LENGTH",
    "MAX_ROOM_ID_LENGTH",
    "TokenMinter",
    "chat_channel",
    "connection_token",
    "parse_chat_channel",
    "subscription_token",
    "validate_channel",
    "validate_room_id",
]

DEFAULT_TOKEN_TTL = 15 * 60.0
"""Seconds a token lives unless told otherwise: short-lived, refreshed before expiry."""

MAX_ROOM_ID_LENGTH = 128
MAX_CHANNEL_LENGTH = 255
"""Centrifugo's default ``channel.max_length``."""

# Printable ASCII without whitespace. ':' separates namespace, project and room; '#' and '$' and
# '*' have meanings to the server (user-limited, private, wildcard), so none of them may appear in
# an id.
_ROOM_ID = re.compile(r"[A-Za-z0-9_.\-]+")
_CHANNEL = re.compile(r"[!-~]+")


def validate_room_id(room_id: str, *, what: str = "room id") -> str:
    """Return ``room_id`` if it is an acceptable opaque id, else raise InvalidChannelError."""
    if not isinstance(room_id, str) or not room_id:
        raise InvalidChannelError(f"{what} must be a non-empty string, got {room_id!r}")
    if len(room_id) > MAX_ROOM_ID_LENGTH:
        raise InvalidChannelError(
            f"{what} is {len(room_id)} characters long; the limit is {MAX_ROOM_ID_LENGTH}")
    if not _ROOM_ID.fullmatch(room_id):
        raise InvalidChannelError(
            f"{what} {room_id!r} may contain only ASCII letters, digits, '_', '-' and '.' "
            "(no whitespace, ':' or other punctuation)")
    return room_id


def validate_channel(channel: str) -> str:
    """Check a full channel name the way the server would (ASCII, no whitespace, <= 255)."""
    if not isinstance(channel, str) or not channel:
        raise InvalidChannelError(f"channel must be a non-empty string, got {channel!r}")
    if len(channel) > MAX_CHANNEL_LENGTH:
        raise InvalidChannelError(
            f"channel is {len(channel)} characters long; the limit is {MAX_CHANNEL_LENGTH}")
    if not _CHANNEL.fullmatch(channel):
        raise InvalidChannelError(
            f"channel {channel!r} must be printable ASCII without whitespace")
    return channel


def chat_channel(project_id: str, room_id: str, *, namespace: str = "chat") -> str:
    """The channel of a room: ``chat:{projectId}:{roomId}``."""
    validate_room_id(namespace, what="namespace")
    validate_room_id(project_id, what="project id")
    validate_room_id(room_id)
    return validate_channel(f"{namespace}:{project_id}:{room_id}")


def parse_chat_channel(channel: str) -> tuple[str, str, str]:
    """Split ``ns:project:room`` into its parts; raise InvalidChannelError if it is not one."""
    parts = channel.split(":")
    if len(parts) != 3:
        raise InvalidChannelError(
            f"channel {channel!r} is not of the form namespace:projectId:roomId")
    namespace, project_id, room_id = parts
    validate_room_id(namespace, what="namespace")
    validate_room_id(project_id, what="project id")
    validate_room_id(room_id)
    return namespace, project_id, room_id


def _encode(claims: Mapping[str, Any], secret: str) -> str:
    if not secret:
        raise TokenError("cannot sign a token: server_api_key is empty")
    try:
        return jwt.encode(dict(claims), secret, algorithm="HS256")
    except (TypeError, ValueError, jwt.PyJWTError) as exc:
        raise TokenError(f"cannot sign a token: {exc}") from exc


def connection_token(
    secret: str,
    user_id: str,
    *,
    ttl: float = DEFAULT_TOKEN_TTL,
    channels: list[str] | None = None,
    info: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """A connection JWT: ``sub``, ``exp`` (``ttl`` seconds ahead), ``iat``, ``jti``."""
    if not isinstance(user_id, str):
        raise TokenError(f"user id must be a string, got {type(user_id).__name__}")
    if ttl <= 0:
        raise TokenError(f"token ttl must be positive, got {ttl}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": issued,
        "exp": issued + max(1, int(ttl)),
        "jti": secrets.token_hex(8),
    }
    if channels:
        claims["channels"] = [validate_channel(c) for c in channels]
    if info is not None:
        claims["info"] = dict(info)
    return _encode(claims, secret)


def subscription_token(
    secret: str,
    user_id: str,
    channel: str,
    *,
    ttl: float = DEFAULT_TOKEN_TTL,
    now: float | None = None,
) -> str:
    """A subscription JWT binding ``user_id`` to ``channel``: ``sub``, ``channel``, ``exp``."""
    if ttl <= 0:
        raise TokenError(f"token ttl must be positive, got {ttl}")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": user_id,
        "channel": validate_channel(channel),
        "iat": issued,
        "exp": issued + max(1, int(ttl)),
    }
    return _encode(claims, secret)


# A token minted less than this fraction of its life ago is handed out again.
_REUSE_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class TokenMinter:
    """Mints tokens for one user; the realtime connection calls it on every (re)connect and
    before a token expires, so a token is never older than ``ttl``.

    A token minted less than a tenth of ``ttl`` ago is handed out again rather than signed
    anew: when a server restarts, hundreds of bots reconnect at once, and signing two JWTs
    each was the largest cost of their return that the peers do not pay (bench/ S6)."""

    secret: str = field(repr=False)  # never in a log line or a traceback's locals repr
    user_id: str
    ttl: float = DEFAULT_TOKEN_TTL
    info: Mapping[str, Any] | None = None
    clock: Callable[[], float] = time.time
    _minted: dict[str | None, tuple[str, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def connection(self) -> str:
        return self._mint(None)

    def subscription(self, channel: str) -> str:
        return self._mint(channel)

    def _mint(self, channel: str | None) -> str:
        now = self.clock()
        kept = self._minted.get(channel)
        if kept is not None and 0 <= now - kept[1] < self.ttl * _REUSE_FRACTION:
            return kept[0]
        if channel is None:
            token = connection_token(self.secret, self.user_id, ttl=self.ttl, info=self.info,
                                     now=now)
        else:
            token = subscription_token(self.secret, self.user_id, channel, ttl=self.ttl,
                                       now=now)
        self._minted[channel] = (token, now)
        return token
