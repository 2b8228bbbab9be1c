"""The one parser of server API replies: bytes in, typed values or one :class:`ApiError` out.

Pure (no I/O, no clock), so every shape the server might send is tested as data. Positions,
presence, history and error objects are parsed by :mod:`botkit.protocol.results`, with the same
strict rules as the client protocol. Anything that is not a valid reply raises (or, inside a
batch, yields) :class:`ApiMalformedReplyError` naming the method; never ``TypeError``,
``ValueError`` or ``AttributeError``. A Centrifugo error object becomes :class:`ApiReplyError`,
temporary for the codes in :data:`TEMPORARY_CODES`.

``decode`` checks the body and raises the reply's error; the other functions take the decoded
reply object and return what the caller gets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from botkit.errors import ApiMalformedReplyError, ApiReplyError, ProtocolError
from botkit.protocol.results import (
    parse_error,
    parse_history,
    parse_position,
    parse_presence,
    parse_presence_stats,
)
from botkit.protocol.types import ClientInfo, HistoryResult, PresenceStats, StreamPosition

__all__ = [
    "TEMPORARY_CODES",
    "Presence",
    "PublishResult",
    "broadcast_outcomes",
    "decode",
    "history",
    "presence",
    "presence_outcomes",
    "presence_stats",
    "publish_outcomes",
    "publish_result",
    "raw_replies",
    "reply_error",
]

#: Centrifugo error codes that say "try again later" rather than "this request is wrong".
TEMPORARY_CODES: Final = frozenset({100, 111, 113})

Presence = dict[str, ClientInfo]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Where a publication landed. A channel without history (or ``skip_history``) has no
    position: ``offset`` is 0 and ``epoch`` is empty."""

    offset: int
    epoch: str

    @property
    def position(self) -> StreamPosition:
        return StreamPosition(self.offset, self.epoch)


def decode(method: str, body: bytes) -> dict[str, Any]:
    """The reply object in an HTTP 200 body; raises the error it carries, if any."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        # Also what a web page at the wrong URL looks like.
        raise ApiMalformedReplyError(
            "the body is not JSON; check that the API URL is the server API, e.g. "
            "http://localhost:3001/api/realtime", method=method) from exc
    if not isinstance(payload, dict):
        raise ApiMalformedReplyError(f"the body is a JSON {_kind(payload)}, not an object",
                                     method=method)
    error = payload.get("error")
    if error is not None:
        raise reply_error(method, error)
    return payload


def reply_error(method: str, raw: Any) -> ApiReplyError:
    """A Centrifugo error object as the error to raise (malformed if it is not one)."""
    try:
        code, message = parse_error(raw)
    except ProtocolError as exc:
        return _malformed(method, exc)
    return ApiReplyError(code, message, code in TEMPORARY_CODES, method=method)


def publish_result(payload: dict[str, Any]) -> PublishResult:
    """The reply to ``publish``."""
    return _parsed("publish", _publish, _object("publish", payload, "result"))


def presence(payload: dict[str, Any]) -> Presence:
    """The reply to ``presence``: client id → who is connected."""
    return _parsed("presence", parse_presence, _object("presence", payload, "result"))


def presence_stats(payload: dict[str, Any]) -> PresenceStats:
    return _parsed("presence_stats", parse_presence_stats,
                   _object("presence_stats", payload, "result"))


def history(channel: str, payload: dict[str, Any]) -> HistoryResult:
    result = _object("history", payload, "result")
    return _parsed("history", lambda value: parse_history(channel, value), result)


def raw_replies(payload: dict[str, Any], expected: int) -> list[dict[str, Any]]:
    """The replies of a raw ``batch``, one object per command, errors left as they are."""
    if expected == 0:
        return []  # the server answers an empty batch with {}
    replies = _replies("batch", payload, expected)
    if not all(isinstance(reply, dict) for reply in replies):
        raise ApiMalformedReplyError("a reply in the batch is not an object", method="batch")
    return replies


def publish_outcomes(payload: dict[str, Any], expected: int,
                     ) -> list[PublishResult | ApiReplyError]:
    """The replies of a ``batch`` of ``expected`` publishes: each one's position or error.

    The count is checked as a whole (a wrong count raises: which reply belongs to whom is
    unknown); a malformed single reply is that publish's outcome only."""
    return [_outcome("publish", reply, "publish", _publish)
            for reply in _replies("batch", payload, expected)]


def presence_outcomes(payload: dict[str, Any], expected: int) -> list[Presence | ApiReplyError]:
    """The replies of a ``batch`` of ``expected`` presence calls, like :func:`publish_outcomes`."""
    return [_outcome("presence", reply, "presence", parse_presence)
            for reply in _replies("batch", payload, expected)]


def broadcast_outcomes(payload: dict[str, Any], channels: Sequence[str],
                       ) -> list[PublishResult | ApiReplyError]:
    """The reply to ``broadcast`` to ``channels``: each channel's position or error."""
    result = _object("broadcast", payload, "result")
    responses = result.get("responses")
    if not isinstance(responses, list) or len(responses) != len(channels):
        raise ApiMalformedReplyError(
            f"{_count(responses)} responses for {len(channels)} channels", method="broadcast")
    return [_outcome(f"broadcast {channel}", response, "result", _publish)
            for channel, response in zip(channels, responses, strict=True)]


# -- helpers ----------------------------------------------------------------------------------

def _publish(result: dict[str, Any]) -> PublishResult:
    position = parse_position(result)
    return PublishResult(position.offset, position.epoch)


def _outcome(method: str, reply: Any, key: str,
             parse: Callable[[dict[str, Any]], _T]) -> _T | ApiReplyError:
    """One reply inside a batch (or one broadcast response): its value or its error."""
    if not isinstance(reply, dict):
        return ApiMalformedReplyError(f"the reply is a JSON {_kind(reply)}, not an object",
                                      method=method)
    error = reply.get("error")
    if error is not None:
        return reply_error(method, error)
    try:
        return _parsed(method, parse, _object(method, reply, key))
    except ApiMalformedReplyError as exc:
        return exc


def _replies(method: str, payload: dict[str, Any], expected: int) -> list[Any]:
    replies = payload.get("replies")
    if not isinstance(replies, list) or len(replies) != expected:
        raise ApiMalformedReplyError(f"{_count(replies)} replies for {expected} commands",
                                     method=method)
    return replies


def _object(method: str, payload: dict[str, Any], key: str) -> dict[str, Any]:
    # An absent result is an empty one: Centrifugo leaves out empty objects.
    value = payload.get(key, {})
    if not isinstance(value, dict):
        raise ApiMalformedReplyError(f"{key} is a JSON {_kind(value)}, not an object",
                                     method=method)
    return value


def _parsed(method: str, parse: Callable[[dict[str, Any]], _T], value: dict[str, Any]) -> _T:
    try:
        return parse(value)
    except ProtocolError as exc:
        raise _malformed(method, exc) from exc


def _malformed(method: str, exc: ProtocolError) -> ApiMalformedReplyError:
    error = ApiMalformedReplyError(str(exc), method=method)
    error.__cause__ = exc
    return error


def _count(value: Any) -> str:
    return str(len(value)) if isinstance(value, list) else "no"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number")
