"""Reading the fields of server frames: checked types, unsigned ranges, and the hot path's
shortcuts for publications (pinned by tests/protocol/test_fast_paths.py). Private to the
protocol package; a frame that breaks the rules raises :class:`Malformed`, which the protocol
turns into a counted drop or a MalformedReply."""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import from_json as _fast_loads

from botkit.protocol.types import ClientInfo, Publication, StreamPosition

__all__ = [
    "KNOWN_INFOS",
    "MAX_UINT64",
    "Malformed",
    "client_info",
    "field",
    "loads",
    "new_position",
    "new_publication",
    "object_field",
    "publication",
    "uint",
]

MAX_UINT64 = 2**64 - 1  # offsets are uint64; ping and ttl are smaller unsigned integers
KNOWN_INFOS = 1024  # publishers' infos remembered per connection


def loads(line: str) -> Any:
    """Decode one frame: jiter (pydantic's JSON parser, already installed), about twice as fast
    as the json module on a publication frame; whatever jiter refuses gets the json module's
    verdict, so what is accepted is exactly what json.loads accepts (lone surrogates in
    escapes, nesting deeper than jiter's 200 levels)."""
    try:
        return _fast_loads(line)
    except ValueError:
        return json.loads(line)


class Malformed(Exception):
    """A frame that breaks the protocol; caught per line and turned into a counted drop."""


def field(obj: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = obj.get(key, default)
    # bool is an int in Python; the protocol never sends a boolean where a number belongs.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Malformed(f"field {key!r} should be {kind.__name__}, got {type(value).__name__}")
    return value


def uint(obj: dict[str, Any], key: str = "offset") -> int:
    value: int = field(obj, key, int, 0)
    if value < 0:
        raise Malformed(f"field {key!r} is negative")
    # A bigger number is not a uint64: kept as a position it would be sent back in a recover
    # (and the server closes with 3501, terminal); as ping/ttl float() would overflow.
    if value > MAX_UINT64:
        raise Malformed(f"field {key!r} is out of range")
    return value


def object_field(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value: dict[str, Any] = field(obj, key, dict, {})
    return value


def client_info(raw: Any, known: dict[tuple[str, str], ClientInfo] | None = None) -> ClientInfo:
    if not isinstance(raw, dict):
        raise Malformed("client info should be an object")
    user, client = raw.get("user", ""), raw.get("client", "")
    conn_info, chan_info = raw.get("conn_info"), raw.get("chan_info")
    if (known is not None and type(user) is str and type(client) is str
            and conn_info is None and chan_info is None):
        # The few publishers of a room publish again and again: their (immutable) info is
        # made once, not per publication. Bounded: forgotten wholesale when it fills up.
        info = known.get((user, client))
        if info is None:
            if len(known) >= KNOWN_INFOS:
                known.clear()
            info = known[user, client] = ClientInfo(user, client)
        return info
    return ClientInfo(user=field(raw, "user", str, ""), client=field(raw, "client", str, ""),
                      conn_info=conn_info, chan_info=chan_info)


def _tags(raw: dict[str, Any]) -> dict[str, str]:
    tags = object_field(raw, "tags")
    if not all(isinstance(v, str) for v in tags.values()):
        raise Malformed("tags should map strings to strings")
    return tags


def publication(channel: str, raw: Any,
                 known: dict[tuple[str, str], ClientInfo] | None = None) -> Publication:
    if not isinstance(raw, dict):
        raise Malformed("publication should be an object")
    # The common case (an exact int in range, no tags) is read directly; anything else takes
    # the checking path, which words the error. Checked in the same order either way: offset,
    # info, tags.
    offset = raw.get("offset", 0)
    if type(offset) is not int or not 0 <= offset <= MAX_UINT64:
        offset = uint(raw)
    info = raw.get("info")
    if info is not None:
        info = client_info(info, known)
    tags = raw.get("tags")
    tags = {} if tags is None and "tags" not in raw else _tags(raw)
    return new_publication(channel, raw.get("data"), offset, info, tags)


def _slot_setter(cls: type, name: str) -> Any:
    return cls.__dict__[name].__set__


# Publications and stream positions are made once per message. A frozen dataclass's __init__
# sets each field through object.__setattr__; writing the slots directly is twice as fast and
# makes the very same object (checked by tests/protocol/test_fast_paths.py).
_new_object = object.__new__
_set_pub = tuple(_slot_setter(Publication, name)
                 for name in ("channel", "data", "offset", "info", "tags"))
_set_pos = tuple(_slot_setter(StreamPosition, name) for name in ("offset", "epoch"))


def new_publication(channel: str, data: Any, offset: int, info: ClientInfo | None,
                     tags: dict[str, str]) -> Publication:
    publication = _new_object(Publication)
    set_channel, set_data, set_offset, set_info, set_tags = _set_pub
    set_channel(publication, channel)
    set_data(publication, data)
    set_offset(publication, offset)
    set_info(publication, info)
    set_tags(publication, tags)
    return publication


def new_position(offset: int, epoch: str) -> StreamPosition:
    position = _new_object(StreamPosition)
    set_offset, set_epoch = _set_pos
    set_offset(position, offset)
    set_epoch(position, epoch)
    return position
