"""A test plugin with timed jobs: a ticker, a job that always fails, and /later."""

from __future__ import annotations

from botkit import Bot, Context

bot = Bot("timed")


@bot.every(seconds=1, rooms=["lobby"])
async def tick(ctx: Context) -> None:
    await ctx.reply("tick")


@bot.every(seconds=1, rooms=["lobby"])
async def broken(ctx: Context) -> None:
    raise RuntimeError("a job failing on purpose")


async def say(ctx: Context, text: str) -> None:
    await ctx.reply(text)


@bot.command("later")
async def later(ctx: Context, seconds: float, text: str) -> None:
    ctx.schedule(say, delay=seconds, id=f"later:{text}", text=text)
    await ctx.reply(f"in {seconds:g}s")
