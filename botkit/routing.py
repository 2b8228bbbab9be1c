"""From a handler's signature to a call: what each parameter receives, and how command
arguments are converted from text.

A signature is read once, when the handler is registered; anything that can't be served is
refused there with the handler's name, so a bot never fails on its first message instead.
"""

from __future__ import annotations

import enum
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from botkit.envelope import Envelope
from botkit.errors import PluginError

__all__ = [
    "ALLOW_NON_FINITE",
    "ArgumentError",
    "CommandLine",
    "HandlerSignature",
    "Param",
    "ParamKind",
    "parse_command_line",
    "read_signature",
]

_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


class _AllowNonFinite:
    def __repr__(self) -> str:
        return "ALLOW_NON_FINITE"


ALLOW_NON_FINITE: Any = _AllowNonFinite()
"""Opt-in for a ``float`` command argument to accept ``nan``, ``inf`` and ``-inf`` (and numbers
too large for a float, like ``1e999``, which read as infinite)::

    @bot.command("scale")
    async def scale(ctx, factor: Annotated[float, ALLOW_NON_FINITE]) -> None: ...

Without it such arguments are refused with the usage line: a room member's ``nan`` compares
false with everything and turns every sum it enters into ``nan``, which handlers rarely expect.
"""


class ArgumentError(Exception):
    """A command's arguments don't fit its handler; the user gets the usage line."""


class ParamKind(enum.Enum):
    CONTEXT = "context"
    EVENT = "event"
    MATCH = "match"
    ARGUMENT = "argument"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: ParamKind
    converter: Callable[[str], Any] | None = None
    type_name: str = "text"
    required: bool = True
    default: Any = None
    greedy: bool = False


@dataclass(frozen=True, slots=True)
class CommandLine:
    """A chat message read as a command: ``/name rest of the line``."""

    name: str
    rest: str


_PICKS = {ParamKind.CONTEXT: 0, ParamKind.EVENT: 1, ParamKind.MATCH: 2}
_CTX_EVENT = (0, 1)  # the usual handler, (ctx, event): bound without a loop


@dataclass(frozen=True, slots=True)
class HandlerSignature:
    name: str
    is_async: bool
    params: tuple[Param, ...]
    _picks: tuple[int, ...] | None = field(init=False, repr=False, compare=False)
    """Without command arguments: which of (ctx, event, match) each parameter receives, read
    once here rather than per call (bench/ S1)."""

    def __post_init__(self) -> None:
        kinds = [param.kind for param in self.params]
        picks = (None if ParamKind.ARGUMENT in kinds
                 else tuple(_PICKS[kind] for kind in kinds))
        object.__setattr__(self, "_picks", _CTX_EVENT if picks == _CTX_EVENT else picks)

    @property
    def arguments(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.kind is ParamKind.ARGUMENT)

    def usage(self, invocation: str) -> str:
        labels = [f"<{p.name}>" if p.required else f"[{p.name}]" for p in self.arguments]
        return " ".join([invocation, *labels])

    def bind(self, ctx: Any, event: Envelope | None, match: re.Match[str] | None = None,
             rest: str | None = None) -> list[Any]:
        """The positional arguments of one call. Raises ArgumentError when command arguments
        are missing, extra or don't convert."""
        picks = self._picks
        if picks is not None and rest is None:
            if picks is _CTX_EVENT:
                return [ctx, event]
            given = (ctx, event, match)
            return [given[index] for index in picks]
        arguments = _convert_arguments(self.arguments, rest) if rest is not None else {}
        values: list[Any] = []
        for param in self.params:
            if param.kind is ParamKind.CONTEXT:
                values.append(ctx)
            elif param.kind is ParamKind.EVENT:
                values.append(event)
            elif param.kind is ParamKind.MATCH:
                values.append(match)
            else:
                values.append(arguments.get(param.name, param.default))
        return values


def parse_command_line(text: str, prefix: str) -> CommandLine | None:
    """``"/roll 2d6"`` → CommandLine("roll", "2d6"); None when the text is not a command."""
    if not prefix or not text.startswith(prefix):
        return None
    body = text[len(prefix):]
    if not body or body[0].isspace():
        return None  # "/ ping" is prose that starts with a slash, not a command
    name, _, rest = body.partition(" ")
    name = name.strip()
    if not name or any(c.isspace() for c in name):
        head = body.split(None, 1)
        if not head:
            return None
        name, rest = head[0], (head[1] if len(head) > 1 else "")
    return CommandLine(name.lower(), rest.strip())


def _convert_arguments(params: Sequence[Param], rest: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    position = 0
    for index, param in enumerate(params):
        remaining = rest[position:].strip()
        if param.greedy and index == len(params) - 1:
            if remaining:
                values[param.name] = _convert(param, remaining)
                position = len(rest)
            elif param.required:
                raise ArgumentError(f"missing {param.name}")
            continue
        match = _TOKEN.search(rest, position)
        if match is None:
            if param.required:
                raise ArgumentError(f"missing {param.name}")
            continue
        raw = match.group(2) if match.group(1) is None else _unescape(match.group(1))
        values[param.name] = _convert(param, raw)
        position = match.end()
    if rest[position:].strip():
        raise ArgumentError("too many arguments")
    return values


def _unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted)


