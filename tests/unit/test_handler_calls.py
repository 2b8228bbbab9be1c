"""How the runtime calls an event or pattern handler (no command line): HandlerCalls.call awaits
it directly rather than through Invocation.__call__ (bench/ S1), with the same outcomes —
arguments by kind in any order, a returned text as the reply, UsageError a plugin error,
deadlines, timing. Driven through the harness, which runs the runtime's own BotCore."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

from botkit import Bot, Context, UsageError
from botkit.envelope import ChatMessage, Envelope
from botkit.testing import BotHarness


async def test_an_event_handler_returning_text_replies_with_it() -> None:
    bot = Bot("echo")

    @bot.on("chat.message")
    async def echo(ctx: Context, event: ChatMessage) -> str:
        return f"echo {event.text}" if event.text != "quiet" else ""

    @bot.on("chat.message")
    async def number(ctx: Context) -> int:
        return 5  # not a text: no reply

    async with BotHarness(bot) as h:
        assert (await h.say("hi")).texts == ["echo hi"]
        assert (await h.say("quiet")).texts == []
        assert h.stats.handler_errors == 0


async def test_arguments_go_by_kind_in_the_order_the_handler_names_them() -> None:
    bot = Bot("kinds")
    seen: list[tuple[object, ...]] = []

    @bot.match(r"(\d+) apples")
    async def apples(ctx: Context, match: re.Match[str], event: Envelope) -> str:
        seen.append((type(ctx), match.group(1), event.id))
        return f"{match.group(1)} of them"

    @bot.match(r"apples")
    async def context_only(ctx: Context) -> None:
        seen.append((type(ctx),))

    @bot.on("*")
    async def every(ctx: Context, event: Envelope) -> None:
        seen.append((type(ctx), event.type))

    async with BotHarness(bot) as h:
        replies = await h.say("3 apples")
        assert replies.texts == ["3 of them"]
        assert replies.cause is not None
        assert seen == [(Context, "3", replies.cause.id), (Context,),
                        (Context, "chat.message")]


async def test_usage_error_outside_a_command_is_a_counted_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    bot = Bot("misuse")

    @bot.on("chat.message")
    async def listen(ctx: Context) -> None:
        raise UsageError("not a command")

    async with BotHarness(bot) as h:
        assert (await h.say("hi")).texts == []
        assert h.stats.handler_errors == 1
    assert "listen raised UsageError but is not a command" in caplog.text


async def test_an_event_handler_overrunning_its_deadline_is_a_counted_timeout() -> None:
    bot = Bot("slow")

    @bot.on("chat.message")
    async def slow(ctx: Context, event: ChatMessage) -> str:
        if event.text == "upstream":
            raise TimeoutError("its own upstream call")  # an error, not an overrun
        await asyncio.sleep(5 if event.text == "sleep" else 0)
        return "done"

    async with BotHarness(bot, limits={"handler_timeout": "50ms"}) as h:
        assert (await h.say("sleep")).texts == []
        assert (await h.say("upstream")).texts == []
        assert (await h.say("quick")).texts == ["done"]
        assert (h.stats.handler_timeouts, h.stats.handler_errors) == (1, 1)
        (timing,) = h.stats.handler_seconds.values()
        assert timing.count == 3


async def test_a_plain_function_handler_still_runs_off_the_event_loop() -> None:
    bot = Bot("sync")
    loop_thread = threading.get_ident()

    @bot.on("chat.message")
    def blocking(ctx: Context) -> str:
        return "elsewhere" if threading.get_ident() != loop_thread else "on the loop"

    async with BotHarness(bot) as h:
        assert (await h.say("hi")).texts == ["elsewhere"]


async def test_a_middleware_still_wraps_an_event_handler() -> None:
    bot = Bot("wrapped")
    order: list[str] = []

    @bot.middleware
    async def around(ctx: Context, call_next):  # type: ignore[no-untyped-def]
        order.append("before")
        await call_next()
        order.append("after")

    @bot.on("chat.message")
    async def listen(ctx: Context) -> str:
        order.append("handler")
        return "heard"

    async with BotHarness(bot) as h:
        assert (await h.say("hi")).texts == ["heard"]
    assert order == ["before", "handler", "after"]
