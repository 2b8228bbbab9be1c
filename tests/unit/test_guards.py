"""Checks, cooldowns and max_concurrency on handlers, in the harness (virtual clock)."""

from __future__ import annotations

import pytest

from botkit import Bot, Context, PluginError
from botkit.guards import parse_rate
from botkit.testing import BotHarness


def roll_bot(**options: object) -> Bot:
    bot = Bot("dice")

    @bot.command("roll", **options)  # type: ignore[arg-type]
    async def roll(ctx: Context) -> None:
        await ctx.reply("4")

    return bot


async def test_one_notice_per_window_never_one_per_attempt() -> None:
    async with BotHarness(roll_bot(cooldown="3/10s"), user="ann") as h:
        for _ in range(50):
            await h.say("/roll")
        assert h.texts == ["4", "4", "4", "Please wait 10s before using /roll again."]
        assert h.stats.cooldowns == 47
        await h.advance(seconds=9)
        assert (await h.say("/roll")).texts == []  # still the same window, told already
        await h.advance(seconds=1)
        assert (await h.say("/roll")).texts == ["4"]  # a new window


@pytest.mark.parametrize(("per", "expected"), [("user", ["bob"]), ("room", ["den"]),
                                               ("bot", [])])
async def test_the_key_is_the_user_the_room_or_the_bot(per: str, expected: list[str]) -> None:
    async with BotHarness(roll_bot(cooldown="1/1m", per=per, cooldown_text=None),
                          rooms=["lobby", "den"], user="ann") as h:
        await h.say("/roll")
        assert (await h.say("/roll")).texts == []  # silent cooldown
        # Another person in the same room, and the same person in another room:
        got = [who for who, replies in [("bob", await h.say("/roll", user="bob")),
                                        ("den", await h.say("/roll", room="den"))]
               if replies.texts == ["4"]]
        assert got == expected


async def test_checks_sync_and_async_spend_no_cooldown() -> None:
    admins = {"ann"}

    def is_admin(ctx: Context) -> bool:
        return ctx.sender in admins

    async def in_lobby(ctx: Context) -> bool:
        return ctx.room == "lobby"

    bot = roll_bot(checks=[is_admin, in_lobby], cooldown="1/1m",
                   denied_text="Sorry {user}, {what} is for admins.")
    async with BotHarness(bot, rooms=["lobby", "den"], user="ann") as h:
        assert (await h.say("/roll", user="bob")).texts == ["Sorry bob, /roll is for admins."]
        assert (await h.say("/roll", room="den")).texts == ["Sorry ann, /roll is for admins."]
        assert (await h.say("/roll")).texts == ["4"]  # the refusals spent no cooldown
        assert h.stats.refused_checks == 2


async def test_a_failing_check_is_silent_by_default() -> None:
    async with BotHarness(roll_bot(checks=[lambda ctx: False])) as h:
        assert (await h.say("/roll")).texts == []
        assert h.stats.refused_checks == 1


async def test_max_concurrency_refuses_rather_than_queues() -> None:
    bot = Bot("game")

    @bot.command("game", max_concurrency=1, per="room")
    async def game(ctx: Context) -> None:
        answer = await ctx.ask("Your move?")
        await ctx.reply(f"{ctx.sender} played {answer.text}")

    async with BotHarness(bot, user="ann") as h:
        assert (await h.say("/game")).texts == ["Your move?"]
        assert (await h.say("/game", user="bob")).texts == ["/game is busy; try again in a "
                                                            "moment."]
        assert h.stats.refused_busy == 1
        assert (await h.say("e4")).texts == ["ann played e4"]
        assert (await h.say("/game", user="bob")).texts == ["Your move?"]


async def test_guards_on_event_and_match_handlers() -> None:
    bot = Bot("echo")

    @bot.match(r"\bhello\b", cooldown="1/1h", cooldown_text=None)
    async def hello(ctx: Context) -> None:
        await ctx.reply("hi")

    @bot.on("user.joined", per="room", cooldown="2/1m", cooldown_text=None)
    async def joined(ctx: Context) -> None:
        await ctx.reply(f"welcome {ctx.sender}")

    async with BotHarness(bot, user="ann") as h:
        assert (await h.say("hello")).texts == ["hi"]
        assert (await h.say("hello there")).texts == []
        for user in ("a", "b", "c"):
            await h.join(user)
        assert h.texts[-2:] == ["welcome a", "welcome b"]
        assert h.stats.cooldowns == 2


async def test_persisted_cooldowns_live_in_the_state_store() -> None:
    bot = roll_bot(cooldown="2/30s", persist=True)
    async with BotHarness(bot, user="ann") as h:
        for _ in range(4):
            await h.say("/roll")
        assert h.texts == ["4", "4", "Please wait 30s before using /roll again."]
        assert await h.state.keys("cooldown:") == ["cooldown:roll_bot.<locals>.roll:ann"]
        await h.advance(seconds=30)
        assert await h.state.keys("cooldown:") == []  # it expires with the window
        assert (await h.say("/roll")).texts == ["4"]


def test_bad_guards_are_refused_at_registration() -> None:
    with pytest.raises(PluginError, match="3/10s"):
        roll_bot(cooldown="three per ten")
    with pytest.raises(PluginError, match="per must be"):
        roll_bot(cooldown="1/s", per="channel")
    with pytest.raises(PluginError, match="max_concurrency"):
        roll_bot(max_concurrency=0)
    with pytest.raises(PluginError, match="persist"):
        roll_bot(persist=True)
    with pytest.raises(PluginError, match="checks"):
        roll_bot(checks=["admin"])
    with pytest.raises(PluginError, match=r"unknown option.* cooldwon"):
        roll_bot(cooldwon="1/s")
    with pytest.raises(PluginError, match="cooldown_text"):
        roll_bot(cooldown="1/s", cooldown_text="wait {seconds}s")
    assert str(parse_rate("5/1.5s", what="x")) == "5/1.5s"
    assert parse_rate("2/500ms", what="x").seconds == pytest.approx(0.5)
    assert parse_rate("1/m", what="x").seconds == 60
