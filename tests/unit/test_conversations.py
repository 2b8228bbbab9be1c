"""``ctx.ask`` in the harness: the answer, the re-ask, /cancel, timeouts on the virtual clock,
the room's lane going on meanwhile, the cap, and the end of pending questions at stop."""

from __future__ import annotations

import asyncio

import pytest

from botkit import (
    AskCancelled,
    AskError,
    AskInvalidAnswer,
    AskTimeout,
    Bot,
    BotkitError,
    ChatMessage,
    Context,
    PluginError,
)
from botkit.conversations import ABANDONED_TEXT
from botkit.testing import BotHarness


def quiz_bot(**options: object) -> Bot:
    bot = Bot("quiz", **options)  # type: ignore[arg-type]

    @bot.command("quiz")
    async def quiz(ctx: Context) -> None:
        try:
            answer = await ctx.ask("What is 6 x 7?", timeout=30)
        except AskTimeout:
            await ctx.reply("Time's up!")
            return
        except AskCancelled:
            await ctx.reply("Quiz cancelled.")
            return
        await ctx.reply("Right!" if answer.text.strip() == "42" else f"No, not {answer.text}.")

    @bot.command("color")
    async def color(ctx: Context) -> None:
        try:
            answer = await ctx.ask("Red or blue?", choices=["red", "blue"])
        except AskInvalidAnswer as exc:
            given = exc.answer.text if isinstance(exc.answer, ChatMessage) else "?"
            await ctx.reply(f"Giving up on {given}.")
            return
        await ctx.reply(f"You chose {answer.text.strip().lower()}.")

    @bot.command("ping")
    async def ping(ctx: Context) -> None:
        await ctx.reply(f"pong {ctx.sender}")

    return bot


async def test_the_next_message_of_the_person_is_the_answer() -> None:
    async with BotHarness(quiz_bot(), user="ann") as h:
        assert (await h.say("/quiz")).texts == ["What is 6 x 7?"]
        assert h.core.conversations.waiting("lobby", "ann") is not None
        # The answer is the person's next message, even one that looks like a command.
        assert (await h.say("/ping")).texts == ["No, not /ping."]
        assert (await h.say("/quiz")).texts == ["What is 6 x 7?"]
        assert (await h.say("42")).texts == ["Right!"]
        assert h.stats.asks == 2
        assert len(h.core.conversations) == 0


async def test_other_people_and_other_rooms_are_handled_meanwhile() -> None:
    async with BotHarness(quiz_bot(), rooms=["lobby", "den"], user="ann") as h:
        await h.say("/quiz")
        # The question holds neither the room's lane nor the person elsewhere.
        assert (await h.say("/ping", user="bob")).texts == ["pong bob"]
        assert (await h.say("/ping", room="den")).texts == ["pong ann"]
        assert (await h.say("hello", user="bob")).texts == []
        assert (await h.say("42")).texts == ["Right!"]
        assert h.texts == ["What is 6 x 7?", "pong bob", "pong ann", "Right!"]


async def test_the_score_answers_the_message_that_started_the_conversation() -> None:
    async with BotHarness(quiz_bot(), user="ann") as h:
        (prompt,) = await h.say("/quiz")
        (score,) = await h.say("42")
        assert score.text == "Right!"
        assert score.reply_to is not None
        assert score.reply_to == prompt.reply_to


async def test_a_timeout_fires_with_the_virtual_clock() -> None:
    async with BotHarness(quiz_bot(), user="ann") as h:
        await h.say("/quiz")
        assert (await h.advance(seconds=29)).texts == []
        assert (await h.advance(seconds=1)).texts == ["Time's up!"]
        assert h.stats.ask_timeouts == 1
        # The question is gone: the next message is routed as usual.
        assert (await h.say("/ping")).texts == ["pong ann"]


async def test_cancel_raises_ask_cancelled() -> None:
    async with BotHarness(quiz_bot(), user="ann") as h:
        await h.say("/quiz")
        assert (await h.say("/cancel")).texts == ["Quiz cancelled."]
        assert (await h.say("/ping")).texts == ["pong ann"]


async def test_choices_re_ask_once_then_give_up() -> None:
    async with BotHarness(quiz_bot(), user="ann") as h:
        assert (await h.say("/color")).texts == ["Red or blue?"]
        assert (await h.say("green")).texts == ["Please answer one of: red, blue"]
        assert (await h.say(" BLUE ")).texts == ["You chose blue."]
        await h.say("/color")
        await h.say("green")
        assert (await h.say("pink")).texts == ["Giving up on pink."]
        assert (await h.say("/color")).texts == ["Red or blue?"]
        assert (await h.say("red")).texts == ["You chose red."]


