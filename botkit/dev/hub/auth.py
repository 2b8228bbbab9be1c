"""Connection and subscription JWTs, verified like Centrifugo's ``jwtverify`` does it.

HMAC tokens (HS256/384/512) signed with the hub's key. A malformed token, a bad signature or a
claim of the wrong type is *invalid* (connect: close 3500; subscribe: error 103); a token whose
``exp`` has passed or whose ``nbf`` is still ahead is *expired* (error 109). ``expire_at``, when
present, replaces ``exp`` as the end of the connection or subscription (0: never ends), while
``exp`` still decides whether the token itself is valid. No leeway, like the real server.
"""

from __future__ import annotations

import base64
import binascii
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import jwt

from botkit.dev.hub.wire import FieldError, Fields, loads

__all__ = [
    "ConnectToken",
    "InvalidTokenError",
    "Override",
    "SubscribeToken",
    "TokenClaims",
    "TokenExpiredError",
    "TokenVerifier",
]

_ALGORITHMS = ["HS256", "HS384", "HS512"]
# Expiry is checked by hand below, after the claims Centrifugo checks first; audience and issuer
# are not configured on the real server either, so their presence must not fail a token.
_OPTIONS: dict[str, Any] = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


# PyJWT >= 2.10 warns about HMAC keys shorter than the hash; older ones do not warn at all.
_SHORT_KEY_WARNING: type[Warning] = getattr(jwt, "InsecureKeyLengthWarning", UserWarning)


class InvalidTokenError(Exception):
    """Malformed, wrongly signed, or with a claim of the wrong type."""


class TokenExpiredError(Exception):
    """Past ``exp`` or before ``nbf``: the client must fetch a new token."""


@dataclass(frozen=True, slots=True)
class Override:
    """A token's ``override`` of namespace options (None: keep the namespace's)."""

    presence: bool | None = None
    join_leave: bool | None = None
    force_push_join_leave: bool | None = None
    force_recovery: bool | None = None
    force_positioning: bool | None = None


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token says about one channel: ``info`` becomes ``chan_info``, ``data`` goes into
    the subscribe reply."""

    info: Any = None
    data: Any = None
    override: Override = field(default_factory=Override)


@dataclass(frozen=True, slots=True)
class ConnectToken:
    user: str
    expire_at: int
    """Unix seconds when the connection expires; 0 means never."""
    info: Any
    subs: dict[str, TokenClaims]
    """Server-side subscriptions (the ``subs`` claim, or else ``channels``)."""


@dataclass(frozen=True, slots=True)
class SubscribeToken:
    user: str
    channel: str
    client: str
    expire_at: int
    claims: TokenClaims


def _raw_or_b64(claims: Fields, raw_key: str, b64_key: str) -> Any:
    encoded = claims.text(b64_key)
    if not encoded:
        return claims.raw(raw_key)
    try:
        # JSON frames embed the value as raw JSON, so it must decode to JSON.
        return loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, FieldError) as exc:
        raise InvalidTokenError(f"{b64_key} is not base64 of JSON") from exc


def _override(claims: Fields) -> Override:
    raw = claims.obj("override")
    if raw is None:
        return Override()

    def value(name: str) -> bool | None:
        item = raw.obj(name)
        return None if item is None else item.flag("value")

    return Override(value("presence"), value("join_leave"), value("force_push_join_leave"),
                    value("force_recovery"), value("force_positioning"))


def _channel_claims(claims: Fields) -> TokenClaims:
    return TokenClaims(_raw_or_b64(claims, "info", "b64info"),
                       _raw_or_b64(claims, "data", "b64data"), _override(claims))


class TokenVerifier:
    def __init__(self, secret: str, *, wall: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._wall = wall

    def _decode(self, token: str) -> Fields:
        if not self._secret:
            raise InvalidTokenError("no token secret is configured")
        try:
            with warnings.catch_warnings():
                # The real server takes keys of any length; so does the hub.
                warnings.simplefilter("ignore", _SHORT_KEY_WARNING)
                payload = jwt.decode(token, self._secret, algorithms=_ALGORITHMS,
                                     options=cast("Any", _OPTIONS))
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(str(exc)) from exc
        return Fields(payload)

    def _check_time(self, claims: Fields) -> None:
        now = self._wall()
        for key in ("exp", "nbf"):
            value = claims.raw(key)
            if value is not None and (not isinstance(value, int | float)
                                      or isinstance(value, bool)):
                raise InvalidTokenError(f"{key} must be a number")
        exp, nbf = claims.raw("exp"), claims.raw("nbf")
        if (exp is not None and now >= exp) or (nbf is not None and now < nbf):
            raise TokenExpiredError("token expired")

    @staticmethod
    def _expire_at(claims: Fields) -> int:
        if claims.has("expire_at"):
            return max(0, claims.int64("expire_at"))
        exp = claims.raw("exp")
        return int(exp) if exp is not None else 0

    def connect(self, token: str) -> ConnectToken:
        claims = self._decode(token)
        try:
            if claims.text("channel"):
                raise InvalidTokenError("a connection token can not hold a channel claim")
            user = claims.text("sub")
            self._check_time(claims)
            subs = {channel: _channel_claims(item)
                    for channel, item in claims.obj_map("subs").items()}
            if not subs:
                subs = {channel: TokenClaims() for channel in claims.text_list("channels")}
            return ConnectToken(user, self._expire_at(claims),
                                _raw_or_b64(claims, "info", "b64info"), subs)
        except FieldError as exc:
            raise InvalidTokenError(str(exc)) from exc

    def subscribe(self, token: str) -> SubscribeToken:
        claims = self._decode(token)
        try:
            user = claims.text("sub")
            self._check_time(claims)
            channel = claims.text("channel")
            if not channel:
                raise InvalidTokenError("a subscription token needs a channel claim")
            return SubscribeToken(user, channel, claims.text("client"), self._expire_at(claims),
                                  _channel_claims(claims))
        except FieldError as exc:
            raise InvalidTokenError(str(exc)) from exc
