"""How :mod:`botkit.envelope` words what is wrong with an envelope: one short line that names the
field and quotes at most a short preview of the value (envelopes come from other users, and a
hostile value must not flood the logs)."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from botkit.errors import EnvelopeError

__all__ = ["describe", "field_error", "kind", "not_an_object", "preview", "reason", "truncate"]

_PREVIEW_LENGTH = 40
_MAX_REASON_LENGTH = 300

_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "dict_type": "an object",
    "list_type": "an array",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def field_error(reason: str) -> PydanticCustomError:
    # The reason goes into the context, not the template, so braces in a quoted value are safe.
    return PydanticCustomError("envelope_field", "{reason}", {"reason": reason})


def not_an_object(value: object) -> EnvelopeError:
    return EnvelopeError(f"not a JSON object (got {kind(value)})")


def reason(exc: ValidationError) -> str:
    """The first problem in ``exc`` as one short line, e.g. "missing field 'senderId'"."""
    # default_factory_not_called only echoes an earlier error (user_id waits for sender_id).
    errors = [e for e in exc.errors(include_url=False)
              if e["type"] != "default_factory_not_called"]
    if not errors:
        return truncate(str(exc))
    line = describe(errors[0])
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return truncate(line)


def describe(error: ErrorDetails) -> str:
    error_type, value, ctx = error["type"], error["input"], error.get("ctx") or {}
    field = ".".join(str(part) for part in error["loc"])
    if error_type == "missing":
        return f"missing field '{field}'"
    if error_type == "invalid_key":
        return f"field names must be strings, not {kind(value)}"
    if error_type == "envelope_field":
        return f"'{field}' {error['msg']}"
    if error_type == "string_too_long" and isinstance(value, str):
        return f"'{field}' is {len(value)} characters; the limit is {ctx['max_length']}"
    if error_type == "string_too_short" and ctx.get("min_length") == 1:
        return f"'{field}' must not be empty"
    if error_type == "literal_error":
        return f"'{field}' must be {ctx['expected']}, not {preview(value)}"
    if error_type in _EXPECTED:
        return f"'{field}' must be {_EXPECTED[error_type]}, not {kind(value)}"
    where = f"'{field}': " if field else ""
    return f"{where}{error['msg']} (got {preview(value)})"


def kind(value: object) -> str:
    """What a value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__} object"


def preview(value: object) -> str:
    """A short repr: hostile values must not flood the logs."""
    if isinstance(value, str):
        if len(value) <= _PREVIEW_LENGTH:
            return repr(value)
        return f"{value[:_PREVIEW_LENGTH]!r}... ({len(value)} characters)"
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    # repr() of an int beyond 4300 digits raises ValueError, and long ones flood the logs.
    if isinstance(value, int) and value.bit_length() <= 64:
        return repr(value)
    return kind(value)


def truncate(text: str) -> str:
    return text if len(text) <= _MAX_REASON_LENGTH else text[:_MAX_REASON_LENGTH] + "..."