async def test_the_handler_deadline_is_suspended_while_waiting() -> None:
    bot = quiz_bot()
    # A real handler_timeout of 0.2 s, and a wait (real time) longer than it: no timeout.
    async with BotHarness(bot, user="ann", limits={"handler_timeout": 0.2}) as h:
        await h.say("/quiz")
        await asyncio.sleep(0.4)
        assert (await h.say("42")).texts == ["Right!"]
        assert h.stats.handler_timeouts == 0
        # The wait is not the handler's time either.
        assert h.stats.handler_seconds["quiz_bot.<locals>.quiz"].total < 0.2


async def test_stop_tells_each_person_once_and_ends_the_handler() -> None:
    finished: list[str] = []
    bot = Bot("stopper")

    @bot.command("quiz")
    async def quiz(ctx: Context) -> None:
        try:
            await ctx.ask("Name a colour")
        finally:
            finished.append(ctx.sender or "-")

    h = BotHarness(bot, rooms=["lobby", "den"], user="ann")
    await h.start()
    await h.say("/quiz")
    await h.say("/quiz", user="bob", room="den")
    h.clear()
    await h.aclose()
    assert sorted(h.texts) == sorted([ABANDONED_TEXT.format(user="ann"),
                                      ABANDONED_TEXT.format(user="bob")])
    assert sorted(finished) == ["ann", "bob"]
    assert h.stats.asks_abandoned == 2
    assert not h.core.calls.runs


async def test_pending_questions_are_capped() -> None:
    async with BotHarness(quiz_bot(max_questions=2), user="ann") as h:
        await h.say("/quiz", user="a")
        await h.say("/quiz", user="b")
        assert (await h.say("/quiz", user="c")).texts == []  # refused before any prompt
        assert h.stats.handler_errors == 1
        assert len(h.core.conversations) == 2
        await h.say("42", user="a")
        assert (await h.say("/quiz", user="c")).texts == ["What is 6 x 7?"]


async def test_ask_outside_a_conversation_handler_says_how_to_fix_it(
        caplog: pytest.LogCaptureFixture) -> None:
    bot = Bot("helper")

    async def ask_for(ctx: Context) -> ChatMessage:
        return await ctx.ask("Really?")

    @bot.command("hidden")
    async def hidden(ctx: Context) -> None:
        await ask_for(ctx)

    @bot.command("marked", asks=True)
    async def marked(ctx: Context) -> None:
        await ctx.reply(f"you said {(await ask_for(ctx)).text}")

    assert not bot._commands["hidden"].asks
    assert bot._commands["marked"].asks
    async with BotHarness(bot) as h:
        assert (await h.say("/hidden")).texts == []
        assert h.stats.handler_errors == 1
        assert "asks=True" in caplog.text
        assert (await h.say("/marked")).texts == ["Really?"]
        assert (await h.say("yes")).texts == ["you said yes"]


async def test_ask_needs_a_person_and_a_running_bot() -> None:
    bot = Bot("nobody")
    errors: list[BaseException] = []

    @bot.on("user.joined")
    async def joined(ctx: Context) -> None:
        try:
            await ctx.ask("Hello?")
        except BotkitError as exc:
            errors.append(exc)

    async with BotHarness(bot) as h:
        await h.join("ann")
    assert len(errors) == 1
    assert isinstance(errors[0], AskError)
    with pytest.raises(PluginError, match="async"):
        @bot.command("sync", asks=True)
        def sync(ctx: Context) -> None: ...


async def test_an_uncaught_cancel_or_timeout_just_ends_the_handler() -> None:
    bot = Bot("plain")

    @bot.command("ask")
    async def ask(ctx: Context) -> None:
        answer = await ctx.ask("Sure?", timeout=5)
        await ctx.reply(f"ok: {answer.text}")

    async with BotHarness(bot, user="ann") as h:
        await h.say("/ask")
        assert (await h.say("/cancel")).texts == []
        await h.say("/ask")
        assert (await h.advance(seconds=5)).texts == []
        assert (h.stats.handler_errors, h.stats.ask_timeouts, h.stats.asks) == (0, 1, 2)
        assert (await h.say("/ask")).texts == ["Sure?"]
        assert (await h.say("yes")).texts == ["ok: yes"]
