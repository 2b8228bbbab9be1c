"""Turning pydantic's validation errors into located ConfigErrors that suggest a fix.

pydantic reports *what* is wrong at a path like ``("bots", 0, "rooms")``; the source map says
*where* that path was written, and the model (walked along the same path) says what was expected
there: a field's ``description`` is written as a noun phrase ("a list of room ids, e.g. ...") so it
reads naturally after "expected". Input values are never quoted unless a validator put them in its
own message, and even then not when they came from the environment, a file, or a secret field.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from botkit.config._schema import Resolved, is_secret, resolve
from botkit.config._source import Loc, SourceMap, combine_errors
from botkit.errors import ConfigError

__all__ = ["describe", "located", "translate", "without_inputs"]

_LOCATED = "botkit_config"
_REDACTED = "***"
_MIN_REDACTED_LENGTH = 4  # shorter values would mask ordinary words of the message

_EXPECTED_BY_TYPE = {
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}
_EMPTY_HINT = {"a list": "; write [] for an empty list", "a mapping": "; write {} for an empty one"}
_BOUNDS = {"greater_than": ("gt", "greater than"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}


def located(message: str, *sub_loc: str | int) -> PydanticCustomError:
    """An error for a validator to raise about a part *below* the value it validates.

    pydantic locates a validator's error at the validated value (all of ``rooms``, say); a
    duplicate is better shown at the item itself. The extra path travels in the error's context
    and :func:`translate` appends it.
    """
    return PydanticCustomError(_LOCATED, "{message}", {"message": message, "sub_loc": sub_loc})


def translate(errors: Iterable[ErrorDetails], source: SourceMap, model: type[BaseModel],
              prefix: Loc = ()) -> ConfigError:
    """One ConfigError for pydantic ``errors`` raised while validating ``model`` at ``prefix``."""
    found = [_translate_one(error, source, model, prefix) for error in errors]
    return combine_errors(source.error((*prefix, *loc), message)
                          for loc, message in _merge_alternatives(found))


def without_inputs(exc: ValidationError, source: SourceMap, model: type[BaseModel],
                   prefix: Loc = ()) -> ValidationError:
    """A copy of ``exc`` that can't print hidden inputs, to chain ConfigErrors from.

    A chained cause is printed with every logged traceback. pydantic's text quotes the input
    (``input_value=...``) unless the model opted out, which a plugin's settings model may not
    have; and a validator's message may quote it too, which is redacted here as in
    :func:`translate`.
    """
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        message = error["msg"]
        if _is_hidden(resolve(model, _loc_of(error)), source, prefix):
            message = _redact(message, error.get("input"))
        details.append({"type": PydanticCustomError(error["type"], "{message}",
                                                    {"message": message}),
                        "loc": error["loc"], "input": None})
    return ValidationError.from_exception_data(exc.title, details, hide_input=True)


def describe(value: Any) -> str:
    """What kind of value the user wrote, without quoting it."""
    if value is None:
        return "nothing (the key has no value)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    kinds = ((str, "a string"), (Mapping, "a mapping"), (list, "a list"))
    return next((name for kind, name in kinds if isinstance(value, kind)),
                f"a {type(value).__name__}")


def _translate_one(error: ErrorDetails, source: SourceMap, model: type[BaseModel],
                   prefix: Loc) -> tuple[Loc, str]:
    """The location (relative to ``prefix``) and the message of one error."""
    at = resolve(model, _loc_of(error))
    if error["type"] == "invalid_key" or at.loc[-1:] == ("[key]",):
        # A key YAML read as a number or a boolean (1:, on:, yes:); pydantic wants strings.
        return (at.loc[:-1] if at.loc[-1:] == ("[key]",) else at.loc,
                "keys must be strings; YAML reads unquoted digits and yes/no/on/off as other "
                "types, so put the key in quotes")
    message = _message(error, at, model)
    if _is_hidden(at, source, prefix):
        message = _redact(message, error.get("input"))
    return at.loc, message


def _merge_alternatives(found: list[tuple[Loc, str]]) -> Iterator[tuple[Loc, str]]:
    """A value that fits no member of a union gets one error per member ("expected a whole
    number, got a list", "expected a string, got a list"): say it once, with "or"."""
    by_loc: dict[Loc, list[str]] = {}
    for loc, message in found:
        by_loc.setdefault(loc, []).append(message)
    for loc, messages in by_loc.items():
        parts = [message.removeprefix("expected ").rpartition(", got ") for message in messages]
        if (len(messages) > 1 and all(m.startswith("expected ") for m in messages)
                and all(sep for _, sep, _ in parts) and len({got for *_, got in parts}) == 1):
            yield loc, f"expected {' or '.join(part[0] for part in parts)}, got {parts[0][2]}"
        else:
            yield from ((loc, message) for message in messages)


def _loc_of(error: ErrorDetails) -> Loc:
    """Where the error is, including the part a validator pointed at with :func:`located`."""
    loc: Loc = tuple(error["loc"])
    if error["type"] == _LOCATED:
        loc += tuple((error.get("ctx") or {}).get("sub_loc", ()))
    return loc


def _is_hidden(at: Resolved, source: SourceMap, prefix: Loc) -> bool:
    """Whether the value at ``at`` must not be quoted: it came from the environment or a file,
    or its field holds a secret."""
    return source.is_hidden((*prefix, *at.loc)) or is_secret(at.annotation)


def _message(error: ErrorDetails, at: Resolved, model: type[BaseModel]) -> str:
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    description = at.field.description if at.field is not None else None
    if kind == "missing":
        return f"required key {at.loc[-1]!r} is missing" + (
            f"; expected {description}" if description else "")
    if kind == "extra_forbidden":
        return _unknown_key(at.loc[-1], resolve(model, at.loc[:-1]).model)
    if kind in _EXPECTED_BY_TYPE:
        expected = _EXPECTED_BY_TYPE[kind]
        return f"expected {description or expected}, got {describe(value)}" + _type_hint(
            expected, value)
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {context.get(key)}"
    if kind == _LOCATED:
        return str(context.get("message", error["msg"]))
    if kind == "value_error" and "error" in context:
        return str(context["error"])
    return error["msg"].removeprefix("Assertion failed, ")


def _type_hint(expected: str, value: Any) -> str:
    if value is None:
        return _EMPTY_HINT.get(expected, "")
    if expected == "a string" and isinstance(value, bool):
        return "; YAML reads yes/no/on/off/true/false as booleans, so put the value in quotes"
    if expected == "a string" and isinstance(value, int | float):
        return "; YAML reads unquoted digits as a number, so put the value in quotes"
    return ""


def _unknown_key(key: str | int, model: type[BaseModel] | None) -> str:
    if model is None:
        return f"unknown key {key!r}"
    keys = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(str(key), keys, n=1)
    if close:
        return f"unknown key {key!r}; did you mean {close[0]!r}?"
    return f"unknown key {key!r}; expected one of: {', '.join(keys)}"


def _redact(message: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        return message
    message = message.replace(repr(value), repr(_REDACTED))
    if len(value) >= _MIN_REDACTED_LENGTH:
        message = message.replace(value, _REDACTED)
    return message
