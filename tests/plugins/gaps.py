"""A test plugin for restarts (issue 11): ``/echo WORD`` answers the word, and the bot's
``@bot.on_gap`` hook logs one line per gap it is told of (the test reads the log)."""

from __future__ import annotations

from typing import Any

from botkit import Bot, Context

bot = Bot("gaps")


@bot.command("echo")
async def echo(ctx: Context, text: str) -> None:
    await ctx.reply(text)


@bot.on_gap
async def gap(ctx: Context, gap: Any) -> None:
    ctx.log.warning("on_gap called: room=%s since=%r reason=%r", gap.room, gap.since,
                    gap.reason)
