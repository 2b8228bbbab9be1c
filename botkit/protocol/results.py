"""Typed results of presence, presence stats and history, stream positions and error objects.

The realtime protocol and the server API return these in the same shape, so both parse them here
(``botkit.serverapi.replies`` builds every server API reply from these). A result that does not
have that shape raises :class:`ProtocolError`.
"""

from __future__ import annotations

from typing import Any

from botkit.errors import ProtocolError
from botkit.protocol.types import (
    ClientInfo,
    HistoryResult,
    PresenceStats,
    Publication,
    StreamPosition,
)

__all__ = [
    "parse_error",
    "parse_history",
    "parse_position",
    "parse_presence",
    "parse_presence_stats",
]

_MAX_UINT64 = 2**64 - 1


def _count(result: dict[str, Any], key: str) -> int:
    value = result.get(key, 0)
    # Counts and offsets are unsigned 64-bit integers on the wire; a bigger offset, sent back
    # in history ``since``, would be a command the server rejects.
    if type(value) is not int or not 0 <= value <= _MAX_UINT64:
        raise ProtocolError(f"{key} should be a non-negative integer, got {value!r:.40}")
    return value


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise ProtocolError(f"{key} should be a string")
    return value


def _info(raw: Any) -> ClientInfo:
    if not isinstance(raw, dict):
        raise ProtocolError("client info should be an object")
    return ClientInfo(user=_text(raw, "user"), client=_text(raw, "client"),
                      conn_info=raw.get("conn_info"), chan_info=raw.get("chan_info"))


def parse_presence(result: dict[str, Any]) -> dict[str, ClientInfo]:
    """``{"presence": {client_id: info}}`` → client id → ClientInfo."""
    presence = result.get("presence", {})
    if not isinstance(presence, dict):
        raise ProtocolError("presence should be an object")
    return {client_id: _info(info) for client_id, info in presence.items()}


def parse_presence_stats(result: dict[str, Any]) -> PresenceStats:
    return PresenceStats(_count(result, "num_clients"), _count(result, "num_users"))


def parse_position(result: dict[str, Any]) -> StreamPosition:
    """``{"offset": n, "epoch": e}`` (each optional) → StreamPosition: the top of a history, or
    where a publish landed (0 and "" in a channel without history)."""
    return StreamPosition(_count(result, "offset"), _text(result, "epoch"))


def parse_error(raw: Any) -> tuple[int, str]:
    """An error object ``{"code": n, "message": text}`` → ``(code, message)``."""
    if not isinstance(raw, dict):
        raise ProtocolError("error should be an object")
    return _count(raw, "code"), _text(raw, "message")


def parse_history(channel: str, result: dict[str, Any]) -> HistoryResult:
    raw_publications = result.get("publications", [])
    if not isinstance(raw_publications, list):
        raise ProtocolError("publications should be a list")
    publications = []
    for raw in raw_publications:
        if not isinstance(raw, dict):
            raise ProtocolError("a publication should be an object")
        tags = raw.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise ProtocolError("tags should map strings to strings")
        info = raw.get("info")
        publications.append(Publication(
            channel=channel, data=raw.get("data"), offset=_count(raw, "offset"),
            info=None if info is None else _info(info), tags=tags))
    return HistoryResult(tuple(publications), parse_position(result))