def _convert(param: Param, raw: str) -> Any:
    assert param.converter is not None
    try:
        return param.converter(raw)
    except (ValueError, KeyError) as exc:
        raise ArgumentError(f"{param.name} should be {param.type_name}, got {raw!r:.40}") from exc


def _to_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(raw)


def _enum_converter(kind: type[enum.Enum]) -> Callable[[str], Any]:
    by_key: dict[str, enum.Enum] = {}
    for member in kind:
        by_key[member.name.lower()] = member
        by_key[str(member.value).lower()] = member

    def convert(raw: str) -> enum.Enum:
        return by_key[raw.lower()]

    return convert


def _finite_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


def _converter_for(annotation: Any, *, non_finite: bool = False
                   ) -> tuple[Callable[[str], Any], str] | None:
    if annotation is str or annotation is inspect.Parameter.empty:
        return str, "text"
    if annotation is bool:
        return _to_bool, "yes or no"
    if annotation is int:
        return int, "a whole number"
    if annotation is float:
        return (float, "a number") if non_finite else (_finite_float, "a number")
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        choices = ", ".join(str(m.value) for m in annotation)
        return _enum_converter(annotation), f"one of {choices}"
    return None


def _split_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[float, X]`` -> ``(float, (X,))``; anything else -> ``(annotation, ())``."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, tuple(extras)
    return annotation, ()


def _optional_inner(annotation: Any) -> Any | None:
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(annotation)) == 2:
            return members[0]
    return None


def _is_envelope_type(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Envelope)


def _is_match_type(annotation: Any) -> bool:
    return annotation is re.Match or typing.get_origin(annotation) is re.Match


def read_signature(fn: Callable[..., Any], *, command: bool, what: str) -> HandlerSignature:
    """Read ``fn``'s parameters once. The first receives the Context; a parameter annotated
    with an Envelope type (or named ``event``) receives the envelope; one annotated ``re.Match``
    (or named ``match``) the regex match; for commands, the rest are arguments converted from
    text, the last ``str`` one taking the rest of the line."""
    name = getattr(fn, "__qualname__", repr(fn))
    if not callable(fn):
        raise PluginError(f"{what} {name}: a handler must be a function")
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise PluginError(f"{what} {name}: cannot read its signature: {exc}") from exc
    parameters = list(signature.parameters.values())
    if not parameters:
        raise PluginError(f"{what} {name}: it must take the context as its first parameter")
    for parameter in parameters:
        _check_positional(parameter, where=f"{what} {name}")
    params = [Param(parameters[0].name, ParamKind.CONTEXT)]
    params += [_read_param(parameter, hints.get(parameter.name, parameter.annotation),
                           command=command, where=f"{what} {name}")
               for parameter in parameters[1:]]
    arguments = [p for p in params if p.kind is ParamKind.ARGUMENT]
    if arguments and arguments[-1].converter is str:
        params[params.index(arguments[-1])] = _greedy(arguments[-1])
    return HandlerSignature(name, inspect.iscoroutinefunction(fn), tuple(params))


def _greedy(param: Param) -> Param:
    return Param(param.name, param.kind, param.converter, param.type_name, param.required,
                 param.default, greedy=True)


def _check_positional(parameter: inspect.Parameter, *, where: str) -> None:
    # Handlers are called with positional arguments only (the context first): anything else,
    # the first parameter included, would fail on every call instead of at registration.
    if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise PluginError(f"{where}: *{parameter.name} can't be served; "
                          "name each parameter (the last str one takes the rest of the line)")
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
        raise PluginError(f"{where}: keyword-only parameter {parameter.name!r} can't be "
                          "served; move it before the '*'")


def _read_param(parameter: inspect.Parameter, annotation: Any, *, command: bool,
                where: str) -> Param:
    annotation, extras = _split_annotated(annotation)
    if _is_envelope_type(annotation) or (parameter.name == "event"
                                         and annotation is inspect.Parameter.empty):
        return Param(parameter.name, ParamKind.EVENT)
    if _is_match_type(annotation) or (parameter.name == "match"
                                      and annotation is inspect.Parameter.empty):
        return Param(parameter.name, ParamKind.MATCH)
    if not command:
        raise PluginError(
            f"{where}: parameter {parameter.name!r} can't be served; an event handler takes "
            "(ctx) or (ctx, event), plus a re.Match for @bot.match")
    has_default = parameter.default is not inspect.Parameter.empty
    inner = _optional_inner(annotation)
    optional = inner is not None
    if inner is not None:
        inner, more = _split_annotated(inner)
        extras += more
    base = inner if optional else annotation
    non_finite = any(extra is ALLOW_NON_FINITE for extra in extras)
    if non_finite and base is not float:
        raise PluginError(f"{where}: parameter {parameter.name!r}: ALLOW_NON_FINITE applies "
                          "to float parameters only")
    converted = _converter_for(base, non_finite=non_finite)
    if converted is None:
        raise PluginError(
            f"{where}: parameter {parameter.name!r} has type {annotation!r}, which commands "
            "can't convert; use str, int, float, bool, an Enum, or an optional of these")
    converter, type_name = converted
    return Param(parameter.name, ParamKind.ARGUMENT, converter, type_name,
                 required=not (has_default or optional),
                 default=parameter.default if has_default else None)
