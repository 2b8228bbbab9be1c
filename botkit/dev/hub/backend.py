"""The seed's chat backend, for local use: a dev login that mints tokens, and a moderated send.

``botkit dev`` serves these routes next to the embedded hub (same origin as the chat page)::

    POST /api/realtime/token  {"name": "Alice", "room": "lobby"}
        -> 200 {"token", "userId", "name", "expiresIn"[, "room", "channel", "subscriptionToken"]}
    POST /api/chat/send       Authorization: Bearer <connection token>
                              {"roomId": "lobby", "text": "hi", "clientMessageId": "c-1"}
        -> 200 {"id", "message": <chat.message envelope>[, "offset", "epoch"]}

Errors are ``{"error": <code>, "message": <text>}`` with 400 (unreadable body), 401 (bad or
expired token), 413 (body too large), 415 (not JSON), 422 (invalid value or refused by
moderation), 429 (rate limited, with ``Retry-After``) and 502 (the publish failed).

The login is a *dev* login: anyone may claim any display name, and the same name (in any letter
case) is always the same user, ``user_<slug>_<hash>``: a human's id never starts with ``bot_``,
which the chat page uses to mark bots. A send is the seed's production flow: the sender
is the token's ``sub`` (never the body), the text is moderated, and the backend publishes a
``chat.message`` envelope through the server API, so clients never need publish permission.
The token routes share the server API's ``/api/realtime/`` prefix: mount them first.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botkit.config import BotsConfig, DevConfig
from botkit.dev.hub.moderation import RateLimiter, WordFilter
from botkit.dev.hub.wire import FieldError, loads
from botkit.envelope import chat_message, envelope_to_dict
from botkit.errors import EnvelopeError, InvalidChannelError
from botkit.tokens import (
    DEFAULT_TOKEN_TTL,
    chat_channel,
    connection_token,
    subscription_token,
    validate_room_id,
)

__all__ = [
    "MAX_NAME_LENGTH",
    "SEND_PATH",
    "TOKEN_PATH",
    "DevSettings",
    "Publisher",
    "backend_routes",
    "user_id_for_name",
]

log = logging.getLogger("botkit.dev.hub.backend")

TOKEN_PATH = "/api/realtime/token"
SEND_PATH = "/api/chat/send"
MAX_NAME_LENGTH = 32
# A login body is a name and a room; a send body one text of at most 4000 characters, which
# JSON may escape to 6 bytes each. Anything larger is not a client of ours.
_MAX_LOGIN_BODY = 4 * 1024
_MAX_SEND_BODY = 32 * 1024
# How long a clientMessageId is remembered: the server API keeps idempotency keys 5 minutes.
_IDEMPOTENCY_WINDOW = 300.0
_MAX_REMEMBERED_SENDS = 10_000


class Publisher(Protocol):
    """What publishes the envelopes: :class:`botkit.serverapi.ServerApi` (any server API) fits."""

    async def publish(self, channel: str, data: Any, *,
                      idempotency_key: str | None = None) -> object: ...


@dataclass(frozen=True, slots=True)
class DevSettings:
    """What the backend needs: the project (channel names), its key (token secret), the token
    lifetime and the ``dev:`` section (moderation)."""

    project_id: str
    secret: str = field(repr=False)
    token_ttl: float = DEFAULT_TOKEN_TTL
    dev: DevConfig = field(default_factory=DevConfig)

    @classmethod
    def from_config(cls, config: BotsConfig) -> DevSettings:
        xshathra = config.xshathra
        return cls(project_id=xshathra.project_id,
                   secret=xshathra.server_api_key.get_secret_value(),
                   token_ttl=xshathra.token_ttl, dev=config.dev)


def user_id_for_name(name: str) -> str:
    """The stable user id of a display name: ``user_`` + an ASCII slug + a hash of the name.

    The hash keeps names apart that slug alike ("Zoë" and "Zoe!", or names without any ASCII
    letter); case-folding makes "alice" the same user as "Alice"."""
    key = unicodedata.normalize("NFKC", name.strip()).casefold()
    ascii_text = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_text).strip("_")[:24].rstrip("_")
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"user_{slug}_{digest}" if slug else f"user_{digest}"


def backend_routes(settings: DevSettings, publisher: Publisher, *,
                   clock: Callable[[], float] = time.monotonic) -> list[Route]:
    """The dev login and the moderated send, as Starlette routes to mount in the hub's app
    (before any catch-all ``/api/realtime/{method}`` route of the server API)."""
    backend = _ChatBackend(settings, publisher, clock)
    return [Route(TOKEN_PATH, backend.token, methods=["POST"], name="dev_token"),
            Route(SEND_PATH, backend.send, methods=["POST"], name="chat_send")]


class _Refused(Exception):
    """A request we answer with an error: ``status``, a machine code and a human message."""

    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers, self.extra = headers, extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.code, "message": self.message, **self.extra},
                            status_code=self.status, headers=self.headers)


_Outcome = tuple[int, dict[str, Any]]


_Pending = asyncio.Future[_Outcome | _Refused]


def _unwrap(outcome: _Outcome | _Refused) -> _Outcome:
    if isinstance(outcome, _Refused):
        raise outcome
    return outcome


class _ChatBackend:
    def __init__(self, settings: DevSettings, publisher: Publisher,
                 clock: Callable[[], float]) -> None:
        dev = settings.dev
        self._settings = settings
        self._publisher = publisher
        self._clock = clock
        self._limiter = RateLimiter(dev.rate_limit.messages, dev.rate_limit.per, clock=clock)
        self._filter = WordFilter(dev.blocked_words)
        # Sends by (sender, room, clientMessageId): a retry gets the first send's answer.
        self._sends: collections.OrderedDict[str, tuple[float, _Pending]] = (
            collections.OrderedDict())

    # -- POST /api/realtime/token --------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        try:
            body = await _json_body(request, _MAX_LOGIN_BODY)
            name = _checked_name(_string(body, "name"))
            room = _optional_string(body, "room")
            if room is not None:
                _checked_id(room, "room", "invalid_room")
        except _Refused as refused:
            return refused.response()
        settings = self._settings
        user_id = user_id_for_name(name)
        answer: dict[str, Any] = {
            "token": connection_token(settings.secret, user_id, ttl=settings.token_ttl,
                                      info={"name": name}),
            "userId": user_id, "name": name, "expiresIn": int(settings.token_ttl)}
        if room is not None:
            channel = chat_channel(settings.project_id, room)
            answer.update(room=room, channel=channel, subscriptionToken=subscription_token(
                settings.secret, user_id, channel, ttl=settings.token_ttl))
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    # -- POST /api/chat/send -------------------------------------------------------------------

    async def send(self, request: Request) -> Response:
        try:
            sender = self._sender_of(request)
            body = await _json_body(request, _MAX_SEND_BODY)
            room = _checked_id(_string(body, "roomId"), "roomId", "invalid_room")
            text = self._checked_text(_string(body, "text"))
            message_id = _optional_string(body, "clientMessageId")
            if message_id is None:
                status, payload = await self._send(None, sender, room, text)
            else:
                _checked_id(message_id, "clientMessageId", "invalid_client_message_id")
                status, payload = await self._send_once(
                    _idempotency_key(sender, room, message_id), sender, room, text)
        except _Refused as refused:
            return refused.response()
        return JSONResponse(payload, status_code=status)

    def _sender_of(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="chat"'}
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(401, "invalid_token", "send the connection token of /api/realtime/"
                           "token as 'Authorization: Bearer <token>'", headers=challenge)
        try:
            claims = jwt.decode(token.strip(), self._settings.secret, algorithms=["HS256"],
                                options={"require": ["sub", "exp"]})
        except jwt.ExpiredSignatureError:
            raise _Refused(401, "invalid_token", "the token has expired; get a new one from "
                           "/api/realtime/token", headers=challenge) from None
        except jwt.PyJWTError:
            raise _Refused(401, "invalid_token", "the token is not valid",
                           headers=challenge) from None
        sender = claims.get("sub")
        # A subscription token (it names a channel) is signed with the same key but grants no
        # identity of its own; the server refuses it as a connection token, and so do we.
        if not isinstance(sender, str) or not sender or "channel" in claims:
            raise _Refused(401, "invalid_token", "not a connection token", headers=challenge)
        return sender

    def _checked_text(self, text: str) -> str:
        text = text.strip()
        limit = self._settings.dev.max_text_length
        if not text:
            raise _Refused(422, "invalid_text", "the message is empty")
        if len(text) > limit:
            raise _Refused(422, "text_too_long",
                           f"the message is {len(text)} characters long; the limit is {limit}")
        if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
            raise _Refused(422, "invalid_text", "the message contains control characters")
        return text

    async def _send_once(self, key: str, sender: str, room: str, text: str) -> _Outcome:
        now = self._clock()
        while self._sends:  # forget sends older than the server's idempotency window
            oldest = next(iter(self._sends.values()))[0]
            if oldest > now - _IDEMPOTENCY_WINDOW and len(self._sends) < _MAX_REMEMBERED_SENDS:
                break
            self._sends.popitem(last=False)
        remembered = self._sends.get(key)
        if remembered is not None:
            # A retry, or a double click while the first is in flight: answer as the first
            # one did (a refusal included), and never publish a second message.
            future = remembered[1]
            await asyncio.wait([future])
            if future.cancelled():
                raise _Refused(409, "send_interrupted", "an earlier send with this "
                               "clientMessageId was interrupted; send it again")
            return _unwrap(future.result())
        pending: _Pending = asyncio.get_running_loop().create_future()
        self._sends[key] = (now, pending)
        try:
            outcome: _Outcome | _Refused = await self._send(key, sender, room, text)
        except _Refused as refused:
            outcome = refused
        except BaseException:  # cancelled (or a bug): the waiters must not wait forever
            self._sends.pop(key, None)
            pending.cancel()
            raise
        # Only a published message is remembered: after a refusal or a failed publish, the
        # same clientMessageId may be sent again (once the rate limit allows, say).
        if not isinstance(outcome, tuple) or outcome[0] != 200:
            self._sends.pop(key, None)
        pending.set_result(outcome)
        return _unwrap(outcome)

    async def _send(self, key: str | None, sender: str, room: str, text: str) -> _Outcome:
        # The rate limit comes first, so a message refused by the word filter still counts:
        # probing the filter is flooding too.
        wait = self._limiter.acquire(sender)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise _Refused(429, "rate_limited", f"too many messages; wait {seconds} s",
                           headers={"Retry-After": str(seconds)}, retryAfter=round(wait, 3))
        blocked = self._filter.find(text)
        if blocked is not None:
            raise _Refused(422, "blocked_word", f"the message contains a blocked word: "
                           f"{blocked!r}", word=blocked)
        try:
            envelope = chat_message(room_id=room, sender_id=sender, text=text)
        except EnvelopeError as exc:  # e.g. a bot's user id longer than envelopes allow
            self._limiter.refund(sender)
            raise _Refused(422, "invalid_message", str(exc)) from None
        channel = chat_channel(self._settings.project_id, room)
        try:
            result = await self._publisher.publish(channel, envelope_to_dict(envelope),
                                                   idempotency_key=key)
        except Exception as exc:
            self._limiter.refund(sender)  # nothing was shown: it must not count
            log.warning("publishing a chat message to %s failed: %s", channel, exc)
            return 502, {"error": "publish_failed", "message": "the message could not be "
                         "published; try again"}
        answer: dict[str, Any] = {"id": envelope.id, "message": envelope_to_dict(envelope)}
        for name in ("offset", "epoch"):
            value = getattr(result, name, None)
            if isinstance(value, int | str) and value:
                answer[name] = value
        return 200, answer


def _idempotency_key(sender: str, room: str, message_id: str) -> str:
    # Scoped to the sender: another user's clientMessageId must never swallow this message.
    digest = hashlib.sha256("\x00".join((sender, room, message_id)).encode()).hexdigest()
    return f"chat-send-{digest[:32]}"


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise _Refused(422, "invalid_name",
                       f"a name is 1 to {MAX_NAME_LENGTH} printable characters")
    return name


def _checked_id(value: str, what: str, code: str) -> str:
    try:
        return validate_room_id(value, what=what)
    except InvalidChannelError as exc:
        raise _Refused(422, code, str(exc)) from None


async def _json_body(request: Request, limit: int) -> dict[str, Any]:
    """The request's JSON object, read no further than ``limit`` bytes."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    # Required, not sniffed: a cross-site form can't send application/json without a CORS
    # preflight, which this backend never grants.
    if content_type != "application/json":
        raise _Refused(415, "unsupported_media_type",
                       "send a JSON body with Content-Type: application/json")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _Refused(413, "payload_too_large", f"the body is larger than {limit} bytes")
    try:
        # The hub's decoder: it also refuses what no server could pass on (1e999, a lone
        # surrogate), which would otherwise fail only when published, as a 502.
        value = loads(bytes(body))
    except FieldError as exc:
        raise _Refused(400, "bad_request", f"the body was refused: {exc}") from None
    if not isinstance(value, dict):
        raise _Refused(400, "bad_request", "the body must be a JSON object")
    return value


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        got = "nothing" if value is None else f"a {type(value).__name__}"
        raise _Refused(400, "bad_request", f"{name!r} must be a string, got {got}")
    return value


def _optional_string(body: dict[str, Any], name: str) -> str | None:
    return None if body.get(name) is None else _string(body, name)
