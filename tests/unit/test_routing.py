"""Routing, data in and data out: command lines, handler signatures, argument conversion."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any, Optional

import pytest

from botkit import ChatMessage, Context, Envelope, UserJoined
from botkit.envelope import chat_message
from botkit.errors import PluginError
from botkit.routing import (
    ArgumentError,
    CommandLine,
    HandlerSignature,
    ParamKind,
    parse_command_line,
    read_signature,
)

CTX = object()  # bind() passes the context through untouched; any marker will do


class Color(enum.Enum):
    RED = "red"
    GREEN = "grn"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


def command(fn: Callable[..., Any]) -> HandlerSignature:
    return read_signature(fn, command=True, what="bot t: command 'x' handler")


def event_handler(fn: Callable[..., Any]) -> HandlerSignature:
    return read_signature(fn, command=False, what="bot t: handler")


def args(signature: HandlerSignature, rest: str) -> list[Any]:
    """The values a command handler gets for ``rest``, without the context."""
    return signature.bind(CTX, None, None, rest)[1:]


# -- parse_command_line -----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("/ping", CommandLine("ping", "")),
    ("/roll 2d6", CommandLine("roll", "2d6")),
    ("/ROLL 2d6", CommandLine("roll", "2d6")),
    ("/Roll   2d6   ", CommandLine("roll", "2d6")),
    ("/echo  a  b ", CommandLine("echo", "a  b")),
    ("/roll\t2d6", CommandLine("roll", "2d6")),
    ("/roll\n2d6", CommandLine("roll", "2d6")),
    ("/ping ", CommandLine("ping", "")),
])
def test_command_lines(text: str, expected: CommandLine) -> None:
    assert parse_command_line(text, "/") == expected


@pytest.mark.parametrize("text", ["/", "/ ", "/   ", "", "ping", "hello /ping", " /ping", "/ ping",
                                  "!ping"])
def test_not_command_lines(text: str) -> None:
    assert parse_command_line(text, "/") is None


def test_other_prefixes() -> None:
    assert parse_command_line("!ping now", "!") == CommandLine("ping", "now")
    assert parse_command_line("bot: Ping", "bot: ") == CommandLine("ping", "")
    assert parse_command_line("/ping", "!") is None
    assert parse_command_line("/ping", "") is None  # no prefix: nothing is a command


# -- conversion ------------------------------------------------------------------------------

def test_str_int_float_arguments() -> None:
    async def handler(ctx: Context, name: str, count: int, ratio: float, last: int) -> None:
        pass

    signature = command(handler)
    assert args(signature, "bob 3 0.5 -7") == ["bob", 3, 0.5, -7]
    assert [p.type_name for p in signature.arguments] == [
        "text", "a whole number", "a number", "a whole number"]
    with pytest.raises(ArgumentError, match=r"count should be a whole number, got 'three'"):
        args(signature, "bob three 0.5 1")
    with pytest.raises(ArgumentError, match=r"ratio should be a number, got 'x'"):
        args(signature, "bob 3 x 1")


@pytest.mark.parametrize(("raw", "value"), [
    ("yes", True), ("no", False), ("true", True), ("false", False), ("on", True),
    ("off", False), ("1", True), ("0", False), ("YES", True), ("Off", False)])
def test_bool_arguments(raw: str, value: bool) -> None:
    async def handler(ctx: Context, flag: bool) -> None:
        pass

    assert args(command(handler), raw) == [value]


def test_bool_refuses_other_words() -> None:
    async def handler(ctx: Context, flag: bool) -> None:
        pass

    with pytest.raises(ArgumentError, match=r"flag should be yes or no, got 'maybe'"):
        args(command(handler), "maybe")


def test_enum_by_value_and_name_case_insensitive() -> None:
    async def handler(ctx: Context, color: Color, level: Level) -> None:
        pass

    signature = command(handler)
    assert args(signature, "red 1") == [Color.RED, Level.LOW]
    assert args(signature, "GRN high") == [Color.GREEN, Level.HIGH]
    assert args(signature, "Green 2") == [Color.GREEN, Level.HIGH]
    with pytest.raises(ArgumentError, match=r"color should be one of red, grn, got 'blue'"):
        args(signature, "blue 1")
    with pytest.raises(ArgumentError, match=r"level should be one of 1, 2"):
        args(signature, "red 3")


def test_optional_arguments() -> None:
    async def handler(ctx: Context, a: Optional[int], b: float | None,  # noqa: UP045
                      c: int | None = 5) -> None:
        pass

    signature = command(handler)
    assert [p.required for p in signature.arguments] == [False, False, False]
    assert args(signature, "") == [None, None, 5]
    assert args(signature, "1") == [1, None, 5]
    assert args(signature, "1 2.5 3") == [1, 2.5, 3]
    with pytest.raises(ArgumentError, match="a should be a whole number"):
        args(signature, "x")


def test_defaults_and_missing_required() -> None:
    async def handler(ctx: Context, count: int, sides: int = 6) -> None:
        pass

    signature = command(handler)
    assert args(signature, "2") == [2, 6]
    assert args(signature, "2 20") == [2, 20]
    with pytest.raises(ArgumentError, match=r"^missing count$"):
        args(signature, "")
    with pytest.raises(ArgumentError, match=r"^too many arguments$"):
        args(signature, "1 2 3")


def test_a_command_without_arguments_refuses_some() -> None:
    async def handler(ctx: Context) -> None:
        pass

    signature = command(handler)
    assert args(signature, "") == []
    with pytest.raises(ArgumentError, match="too many arguments"):
        args(signature, "surprise")


def test_quoted_tokens_with_escapes() -> None:
    async def handler(ctx: Context, first: str, count: int) -> None:
        pass

    # `first` is not the last argument, so it is one token: quotes group words.
    signature = command(handler)
    assert args(signature, '"two words" 3') == ["two words", 3]
    assert args(signature, r'"say \"hi\" \\ now" 4') == [r'say "hi" \ now', 4]
    assert args(signature, '"" 1') == ["", 1]
    assert args(signature, "plain 1") == ["plain", 1]


def test_last_str_parameter_takes_the_rest_of_the_line_raw() -> None:
    async def handler(ctx: Context, count: int, text: str) -> None:
        pass

    signature = command(handler)
    assert signature.arguments[-1].greedy
    assert not signature.arguments[0].greedy
    assert args(signature, '3 hello   "big"  world ') == [3, 'hello   "big"  world']
    assert args(signature, '3 "quoted \\" stays"') == [3, '"quoted \\" stays"']
    with pytest.raises(ArgumentError, match="missing text"):
        args(signature, "3")


def test_optional_greedy_str() -> None:
    async def handler(ctx: Context, dice: str = "1d6") -> None:
        pass

    signature = command(handler)
    assert args(signature, "") == ["1d6"]
    assert args(signature, "2d6 please") == ["2d6 please"]


def test_only_the_last_str_is_greedy() -> None:
    async def handler(ctx: Context, who: str, count: int) -> None:
        pass

    signature = command(handler)
    assert [p.greedy for p in signature.arguments] == [False, False]
    with pytest.raises(ArgumentError, match="too many arguments"):
        args(signature, "bob 1 2")


# -- usage -----------------------------------------------------------------------------------

def test_usage_text() -> None:
    async def handler(ctx: Context, count: int, color: Color | None, text: str = "x") -> None:
        pass

    assert command(handler).usage("/paint") == "/paint <count> [color] [text]"

    async def bare(ctx: Context) -> None:
        pass

    assert command(bare).usage("!ping") == "!ping"


# -- what each parameter receives ------------------------------------------------------------

def test_envelope_and_match_parameters() -> None:
    async def handler(ctx: Context, event: ChatMessage, found: re.Match[str]) -> None:
        pass

    signature = event_handler(handler)
    assert [p.kind for p in signature.params] == [ParamKind.CONTEXT, ParamKind.EVENT,
                                                  ParamKind.MATCH]
    message = chat_message(room_id="lobby", sender_id="user_a", text="hello 42")
    found = re.search(r"\d+", message.text)
    assert signature.bind(CTX, message, found) == [CTX, message, found]
    assert signature.is_async
    assert signature.name.endswith("handler")


def test_any_envelope_subclass_and_unannotated_names() -> None:
    async def typed(ctx, who: UserJoined, base: Envelope) -> None:  # type: ignore[no-untyped-def]
        pass

    def untyped(ctx, event, match):  # type: ignore[no-untyped-def]
        pass

    assert [p.kind for p in event_handler(typed).params] == [
        ParamKind.CONTEXT, ParamKind.EVENT, ParamKind.EVENT]
    signature = event_handler(untyped)
    assert [p.kind for p in signature.params] == [
        ParamKind.CONTEXT, ParamKind.EVENT, ParamKind.MATCH]
    assert not signature.is_async


def test_a_command_may_also_take_the_event() -> None:
    async def handler(ctx: Context, event: ChatMessage, count: int) -> None:
        pass

    signature = command(handler)
    message = chat_message(room_id="lobby", sender_id="user_a", text="/x 4")
    assert signature.bind(CTX, message, None, "4") == [CTX, message, 4]


# -- refused at registration -----------------------------------------------------------------

async def no_params() -> None:
    pass


async def star_args(ctx: Context, *words: str) -> None:
    pass


async def star_kwargs(ctx: Context, **options: str) -> None:
    pass


async def only_star_kwargs(**options: Any) -> None:
    pass


async def keyword_only(ctx: Context, *, count: int) -> None:
    pass


async def list_param(ctx: Context, numbers: list[int]) -> None:
    pass


async def dict_param(ctx: Context, options: dict[str, str]) -> None:
    pass


async def union_param(ctx: Context, value: int | str) -> None:
    pass


@pytest.mark.parametrize(("fn", "reason"), [
    (no_params, "must take the context as its first parameter"),
    (star_args, r"\*words can't be served"),
    (star_kwargs, r"\*options can't be served"),
    (only_star_kwargs, r"\*options can't be served"),
    (keyword_only, "keyword-only"),
    (list_param, "parameter 'numbers' has type list\\[int\\]"),
    (dict_param, "parameter 'options' has type dict\\[str, str\\]"),
    (union_param, "parameter 'value' has type"),
])
def test_refused_command_signatures(fn: Callable[..., Any], reason: str) -> None:
    with pytest.raises(PluginError, match=reason) as caught:
        command(fn)
    assert fn.__name__ in str(caught.value)
    assert "bot t: command 'x' handler" in str(caught.value)


async def extra_param(ctx: Context, event: ChatMessage, count: int) -> None:
    pass


async def extra_untyped(ctx: Context, other) -> None:  # type: ignore[no-untyped-def]
    pass


@pytest.mark.parametrize("fn", [extra_param, extra_untyped, star_args, no_params])
def test_refused_event_handler_signatures(fn: Callable[..., Any]) -> None:
    with pytest.raises(PluginError) as caught:
        event_handler(fn)
    assert f"bot t: handler {fn.__name__}" in str(caught.value)


def test_an_event_handler_parameter_names_the_fix() -> None:
    with pytest.raises(PluginError, match=r"parameter 'count' can't be served; an event "
                                          r"handler takes \(ctx\) or \(ctx, event\)"):
        event_handler(extra_param)


def test_unresolvable_hint_is_refused_with_the_name() -> None:
    async def broken(ctx: Context, thing: NoSuchType) -> None:  # type: ignore[name-defined] # noqa: F821
        pass

    with pytest.raises(PluginError, match="broken: cannot read its signature"):
        command(broken)


def test_not_callable_is_refused() -> None:
    with pytest.raises(PluginError, match="must be a function"):
        read_signature("nope", command=True, what="bot t: handler")  # type: ignore[arg-type]
