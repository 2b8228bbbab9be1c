"""A test plugin with a command whose argument type can't be converted from text."""

from __future__ import annotations

from botkit import Bot, Context

bot = Bot("bad_signature")


@bot.command("add")
async def add_numbers(ctx: Context, numbers: list[int]) -> None:
    await ctx.reply(str(sum(numbers)))
