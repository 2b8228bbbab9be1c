"""A command bot: /help, /ping, /roll NdM (3 per 10 seconds per person), /who, and /quiz (a
question, the answer, the score)."""

from __future__ import annotations

import random
import re

from botkit import AskCancelled, AskTimeout, Bot, Context, UsageError

bot = Bot("commands")
_DICE = re.compile(r"(\d{0,3})d(\d{1,4})", re.IGNORECASE)


@bot.command("help", help="list the commands")
async def help_(ctx: Context) -> None:
    await ctx.reply(ctx.bot.help_text())


@bot.command("ping", help="check that the bot is alive")
async def ping(ctx: Context) -> None:
    await ctx.reply("pong")


@bot.command("roll", help="roll dice, e.g. /roll 2d6", cooldown="3/10s", per="user")
async def roll(ctx: Context, dice: str = "1d6") -> None:
    found = _DICE.fullmatch(dice.strip())
    if found is None:
        raise UsageError("dice look like NdM, e.g. 2d6")
    count, sides = int(found.group(1) or 1), int(found.group(2))
    if not 1 <= count <= 100 or not 2 <= sides <= 1000:
        raise UsageError("roll 1 to 100 dice of 2 to 1000 sides")
    rolls = [random.randint(1, sides) for _ in range(count)]
    await ctx.reply(f"🎲 {dice}: {' + '.join(map(str, rolls))} = {sum(rolls)}")


@bot.command("who", help="who is in this room")
async def who(ctx: Context) -> None:
    users = sorted({info.user for info in await ctx.presence()})
    await ctx.reply("In this room: " + ", ".join(users) if users else "Nobody is here.")


@bot.command("quiz", help="answer a sum within a minute", max_concurrency=1, per="user")
async def quiz(ctx: Context) -> None:
    a, b = random.randint(2, 12), random.randint(2, 12)
    try:
        answer = await ctx.ask(f"{ctx.sender}: what is {a} x {b}?", timeout=60)
    except AskTimeout:
        await ctx.reply(f"{ctx.sender}: time's up, it was {a * b}.")
        return
    except AskCancelled:
        await ctx.reply(f"{ctx.sender}: quiz cancelled.")
        return
    if answer.text.strip() != str(a * b):
        await ctx.reply(f"{ctx.sender}: no, it was {a * b}.")
        return
    score = await ctx.state.incr(f"quiz:{ctx.sender}")
    await ctx.reply(f"{ctx.sender}: right! Your score: {score}.")
