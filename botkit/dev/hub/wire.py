"""JSON on the wire: compact encoding, strict decoding and typed reads of decoded objects.

Centrifugo decodes commands with Go's ``encoding/json`` into typed structs, so a value of the
wrong type anywhere (a string id, a float offset, ``NaN``) fails the whole command, while JSON
``null`` leaves a field at its zero value and unknown keys are ignored. :class:`Fields` reproduces
exactly that, so the hub refuses and accepts the same frames as the real server.

Two values pass Go's decoder but not the hub's, on purpose: a number too large for a 64-bit
float (``1e999``) and a string holding a lone UTF-16 surrogate (``"\\ud800"``). Centrifugo keeps
``data`` as raw bytes and forwards them; the hub holds decoded values, which it could not write
back as JSON (or as UTF-8), so it refuses them where they arrive: HTTP 400 with the reason on the
server API, close 3003 on the client protocol.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["FieldError", "Fields", "dumps", "loads", "push", "split_lines"]

_UINT32 = 2**32 - 1
_UINT64 = 2**64 - 1
_INT32 = (-(2**31), 2**31 - 1)

# ensure_ascii=False: Centrifugo writes UTF-8 as is. No indent, so a frame never holds a raw
# newline, which is what lets several frames share one message joined by "\n".
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class FieldError(ValueError):
    """A value that Go's JSON decoder would refuse for the field it lands in."""


def dumps(value: Any) -> str:
    return _encode(value)


def push(channel: str, kind: str, body: dict[str, Any]) -> str:
    """A push frame (no id): ``pub``, ``join``, ``leave``, ``unsubscribe``..."""
    return _encode({"push": {"channel": channel, kind: body}})


def _no_constants(name: str) -> Any:
    raise FieldError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else text[:21] + "..."
        raise FieldError(f"the number {shown} is out of range: numbers must fit a 64-bit float")
    return value


# Only a text with such an escape can decode to a lone surrogate: the costly check runs then.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def loads(text: str | bytes) -> Any:
    """Decode JSON the way Go does: ``NaN``/``Infinity`` are errors, not floats; and, unlike
    Go, refuse numbers beyond a float's range and lone surrogates (see the module's text)."""
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
    except FieldError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise FieldError(f"invalid JSON: {exc}") from exc
    escaped = (_SURROGATE_ESCAPE_BYTES.search(text) if isinstance(text, bytes)
               else _SURROGATE_ESCAPE.search(text))
    if escaped:
        try:
            _encode(value).encode()
        except UnicodeEncodeError:
            raise FieldError("a string holds a lone surrogate (an unpaired \\ud800-\\udfff "
                             "escape), which is not Unicode text") from None
    return value


def split_lines(text: str) -> list[str]:
    """The commands of one WebSocket message. Go's decoder reads up to each ``\\n``: a final
    newline just ends the last command, while an empty line is a command that fails to parse
    (so it stays in the list, for the caller to refuse)."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


class Fields:
    """Typed reads of one decoded JSON object; a wrong type raises :class:`FieldError`."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    @classmethod
    def of(cls, value: Any, what: str = "value") -> Fields:
        if value is None:
            return cls({})
        if not isinstance(value, dict):
            raise FieldError(f"{what} must be an object")
        return cls(value)

    def has(self, key: str) -> bool:
        """True when ``key`` holds a value; JSON null counts as absent, as in Go."""
        return self._raw.get(key) is not None

    def present(self, key: str) -> bool:
        """True when ``key`` is there at all: a raw JSON ``null`` is a value (Go keeps the
        four bytes ``null`` for a raw field), a missing key is empty."""
        return key in self._raw

    def raw(self, key: str) -> Any:
        """A raw JSON value (``data``, ``info``): any JSON, kept as decoded."""
        return self._raw.get(key)

    def text(self, key: str) -> str:
        value = self._raw.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise FieldError(f"{key} must be a string")
        return value

    def flag(self, key: str) -> bool:
        value = self._raw.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise FieldError(f"{key} must be a boolean")
        return value

    def _integer(self, key: str, low: int, high: int) -> int:
        value = self._raw.get(key)
        if value is None:
            return 0
        # bool is an int in Python, and Go refuses both true and 1.0 for an integer field.
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise FieldError(f"{key} must be an integer in [{low}, {high}]")
        return value

    def uint32(self, key: str) -> int:
        return self._integer(key, 0, _UINT32)

    def uint64(self, key: str) -> int:
        return self._integer(key, 0, _UINT64)

    def int32(self, key: str) -> int:
        return self._integer(key, *_INT32)

    def int64(self, key: str) -> int:
        return self._integer(key, -(2**63), 2**63 - 1)

    def obj(self, key: str) -> Fields | None:
        value = self._raw.get(key)
        return None if value is None else Fields.of(value, key)

    def text_map(self, key: str) -> dict[str, str]:
        value = self._raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise FieldError(f"{key} must map strings to strings")
        return dict(value)

    def text_list(self, key: str) -> list[str]:
        value = self._raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FieldError(f"{key} must be a list of strings")
        return list(value)

    def obj_map(self, key: str) -> dict[str, Fields]:
        value = self._raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise FieldError(f"{key} must be an object")
        return {name: Fields.of(item, key) for name, item in value.items()}
